"""The binary tensor data extension (steps._serving.binary) as tritonclient frames it: request bodies that
tritonclient.http builds are read back to the values it was given, answers are read by tritonclient's own decoder,
and every malformed framing is a 400 naming the field, through the App as a client gets it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps._serving import binary
from steps._serving.app import App, ServedModel
from steps._serving.batcher import Batcher
from steps._serving.contract import RequestError
from steps._serving.exchange import Request
from steps._serving.metrics import Metrics
from tests.support.serving import JSON_VALUES, MODEL, served, served_multiclass, served_regression

http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (a dev extra) is not installed")
INFER = f"/v2/models/{MODEL}/infer"
# numpy dtype per datatype, as tritonclient maps them
DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
          "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
          "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}


def triton_body(inputs: list[tuple[str, str, Any]], binary_data: bool | list[bool] = True,
                **kwargs: Any) -> tuple[bytes, int | None]:
    """The body and Inference-Header-Content-Length that tritonclient.http sends for these (name, datatype,
    values) inputs."""
    flags = binary_data if isinstance(binary_data, list) else [binary_data] * len(inputs)
    tensors = []
    for (name, datatype, values), flag in zip(inputs, flags, strict=True):
        array = np.array(values, dtype=DTYPES[datatype])
        tensor = http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=flag)
        tensors.append(tensor)
    body, length = http.InferenceServerClient.generate_request_body(tensors, **kwargs)
    return body, length


def read_back(body: bytes, length: int | None) -> dict[str, Any]:
    if length is None:
        return json.loads(body)
    head, raw = binary.split(body, length)
    request = json.loads(head)
    binary.attach(request, raw)
    return request


# --- requests: tritonclient's bytes read back ----------------------------------------------------------------


@pytest.mark.parametrize(("datatype", "values"), [
    ("FP64", [0.5, -1.25, 1e300, float("nan")]), ("FP32", [0.5, -1.25]), ("FP16", [0.5, 2.0]),
    ("INT64", [-(2 ** 63), 0, 2 ** 63 - 1]), ("INT32", [-7, 7]), ("INT16", [-300]), ("INT8", [-128, 127]),
    ("UINT64", [2 ** 64 - 1]), ("UINT32", [7]), ("UINT16", [65535]), ("UINT8", [0, 255]), ("BOOL", [True, False]),
    ("BYTES", ["web", "", "café", "a" * 300]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_datatype_tritonclient_sends_is_read_back_as_its_values(datatype: str, values: list[Any]) -> None:
    body, length = triton_body([("x", datatype, values), ("y", "FP64", [1.0] * len(values))])
    assert length is not None and len(body) > length
    request = read_back(body, length)
    got = request["inputs"][0]["data"]
    if datatype == "FP64":
        assert got[:3] == values[:3] and got[3] != got[3]  # NaN, which JSON cannot carry
    else:
        assert got == values
    assert request["inputs"][1]["data"] == [1.0] * len(values)
    assert request["parameters"] == {"binary_data_output": True}  # tritonclient's default: binary answers


def test_binary_and_json_inputs_mix_and_the_binary_ones_take_their_bytes_in_order() -> None:
    inputs = [("a", "FP64", [1.5, 2.5]), ("b", "BYTES", ["web", "app"]), ("c", "INT64", [3, 4])]
    body, length = triton_body(inputs, binary_data=[True, False, True])
    request = read_back(body, length)
    assert [t["data"] for t in request["inputs"]] == [[1.5, 2.5], ["web", "app"], [3, 4]]
    assert "binary_data_size" not in request["inputs"][1].get("parameters", {})


# --- answers: read by tritonclient's decoder -----------------------------------------------------------------


OUTPUTS = [{"name": "score", "datatype": "FP64", "shape": [3], "data": [0.25, 0.5, 1.0]},
           {"name": "label", "datatype": "BYTES", "shape": [3], "data": ["no", "Yes", "naïve"]},
           {"name": "probabilities", "datatype": "FP64", "shape": [3, 2], "data": [0.1, 0.9, 0.5, 0.5, 1.0, 0.0]},
           {"name": "count", "datatype": "INT64", "shape": [3], "data": [1, -2, 2 ** 40]}]


@pytest.mark.parametrize("flags", [(True, True, True, True), (False, True, False, True), (False,) * 4],
                         ids=["all-binary", "mixed", "all-json"])
def test_an_answer_is_read_by_tritonclient_with_each_output_as_asked(flags: tuple[bool, ...]) -> None:
    chosen = [(o["name"], flag) for o, flag in zip(OUTPUTS, flags, strict=True)]
    body, length = binary.answer({"model_name": MODEL, "id": "r"}, json.loads(json.dumps(OUTPUTS)), chosen)
    assert (length is None) == (not any(flags))
    result = http.InferenceServerClient.parse_response_body(body, header_length=length)
    assert result.get_response()["id"] == "r"
    for output, flag in zip(OUTPUTS, flags, strict=True):
        listed = result.get_output(output["name"])
        assert ("data" in listed) != flag and ("parameters" in listed) == flag
        got = result.as_numpy(output["name"])
        assert got.shape == tuple(output["shape"])
        want = np.array(output["data"]).reshape(output["shape"])
        assert [v.decode() if isinstance(v, bytes) else v for v in got.ravel().tolist()] == want.ravel().tolist()


def test_only_the_asked_outputs_come_back_in_the_order_asked() -> None:
    chosen = [("count", False), ("score", True)]
    body, length = binary.answer({"model_name": MODEL}, json.loads(json.dumps(OUTPUTS)), chosen)
    head = json.loads(body[:length])
    assert [o["name"] for o in head["outputs"]] == ["count", "score"]
    assert head["outputs"][1]["parameters"] == {"binary_data_size": 24} and len(body) == length + 24


@pytest.mark.parametrize(("request_body", "chosen"), [
    ({}, None),
    ({"outputs": []}, None),
    ({"parameters": {"binary_data_output": False}}, None),
    ({"parameters": {"binary_data_output": True}}, [("score", True), ("label", True)]),
    ({"outputs": [{"name": "label"}]}, [("label", False)]),
    ({"outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "score"}]},
     [("label", True), ("score", False)]),
    ({"parameters": {"binary_data_output": True}, "outputs": [{"name": "score", "parameters": {"binary_data": False}},
                                                              {"name": "label"}]},
     [("score", False), ("label", True)]),
], ids=["nothing", "no-outputs", "json-asked", "binary-default", "one-output", "output-binary", "override"])
def test_the_request_chooses_outputs_and_binary_as_triton_does(request_body: dict[str, Any],
                                                               chosen: binary.Selection | None) -> None:
    assert binary.requested(request_body, ["score", "label"]) == chosen


# --- through the App: statuses, headers and errors as a client gets them -------------------------------------


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.body, self.content_type, self.extra = b"", b"", b""

    @property
    def answered(self) -> bool:
        return self.status != 0

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        self.status, self.body, self.content_type, self.extra = status, body, content_type, extra_headers

    def json(self) -> Any:
        return json.loads(self.body)


class Idle:
    receiving = 0

    def batch_finished(self) -> None:
        pass


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def app_for(model: ServedModel, loop: asyncio.AbstractEventLoop) -> App:
    app = App(model, Metrics.for_model(model))
    app.batcher = Batcher(loop, model.predictor.predict, True, app, Idle(), 32, 0.005)
    app.ready = True
    return app


def post(app: App, loop: asyncio.AbstractEventLoop, body: bytes, length: int | None,
         content_type: bytes | None = None, path: str = INFER) -> Answer:
    answer = Answer()
    app.handle(Request(b"POST", path.encode(), content_type, body, True, length), answer)
    if not answer.answered:
        loop.run_until_complete(asyncio.sleep(0.02))
    return answer


def decoded(answer: Answer) -> Any:
    length = None
    if answer.extra:
        name, value = answer.extra.decode().strip().split(": ")
        assert name == "inference-header-content-length"
        length = int(value)
    return http.InferenceServerClient.parse_response_body(answer.body, header_length=length)


AMOUNT = ("amount", "FP64", [40.0, 70.0])
CHANNEL = ("channel", "BYTES", ["app", "web"])


@pytest.mark.parametrize(("model", "names", "want"), [
    (served, ["score", "label"], [[0.4, 0.7], [0, 1]]),
    (served_multiclass, ["label", "probabilities"], [["low", "mid"], [[0.6, 0.2, 0.2], [0.3, 0.35, 0.35]]]),
    (served_regression, ["value"], [[81.0, 140.0]]),
], ids=["binary", "multiclass", "regression"])
def test_a_default_tritonclient_request_gets_a_binary_answer_with_the_model_s_values(
        loop: asyncio.AbstractEventLoop, model: Any, names: list[str], want: list[Any]) -> None:
    app = app_for(model(), loop)
    answer = post(app, loop, *triton_body([AMOUNT, CHANNEL], request_id="r-1"))
    assert (answer.status, answer.content_type) == (200, b"application/octet-stream"), answer.body
    result = decoded(answer)
    assert [o["name"] for o in result.get_response()["outputs"]] == names
    for name, values in zip(names, want, strict=True):
        got = result.as_numpy(name).tolist()
        got = [v.decode() if isinstance(v, bytes) else v for v in got]
        assert np.allclose(got, values) if name != "label" or model is served else got == values
    assert result.get_response()["id"] == "r-1"
    assert app.metrics.value("model_requests_total", code="200") == 1


@pytest.mark.parametrize("content_type", [None, b"application/octet-stream", b"application/json"])
def test_a_binary_request_is_taken_with_or_without_a_content_type(loop: asyncio.AbstractEventLoop,
                                                                   content_type: bytes | None) -> None:
    answer = post(app_for(served(), loop), loop, *triton_body([AMOUNT, CHANNEL]), content_type=content_type)
    assert answer.status == 200


def test_octet_stream_without_the_header_is_refused_as_before(loop: asyncio.AbstractEventLoop) -> None:
    body, _ = triton_body([AMOUNT, CHANNEL], binary_data=False)
    answer = post(app_for(served(), loop), loop, body, None, b"application/octet-stream")
    assert (answer.status, answer.json()["rule"]) == (415, "content_type")


def test_json_answers_honour_the_outputs_asked_and_the_server_says_it_speaks_the_extension(
        loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served(), loop)
    body, length = triton_body([AMOUNT, CHANNEL], binary_data=False,
                               outputs=[http.InferRequestedOutput("label", binary_data=False)])
    answer = post(app, loop, body, length, b"application/json")
    assert (answer.status, answer.content_type, answer.extra) == (200, b"application/json", b"")
    assert answer.json()["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 1]}]
    metadata = Answer()
    app.handle(Request(b"GET", b"/v2", None, b"", True), metadata)
    assert binary.EXTENSION in metadata.json()["extensions"]


def framed(head: dict[str, Any], raw: bytes = b"", length: int | None = None) -> tuple[bytes, int]:
    text = json.dumps(head).encode()
    return text + raw, len(text) if length is None else length


def tensor(name: str = "amount", datatype: str = "FP64", shape: Any = (1,), size: Any = 8,
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "parameters": {"binary_data_size": size}, **extra}


CHANNEL_JSON = {"name": "channel", "datatype": "BYTES", "shape": [1], "data": ["web"]}
FORTY = np.float64(40.0).tobytes()
MISTAKES: dict[str, tuple[bytes, int | None, str, str]] = {
    # id: (body, header length, field, rule)
    "header-not-a-number": (b"{}", -1, binary.HEADER, "binary_header"),
    "header-past-the-body": (b'{"inputs": []}', 99, binary.HEADER, "binary_header"),
    "header-not-json": (*framed({"inputs": []}, FORTY, 5), binary.HEADER, "json"),
    "size-not-a-number": (*framed({"inputs": [tensor(size="8"), CHANNEL_JSON]}, FORTY), "amount", "binary_data_size"),
    "size-negative": (*framed({"inputs": [tensor(size=-8), CHANNEL_JSON]}, FORTY), "amount", "binary_data_size"),
    "size-and-data": (*framed({"inputs": [tensor(data=[1.0]), CHANNEL_JSON]}, FORTY), "amount", "binary_data_size"),
    "size-past-the-data": (*framed({"inputs": [tensor(size=16), CHANNEL_JSON]}, FORTY), "amount",
                           "binary_data_size"),
    "size-not-the-shape": (*framed({"inputs": [tensor(shape=(2,)), CHANNEL_JSON]}, FORTY), "amount",
                           "binary_data_size"),
    "bytes-left-over": (*framed({"inputs": [tensor(), CHANNEL_JSON]}, FORTY + b"\0"), "inputs", "binary_data_size"),
    "unknown-datatype": (*framed({"inputs": [tensor(datatype="FP128"), CHANNEL_JSON]}, FORTY), "amount",
                         "datatype"),
    "shape-unknown": (*framed({"inputs": [tensor(shape=(-1,)), CHANNEL_JSON]}, FORTY), "amount", "shape"),
    "shape-not-a-list": (*framed({"inputs": [tensor(shape="1"), CHANNEL_JSON]}, FORTY), "amount", "shape"),
    "bytes-cut-short": (*framed({"inputs": [{"name": "amount", "datatype": "FP64", "shape": [1], "data": [4.0]},
                                            tensor("channel", "BYTES", size=7)]}, b"\5\0\0\0web"), "channel",
                        "binary_data_size"),
    "bytes-not-utf8": (*framed({"inputs": [{"name": "amount", "datatype": "FP64", "shape": [1], "data": [4.0]},
                                           tensor("channel", "BYTES", size=6)]}, b"\2\0\0\0\xff\xfe"), "channel",
                       "utf8"),
    "binary-without-the-header": (json.dumps({"inputs": [tensor(), CHANNEL_JSON]}).encode(), None, "amount",
                                  "binary_header"),
    "parameters-not-an-object": (*framed({"inputs": [tensor(), CHANNEL_JSON], "parameters": []}, FORTY),
                                 "parameters", "type"),
    "binary-output-not-a-bool": (*framed({"inputs": [tensor(), CHANNEL_JSON],
                                          "parameters": {"binary_data_output": "yes"}}, FORTY),
                                 "parameters.binary_data_output", "type"),
    "outputs-not-a-list": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": {"name": "score"}}, FORTY),
                           "outputs", "type"),
    "output-without-a-name": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": [{}]}, FORTY),
                              "outputs[0].name", "required"),
    "output-unknown": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": [{"name": "margin"}]}, FORTY),
                       "outputs[0].name", "unknown_output"),
    "output-twice": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": [{"name": "score"}] * 2}, FORTY),
                     "outputs[1].name", "duplicate"),
    "output-binary-not-a-bool": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": [
        {"name": "score", "parameters": {"binary_data": 1}}]}, FORTY), "outputs[0].parameters.binary_data", "type"),
    "output-classification": (*framed({"inputs": [tensor(), CHANNEL_JSON], "outputs": [
        {"name": "label", "parameters": {"classification": 2}}]}, FORTY), "outputs[0].parameters.classification",
                              "unsupported"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_malformed_binary_request_is_a_400_naming_the_field(loop: asyncio.AbstractEventLoop, mistake: str) -> None:
    body, length, field, rule = MISTAKES[mistake]
    app = app_for(served(), loop)
    answer = post(app, loop, body, length)
    assert (answer.status, answer.json().get("field"), answer.json()["rule"]) == (400, field, rule), answer.body
    assert app.metrics.value("model_requests_total", code="400") == 1


def test_the_header_on_a_v1_request_is_refused(loop: asyncio.AbstractEventLoop) -> None:
    body, length = framed({"instances": [{"amount": 4.0, "channel": "web"}]})
    answer = post(app_for(served(), loop), loop, body, length, path=f"/v1/models/{MODEL}:predict")
    assert (answer.status, answer.json()["field"]) == (400, binary.HEADER)


def test_a_binary_request_still_meets_the_contract(loop: asyncio.AbstractEventLoop) -> None:
    answer = post(app_for(served(), loop), loop, *triton_body([("amount", "FP64", [140.0]), ("channel", "BYTES",
                                                                                              ["web"])]))
    assert (answer.status, answer.json()["rule"], answer.json()["field"]) == (422, "max", "amount")


def test_decoding_errors_are_request_errors_not_crashes() -> None:
    with pytest.raises(RequestError, match="inputs\\[0\\] \\(amount\\)"):
        binary.attach({"inputs": [tensor(size=4)]}, memoryview(b"\0" * 4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_binary_requests_never_get_a_server_error(loop: asyncio.AbstractEventLoop, data: st.DataObject) -> None:
    model = data.draw(st.sampled_from([served, served_multiclass, served_regression]), label="model")
    body, length = triton_body([AMOUNT, CHANNEL], request_id="r")
    assert length is not None
    head = json.loads(body[:length])
    how = data.draw(st.sampled_from(["field", "length", "bytes", "outputs"]), label="how")
    raw = body[length:]
    if how == "field":
        target = head["inputs"][data.draw(st.integers(0, 1))]
        key = data.draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]), label="key")
        target[key] = data.draw(JSON_VALUES, label="value")
    elif how == "length":
        length = data.draw(st.integers(-1, len(body) + 2), label="length")
    elif how == "bytes":
        raw = data.draw(st.binary(max_size=64), label="raw")
    else:
        head[data.draw(st.sampled_from(["outputs", "parameters"]))] = data.draw(JSON_VALUES, label="value")
    if how != "length":
        text = json.dumps(head).encode()
        body, length = text + raw, len(text)
    answer = post(app_for(model(), loop), loop, body, length)
    assert 200 <= answer.status < 500
    if answer.status != 200:
        assert answer.json()["error"] and answer.json()["rule"]
