"""The Open Inference Protocol's binary tensor data extension as users meet it: real `python -m steps.serve`
processes serving a binary, a multiclass and a regression model that steps.train trained, called by tritonclient.http
with its default settings (binary inputs, binary outputs), with JSON, and mixed, and by hand over http.client. Every
way gets the in-process model's answers, bit for bit the same; a malformed binary body is a 400 naming the field."""

from __future__ import annotations

import http.client
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import task as _task
from steps._model.bundle import Bundle
from tests.support import tasks
from tests.support.models import Trained
from tests.support.serving import Server

pytestmark = pytest.mark.integration
http_client = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (a dev extra) is not installed")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException
MODELS = {"binary": "fraud-detection", "multiclass": "ticket-queue", "regression": "demand"}
OUTPUTS = {"binary": ["score", "label"], "multiclass": ["label", "probabilities"], "regression": ["value"]}
V2_TYPES = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}
ROWS = 40


@pytest.fixture(scope="module", params=list(MODELS))
def task(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def trained(task: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    if task == "binary":
        return request.getfixturevalue("trained")  # the reference policy's fraud model (tests/conftest.py)
    return tasks.trained_task_bundle(tmp_path_factory, task)


@pytest.fixture(scope="module")
def features(trained: Trained) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each feature, in the contract's order."""
    return [(f.name, f.type, f.nullable) for f in load_policy(trained.policy).data.features]


@pytest.fixture(scope="module")
def frame(task: str, features: list[tuple[str, str, bool]]) -> pd.DataFrame:
    """Request rows, some with missing values (NaN) in the nullable features."""
    names = [name for name, _, _ in features]
    whole = generate(ROWS, seed=21) if task == "binary" else tasks.task_frame(task, rows=ROWS, seed=21)
    rows = whole[names].reset_index(drop=True)
    for name, kind, nullable in features:
        if kind == "categorical":
            rows[name] = rows[name].astype(str)
        elif nullable:
            rows.loc[[1, 5], name] = np.nan
    return rows


@pytest.fixture(scope="module")
def expected(trained: Trained, task: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The in-process model's answers, by output name."""
    bundle = Bundle.open(trained.bundle)
    predictions = _task.predict(bundle.pipeline, frame, task)
    if task == "regression":
        return {"value": predictions}
    if task == "binary":
        threshold = json.loads((trained.bundle / "bundle.json").read_text())["threshold"]
        return {"score": predictions, "label": np.array(_task.labels_of(predictions, [0, 1], threshold, task))}
    labels = _task.labels_of(predictions, tasks.CLASSES, None, task)
    return {"label": np.array(labels, dtype=object), "probabilities": predictions}


def triton_inputs(frame: pd.DataFrame, features: list[tuple[str, str, bool]],
                  binary: bool | list[bool] = True) -> list[Any]:
    """One InferInput per feature, as a tritonclient user writes them; a whole-number column with missing values
    goes as FP64 (NaN), which the contract takes for an integer feature."""
    flags = binary if isinstance(binary, list) else [binary] * len(features)
    out = []
    for (name, kind, _), flag in zip(features, flags, strict=True):
        column = frame[name]
        datatype = V2_TYPES[kind]
        if kind == "categorical":
            values = np.array(column.tolist(), dtype=np.object_)
        elif kind == "integer" and not column.isna().any():
            values = column.to_numpy(dtype=np.int64)
        else:
            datatype, values = "FP64", column.to_numpy(dtype=np.float64)
        tensor = http_client.InferInput(name, [len(frame)], datatype)
        tensor.set_data_from_numpy(values, binary_data=flag)
        out.append(tensor)
    return out


def answers(result: Any, names: list[str]) -> dict[str, np.ndarray]:
    got = {}
    for name in names:
        values = result.as_numpy(name)
        if values.dtype == np.object_:
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values.ravel()],
                              dtype=object).reshape(values.shape)  # BYTES: bytes when binary, text when JSON
        got[name] = values
    return got


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, values in want.items():
        if values.dtype.kind == "f":
            assert got[name].shape == values.shape and np.max(np.abs(got[name] - values)) < 1e-9, name
        else:
            assert got[name].tolist() == values.tolist(), name


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    c = http_client.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield c
    c.close()


def test_a_default_tritonclient_sends_and_reads_binary_and_gets_the_model_s_answers(
        client: Any, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]],
        expected: dict[str, np.ndarray]) -> None:
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    result = client.infer(MODELS[task], triton_inputs(frame, features), request_id="r-7")
    response = result.get_response()
    assert response["id"] == "r-7" and [o["name"] for o in response["outputs"]] == OUTPUTS[task]
    assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])
    assert_same(answers(result, OUTPUTS[task]), expected)  # rows 1 and 5 carry NaN, which JSON cannot


