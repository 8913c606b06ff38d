"""The Open Inference Protocol's binary tensor data extension over HTTP, as Triton, KServe and OpenVINO Model Server
speak it (and tritonclient.http by default). A request with `Inference-Header-Content-Length: N` carries its JSON
inference header in the body's first N bytes and, after it, the raw data of each input that says
`parameters.binary_data_size`, in input order. An answer is binary when the request asks
(`parameters.binary_data_output`, or `outputs[i].parameters.binary_data`): the same JSON header, whose binary outputs
carry `parameters.binary_data_size` instead of `data`, then their raw bytes (layout: steps._serving.tensors).

A malformed framing is a 400 naming the field; what the data says is checked by the contract as for JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steps._serving import tensors
from steps._serving.codec import dumps
from steps._serving.contract import RequestError

HEADER = "Inference-Header-Content-Length"
EXTENSION = "binary_tensor_data"  # Triton's name for it in the server metadata's `extensions`
OCTET_STREAM = b"application/octet-stream"
# Output name and whether it goes as raw bytes, in the order the answer lists them.
Selection = list[tuple[str, bool]]


def split(body: bytes, header_length: int) -> tuple[bytes, memoryview]:
    """The JSON inference header and the binary data after it. `header_length` < 0: the header was no byte count."""
    if header_length < 0:
        raise RequestError(f"{HEADER}: must be the JSON inference header's length in bytes, a whole number",
                           "binary_header", HEADER, 400)
    if header_length > len(body):
        raise RequestError(f"{HEADER}: {header_length} bytes, but the body has only {len(body)}", "binary_header",
                           HEADER, 400)
    return body[:header_length], memoryview(body)[header_length:]


def attach(body: Any, raw: memoryview) -> None:
    """Decode the binary data of `body`'s inputs (those with `parameters.binary_data_size`, taking their bytes from
    `raw` in input order) into their `data`, as a JSON client would have sent it. Raises RequestError (400)."""
    inputs = body.get("inputs") if type(body) is dict else None
    at, end = 0, len(raw)
    if type(inputs) is list:
        for k, tensor in enumerate(inputs):
            parameters = tensor.get("parameters") if type(tensor) is dict else None
            if type(parameters) is not dict or "binary_data_size" not in parameters:
                continue
            where, field = _where(tensor, k)
            size = parameters["binary_data_size"]
            if type(size) is not int or size < 0:
                raise RequestError(f"{where}.parameters.binary_data_size: must be a whole number of bytes, got "
                                   f"{_shown(size)}", "binary_data_size", field, 400)
            if "data" in tensor:
                raise RequestError(f"{where}: has both data and parameters.binary_data_size; send one",
                                   "binary_data_size", field, 400)
            if at + size > end:
                raise RequestError(f"{where}.parameters.binary_data_size: {size} bytes from byte {at} of the binary "
                                   f"data, but it has only {end} (after the {HEADER} bytes of JSON)",
                                   "binary_data_size", field, 400)
            datatype = tensor.get("datatype")
            if type(datatype) is not str or datatype not in tensors.DATATYPES:
                raise RequestError(f"{where}.datatype: {_shown(datatype)} is not an Open Inference Protocol "
                                   f"datatype ({', '.join(tensors.DATATYPES)})", "datatype", field, 400)
            try:
                tensor["data"] = tensors.decode(datatype, raw[at:at + size], _count(tensor, where, field), where,
                                                field)
            except RequestError as err:
                err.status = 400  # the bytes do not frame the tensor they claim: a malformed request
                raise
            at += size
    if at != end:
        raise RequestError(f"{end - at} bytes of binary data after the inputs' (the inputs' "
                           f"parameters.binary_data_size add up to {at})", "binary_data_size", "inputs", 400)


def missing_header(body: Any) -> RequestError | None:
    """A JSON request (no Inference-Header-Content-Length) whose input says it is binary: the error to answer."""
    inputs = body.get("inputs") if type(body) is dict else None
    for k, tensor in enumerate(inputs if type(inputs) is list else ()):
        parameters = tensor.get("parameters") if type(tensor) is dict else None
        if type(parameters) is dict and "binary_data_size" in parameters:
            where, field = _where(tensor, k)
            return RequestError(f"{where}.parameters.binary_data_size: the request has no binary data; send the "
                                f"{HEADER} header with the JSON part's length", "binary_header", field, 400)
    return None


def requested(body: dict[str, Any], names: Sequence[str]) -> Selection | None:
    """The outputs the request asks for (`outputs`, else all of `names`) and which of them go binary; None when
    that is every output as JSON, the plain answer. Raises RequestError (400) naming the field."""
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise RequestError("parameters: must be an object", "type", "parameters", 400)
    default = parameters.get("binary_data_output", False)
    if type(default) is not bool:
        raise RequestError(f"parameters.binary_data_output: must be true or false, got {_shown(default)}",
                           "type", "parameters.binary_data_output", 400)
    outputs = body.get("outputs")
    if outputs is None or outputs == []:  # none named: every output, as Triton answers
        return [(name, True) for name in names] if default else None
    if type(outputs) is not list:
        raise RequestError("outputs: must be a list of {name, parameters}", "type", "outputs", 400)
    chosen: Selection = []
    seen: set[str] = set()
    for i, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else None
        if type(name) is not str:
            raise RequestError(f"outputs[{i}].name: required, a string", "required", f"outputs[{i}].name", 400)
        if name not in names:
            raise RequestError(f"outputs[{i}].name: {name[:60]!r} is not an output of this model (outputs: "
                               f"{', '.join(names)})", "unknown_output", f"outputs[{i}].name", 400)
        if name in seen:
            raise RequestError(f"outputs[{i}]: {name} is asked for twice", "duplicate", f"outputs[{i}].name", 400)
        seen.add(name)
        binary = default
        own = output.get("parameters")
        if own is not None:
            if type(own) is not dict:
                raise RequestError(f"outputs[{i}].parameters: must be an object", "type",
                                   f"outputs[{i}].parameters", 400)
            if "classification" in own:
                raise RequestError(f"outputs[{i}].parameters.classification: this server does not answer "
                                   "top-k classifications; ask for the output itself", "unsupported",
                                   f"outputs[{i}].parameters.classification", 400)
            binary = own.get("binary_data", default)
            if type(binary) is not bool:
                raise RequestError(f"outputs[{i}].parameters.binary_data: must be true or false, got "
                                   f"{_shown(binary)}", "type", f"outputs[{i}].parameters.binary_data", 400)
        chosen.append((name, binary))
    return chosen


def answer(head: dict[str, Any], outputs: list[dict[str, Any]], chosen: Selection) -> tuple[bytes, int | None]:
    """The answer's body for the chosen outputs, and its JSON header's length when some of them are binary (the
    value of Inference-Header-Content-Length; None: the body is plain JSON)."""
    by_name = {tensor["name"]: tensor for tensor in outputs}
    listed: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in chosen:
        tensor = by_name[name]
        if binary:
            blob = tensors.encode(tensor["datatype"], tensor["data"])
            blobs.append(blob)
            tensor = {"name": name, "datatype": tensor["datatype"], "shape": tensor["shape"],
                      "parameters": {"binary_data_size": len(blob)}}
        listed.append(tensor)
    head["outputs"] = listed
    text = dumps(head)
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)


def _where(tensor: dict[str, Any], k: int) -> tuple[str, str]:
    name = tensor.get("name")
    if type(name) is str:
        return f"inputs[{k}] ({name[:60]})", name[:60]
    return f"inputs[{k}]", f"inputs[{k}]"


def _count(tensor: dict[str, Any], where: str, field: str) -> int:
    shape = tensor.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(f"{where}.shape: must be a list of whole numbers (the binary data's element count is "
                           f"their product), got {_shown(shape)}", "shape", field, 400)
    count = 1
    for d in shape:
        count *= d
    return count


def _shown(value: Any) -> str:
    """A client's value, short; a list or object by its kind only (it may be nested deeper than repr can go)."""
    if value is None or type(value) in (bool, int, float, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if type(value) is list and len(value) <= 8 and all(type(v) in (int, float, bool, str) for v in value):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return f"a {type(value).__name__}"
