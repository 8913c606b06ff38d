"""gRPC tensors to and from the JSON form the rest of the server speaks: a ModelInferRequest's inputs (each
input's typed `contents`, or all of them in `raw_input_contents`) become {"inputs": [{name, datatype, shape,
data}]} for RequestContract.rows_from_v2, so a gRPC request meets the same checks and messages as an HTTP one; the
task's output tensors (ServedModel.outputs.v2) become a ModelInferResponse's outputs, as raw bytes when the
request's inputs were raw (as Triton answers, and tritonclient.grpc reads), else as typed contents."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from steps._serving import tensors
from steps._serving.contract import RequestError
from steps._serving.grpc import grpc_predict_v2_pb2 as pb

# datatype -> the InferTensorContents field its values travel in (FP16 has none: raw only)
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def json_inputs(request: pb.ModelInferRequest) -> dict[str, Any]:
    """The request's inputs in the Open Inference Protocol's JSON form; RequestError (INVALID_ARGUMENT) when the
    raw contents do not match the inputs, their shapes or datatypes."""
    raw = request.raw_input_contents
    inputs = request.inputs
    if raw and len(raw) != len(inputs):
        raise RequestError(f"raw_input_contents: {len(raw)} entries for {len(inputs)} inputs; send one per input "
                           "(or none, and each input's values in its contents)", "raw_input_contents",
                           "raw_input_contents", 400)
    out = []
    for k, tensor in enumerate(inputs):
        name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
        where = f"inputs[{k}] ({name[:60]})"
        if raw:
            if tensor.HasField("contents"):
                raise RequestError(f"{where}: values both in contents and in raw_input_contents; send one",
                                   "contents", name[:60], 400)
            if any(d < 0 for d in shape):
                raise RequestError(f"{where}.shape: {shape[:8]} has a negative dimension", "shape", name[:60], 400)
            data = tensors.decode(datatype, raw[k], math.prod(shape), where, name[:60])
        else:
            data = _contents(tensor, where, datatype)
        out.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    return {"inputs": out}


def _contents(tensor: pb.ModelInferRequest.InferInputTensor, where: str, datatype: str) -> list[Any]:
    contents = tensor.contents
    field = CONTENTS.get(datatype)
    if field is None:
        if datatype == "FP16":
            raise RequestError(f"{where}: FP16 values have no contents field; send them in raw_input_contents",
                               "contents", tensor.name[:60], 400)
        return []  # the contract check names the datatype it does not take
    filled = [f.name for f, _ in contents.ListFields()]
    if filled and filled != [field]:
        raise RequestError(f"{where}.contents: a {datatype} tensor's values go in {field}, got "
                           f"{', '.join(filled)}", "contents", tensor.name[:60], 400)
    values: list[Any] = list(getattr(contents, field))
    if field == "bytes_contents":
        try:
            return [v.decode() for v in values]
        except UnicodeDecodeError:
            raise RequestError(f"{where}.contents.bytes_contents: an element is not UTF-8 text", "utf8",
                               tensor.name[:60], 400) from None
    return values


def output_tensors(outputs: Sequence[dict[str, Any]], wanted: Sequence[str], raw: bool,
                   response: pb.ModelInferResponse) -> None:
    """Add the task's output tensors (only the `wanted` ones, in that order, when any) to `response`."""
    if wanted:
        by_name = {t["name"]: t for t in outputs}
        outputs = [by_name[name] for name in wanted]
    for t in outputs:
        datatype, data = t["datatype"], t["data"]
        tensor = response.outputs.add(name=t["name"], datatype=datatype, shape=t["shape"])
        if raw:
            response.raw_output_contents.append(tensors.encode(datatype, data))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(v if isinstance(v, bytes) else str(v).encode() for v in data)
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(data)