@pytest.mark.parametrize("how", ["json", "mixed", "binary-in-json-out", "json-in-binary-out"])
def test_json_and_binary_either_way_give_identical_answers(client: Any, task: str, frame: pd.DataFrame,
                                                           features: list[tuple[str, str, bool]],
                                                           expected: dict[str, np.ndarray], how: str) -> None:
    complete = frame.drop(index=[1, 5]).reset_index(drop=True)  # JSON has no NaN for a missing value
    want = {name: values[[i for i in range(ROWS) if i not in (1, 5)]] for name, values in expected.items()}
    default = client.infer(MODELS[task], triton_inputs(complete, features))
    binary_in = {"json": False, "mixed": [i % 2 == 0 for i in range(len(features))], "binary-in-json-out": True,
                 "json-in-binary-out": False}[how]
    names = OUTPUTS[task]
    binary_out = {"json": [False] * len(names), "mixed": [i % 2 == 1 for i in range(len(names))],
                  "binary-in-json-out": [False] * len(names), "json-in-binary-out": [True] * len(names)}[how]
    result = client.infer(MODELS[task], triton_inputs(complete, features, binary_in),
                          outputs=[http_client.InferRequestedOutput(n, binary_data=b)
                                   for n, b in zip(names, binary_out, strict=True)])
    listed = result.get_response()["outputs"]
    assert [("data" not in o) for o in listed] == binary_out
    got = answers(result, names)
    assert_same(got, want)
    for name, values in answers(default, names).items():  # bit for bit what the default binary answer carried
        assert got[name].tolist() == values.tolist(), name


def test_only_the_outputs_asked_for_come_back_and_an_unknown_one_is_a_400(
        client: Any, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]]) -> None:
    last = OUTPUTS[task][-1]
    result = client.infer(MODELS[task], triton_inputs(frame, features),
                          outputs=[http_client.InferRequestedOutput(last)])
    assert [o["name"] for o in result.get_response()["outputs"]] == [last]
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODELS[task], triton_inputs(frame, features),
                     outputs=[http_client.InferRequestedOutput("margin")])
    assert err.value.status() == "400" and "outputs[0].name: 'margin' is not an output" in err.value.message()


def test_a_binary_request_breaking_the_contract_is_still_a_4xx_naming_the_feature(
        client: Any, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]]) -> None:
    name = next(n for n, kind, _ in features if kind == "numeric")
    broken = frame.copy()
    broken.loc[0, name] = 1e12
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODELS[task], triton_inputs(broken, features))
    assert err.value.status() == "422" and f"inputs[{name}].data[0]" in err.value.message()


# --- by hand: the bytes on the wire ------------------------------------------------------------------------------


def hand_made(frame: pd.DataFrame, features: list[tuple[str, str, bool]]) -> tuple[bytes, int]:
    """A binary request framed by hand: every input binary (FP64 and BYTES), all outputs asked as binary."""
    inputs, blobs = [], []
    for name, kind, _ in features:
        if kind == "categorical":
            blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in frame[name])
            datatype = "BYTES"
        else:
            blob = struct.pack(f"<{len(frame)}d", *frame[name].to_numpy(dtype=np.float64))
            datatype = "FP64"
        inputs.append({"name": name, "datatype": datatype, "shape": [len(frame)],
                       "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return head + b"".join(blobs), len(head)


def post(server: Server, task: str, body: bytes, length: str | None, conn: http.client.HTTPConnection) -> Any:
    headers = {"Content-Type": "application/octet-stream"}
    if length is not None:
        headers["Inference-Header-Content-Length"] = length
    conn.request("POST", f"/v2/models/{MODELS[task]}/infer", body=body, headers=headers)
    return conn.getresponse()


def test_a_request_framed_by_hand_gets_a_binary_answer_framed_as_the_extension_says(
        server: Server, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]],
        expected: dict[str, np.ndarray]) -> None:
    body, length = hand_made(frame, features)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        response = post(server, task, body, str(length), conn)
        data = response.read()
    finally:
        conn.close()
    assert response.status == 200, data
    assert response.getheader("content-type") == "application/octet-stream"
    size = int(response.getheader("inference-header-content-length"))
    head = json.loads(data[:size])
    at = size
    for output in head["outputs"]:
        raw = data[at:at + output["parameters"]["binary_data_size"]]
        at += len(raw)
        want = expected[output["name"]]
        if output["datatype"] == "FP64":
            values = np.frombuffer(raw, dtype="<f8").reshape(output["shape"])
            assert np.max(np.abs(values - want)) < 1e-9
        elif output["datatype"] == "INT64":
            assert np.frombuffer(raw, dtype="<i8").tolist() == want.tolist()
        else:
            labels, i = [], 0
            while i < len(raw):
                (n,) = struct.unpack_from("<I", raw, i)
                labels.append(raw[i + 4:i + 4 + n].decode())
                i += 4 + n
            assert labels == want.tolist()
    assert at == len(data)


def test_malformed_binary_bodies_get_a_400_naming_the_field_and_the_connection_stays_usable(
        server: Server, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]]) -> None:
    body, length = hand_made(frame.head(2), features)
    mistakes = {  # name: (body, Inference-Header-Content-Length, field in the answer, words in the message)
        "header-not-a-number": (body, "twelve", "Inference-Header-Content-Length", "whole number"),
        "header-past-the-body": (body, str(len(body) + 1), "Inference-Header-Content-Length", "body has only"),
        "header-not-json": (body, str(length - 1), "Inference-Header-Content-Length", "not valid JSON"),
        "data-cut-short": (body[:-3], str(length), None, "binary_data_size"),
        "data-left-over": (body + b"\0", str(length), "inputs", "1 bytes of binary data after"),
        "no-header": (body, None, None, "415"),
    }
    before = requests(server, "400")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for name, (raw, header, field, words) in mistakes.items():
            response = post(server, task, raw, header, conn)
            out = json.loads(response.read())
            if name == "no-header":  # octet-stream without the extension's header: not taken as binary
                assert (response.status, out["rule"]) == (415, "content_type"), out
                continue
            assert response.status == 400, (name, out)
            assert words in out["error"] and (field is None or out["field"] == field), (name, out)
            if name == "data-cut-short":
                assert out["field"] == features[-1][0]
        ok = post(server, task, body, str(length), conn)  # the same connection still answers
        assert ok.status == 200 and ok.read()
    finally:
        conn.close()
    assert requests(server, "400") == before + 5  # each counted as a prediction request


def requests(server: Server, code: str) -> float:
    """model_requests_total{code} over HTTP (the `protocol` label, where there is one, says http)."""
    _, text = server.call("GET", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("model_requests_total{") and f'code="{code}"' in line and 'protocol="grpc"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total if not math.isnan(total) else 0.0


def test_a_compressed_request_is_refused_naming_the_header_and_a_compressed_answer_is_not_needed(
        client: Any, task: str, frame: pd.DataFrame, features: list[tuple[str, str, bool]],
        expected: dict[str, np.ndarray]) -> None:
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODELS[task], triton_inputs(frame, features), request_compression_algorithm="gzip")
    assert err.value.status() == "415" and "content-encoding 'gzip'" in err.value.message()
    # Asking for a compressed answer is a preference: the answer comes uncompressed, and the client reads it.
    result = client.infer(MODELS[task], triton_inputs(frame, features), response_compression_algorithm="gzip")
    assert_same(answers(result, OUTPUTS[task]), expected)
