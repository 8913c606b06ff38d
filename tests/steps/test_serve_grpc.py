"""The model server's KServe V2 gRPC service as a standard client meets it: real `python -m steps.serve --grpc-port`
processes on 127.0.0.1 serving binary, multiclass and regression bundles, called by tritonclient.grpc (raw tensors,
its default) and by Triton's own message types with typed contents. Scores equal the HTTP JSON answer's and the
trained model's; bad input is INVALID_ARGUMENT naming the field; gRPC and HTTP requests share batches; SIGTERM
answers every call in flight; /metrics counts gRPC calls with protocol="grpc".

This process never imports steps._serving.grpc's stubs: they and tritonclient's both define the protobuf package
`inference`, which one process's descriptor pool holds once."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import task as _task
from steps._model.bundle import Bundle
from tests.support import faults, tasks
from tests.support.models import Trained
from tests.support.processes import free_port
from tests.support.serving import Server, call, metric, start

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (a dev extra) is not installed")
pytestmark = pytest.mark.integration

TASKS = ("binary", "multiclass", "regression")
OUTPUTS = {"binary": ["score", "label"], "multiclass": ["label", "probabilities"], "regression": ["value"]}
DTYPES = {"FP64": np.float64, "INT64": np.int64, "BYTES": np.object_}


@pytest.fixture(scope="module", params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def bundle(task: str, trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained if task == "binary" else tasks.trained_task_bundle(tmp_path_factory, task)


@pytest.fixture(scope="module")
def served(bundle: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    grpc_port = free_port()
    s = start(bundle.bundle, tmp_path_factory.mktemp("grpc"), "--grpc-port", str(grpc_port))
    yield s, grpc_port
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(served: tuple[Server, int]) -> Iterator[Any]:
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{served[1]}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def model(served: tuple[Server, int]) -> dict[str, Any]:
    """The model's V2 metadata over HTTP: its name and its inputs (name, datatype)."""
    server = served[0]
    name = served_model(server)
    status, meta = server.call("GET", f"/v2/models/{name}")
    assert status == 200
    return meta


@pytest.fixture(scope="module")
def rows(task: str, bundle: Trained) -> list[dict[str, Any]]:
    """Rows with every value present (JSON has no NaN), as their feature types carry them."""
    if task == "binary":
        policy = load_policy(bundle.policy)
        frame = generate(300, seed=21)[policy.data.feature_names]
    else:
        frame = tasks.task_frame(task, rows=300, seed=21).drop(columns=["queue" if task == "multiclass" else "demand"])
    records = json.loads(frame.to_json(orient="records"))
    return [r for r in records if not any(v is None or (isinstance(v, float) and math.isnan(v))
                                          for v in r.values())][:40]


def tensors(model: dict[str, Any], rows: list[dict[str, Any]]) -> list[Any]:
    """tritonclient.grpc inputs, one per feature, set from numpy: raw_input_contents, as the client sends."""
    out = []
    for spec in model["inputs"]:
        values = np.array([r[spec["name"]] for r in rows], dtype=DTYPES[spec["datatype"]])
        tensor = grpcclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def json_body(model: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": [{"name": s["name"], "datatype": s["datatype"], "shape": [len(rows)],
                        "data": [r[s["name"]] for r in rows]} for s in model["inputs"]]}


def served_model(server: Server) -> str:
    return str(next(line["model"] for line in server.log_lines() if line.get("event") == "ready"))


def grpc_status(err: Any) -> str:
    return str(err.status())


# --- health, metadata, answers ---------------------------------------------------------------------------------


def test_health_and_metadata_over_grpc(client: Any, model: dict[str, Any], task: str) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model["name"]) and client.is_model_ready(model["name"], model["versions"][0])
    assert client.get_server_metadata(as_json=True)["name"] == "argo-mlops"
    meta = client.get_model_metadata(model["name"], as_json=True)
    assert meta["name"] == model["name"] and meta["versions"] == model["versions"]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [(i["name"], i["datatype"])
                                                                   for i in model["inputs"]]
    assert [o["name"] for o in meta["outputs"]] == OUTPUTS[task]


def test_scores_equal_the_http_json_answer_and_the_trained_model(served: tuple[Server, int], client: Any,
                                                                 model: dict[str, Any], task: str, bundle: Trained,
                                                                 rows: list[dict[str, Any]]) -> None:
    result = client.infer(model["name"], tensors(model, rows), request_id="grpc-1")
    response = result.get_response()
    assert (response.model_name, response.id) == (model["name"], "grpc-1")
    status, http_answer = served[0].call("POST", f"/v2/models/{model['name']}/infer", json_body(model, rows))
    assert status == 200, http_answer
    for output in http_answer["outputs"]:
        got = result.as_numpy(output["name"])
        assert list(got.shape) == output["shape"], output["name"]
        flat = got.reshape(-1).tolist()
        if output["datatype"] == "BYTES":
            flat = [v.decode() for v in flat]
        assert flat == output["data"], output["name"]  # the very same numbers and labels
    expected = _task.predict(Bundle.open(bundle.bundle).pipeline, pd.DataFrame(rows), task)
    main = {"binary": "score", "multiclass": "probabilities", "regression": "value"}[task]
    assert np.max(np.abs(result.as_numpy(main) - expected)) < 1e-9


def test_typed_contents_and_requested_outputs(served: tuple[Server, int], model: dict[str, Any], task: str,
                                              rows: list[dict[str, Any]]) -> None:
    """A client that fills each input's typed contents (not raw) gets typed contents back, only the outputs it
    asked for."""
    import grpc

    pb, stubs = grpcclient.service_pb2, grpcclient.service_pb2_grpc
    request = pb.ModelInferRequest(model_name=model["name"], id="typed")
    for spec in model["inputs"]:
        tensor = request.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=[len(rows)])
        values = [r[spec["name"]] for r in rows]
        if spec["datatype"] == "FP64":
            tensor.contents.fp64_contents.extend(float(v) for v in values)
        elif spec["datatype"] == "INT64":
            tensor.contents.int64_contents.extend(int(v) for v in values)
        else:
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
    wanted = OUTPUTS[task][-1]
    request.outputs.add(name=wanted)
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        response = stubs.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert [o.name for o in response.outputs] == [wanted] and not response.raw_output_contents
    status, http_answer = served[0].call("POST", f"/v2/models/{model['name']}/infer", json_body(model, rows))
    expected = next(o for o in http_answer["outputs"] if o["name"] == wanted)
    got = response.outputs[0]
    values = (list(got.contents.fp64_contents) if got.datatype == "FP64" else list(got.contents.int64_contents)
              if got.datatype == "INT64" else [v.decode() for v in got.contents.bytes_contents])
    assert (got.datatype, list(got.shape), values) == (expected["datatype"], expected["shape"], expected["data"])


# --- mistakes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mistake", ["unknown_feature", "wrong_datatype", "missing_feature", "short_raw",
                                     "unknown_output", "too_many_rows"])
def test_bad_input_is_invalid_argument_naming_the_field(client: Any, model: dict[str, Any],
                                                        rows: list[dict[str, Any]], mistake: str) -> None:
    inputs = tensors(model, rows[:3])
    first = model["inputs"][0]["name"]
    named = first
    outputs = None
    if mistake == "unknown_feature":
        extra = grpcclient.InferInput("colour", [3], "BYTES")
        extra.set_data_from_numpy(np.array(["red"] * 3, dtype=np.object_))
        inputs.append(extra)
        named = "colour"
    elif mistake == "wrong_datatype":
        inputs[0] = grpcclient.InferInput(first, [3], "BOOL")
        inputs[0].set_data_from_numpy(np.array([True] * 3))
    elif mistake == "missing_feature":
        required = next(i for i in model["inputs"] if i["name"] != "x1")["name"]  # x1 is nullable in the tasks
        inputs = [t for t in inputs if t.name() != required]
        named = required
    elif mistake == "short_raw":
        inputs[0].set_shape([4])  # says 4 rows, carries 3
    elif mistake == "too_many_rows":  # INVALID_ARGUMENT as Triton answers a batch over its maximum: a retry fails too
        inputs = tensors(model, rows[:1] * 1001)
        named = "more than the server's limit of 1000"
    else:
        outputs = [grpcclient.InferRequestedOutput("explanation")]
        named = "explanation"
    with pytest.raises(grpcclient.InferenceServerException) as caught:
        client.infer(model["name"], inputs, outputs=outputs)
    assert grpc_status(caught.value) == "StatusCode.INVALID_ARGUMENT", caught.value.message()
    assert named in caught.value.message()


def test_an_unknown_model_or_version_is_not_found(client: Any, model: dict[str, Any],
                                                  rows: list[dict[str, Any]]) -> None:
    for name, version in (("no-such-model", ""), (model["name"], "999")):
        with pytest.raises(grpcclient.InferenceServerException) as caught:
            client.infer(name, tensors(model, rows[:1]), model_version=version)
        assert grpc_status(caught.value) == "StatusCode.NOT_FOUND"
        assert model["name"] in caught.value.message()  # it says which model it serves
    with pytest.raises(grpcclient.InferenceServerException) as caught:
        client.get_model_metadata("no-such-model")
    assert grpc_status(caught.value) == "StatusCode.NOT_FOUND"


def test_metrics_count_grpc_calls_by_protocol(served: tuple[Server, int], client: Any, model: dict[str, Any],
                                              rows: list[dict[str, Any]]) -> None:
    server = served[0]
    labels = {"model": model["name"]}

    def counted(code: str, protocol: str) -> float:
        return metric(server.call("GET", "/metrics")[1], "model_requests_total", code=code, protocol=protocol,
                      **labels)

    before = {(c, p): counted(c, p) for c in ("200", "400", "404") for p in ("grpc", "http")}
    for _ in range(3):
        client.infer(model["name"], tensors(model, rows[:2]))
    extra = grpcclient.InferInput("colour", [2], "BYTES")
    extra.set_data_from_numpy(np.array(["red"] * 2, dtype=np.object_))
    with pytest.raises(grpcclient.InferenceServerException):
        client.infer(model["name"], [*tensors(model, rows[:2]), extra])  # not a feature
    with pytest.raises(grpcclient.InferenceServerException):
        client.infer("no-such-model", tensors(model, rows[:2]))
    assert counted("200", "grpc") - before["200", "grpc"] == 3
    assert counted("400", "grpc") - before["400", "grpc"] == 1
    assert counted("404", "grpc") - before["404", "grpc"] == 1
    assert {c: counted(c, "http") for c in ("200", "400", "404")} == {c: before[c, "http"] for c in ("200", "400",
                                                                                                      "404")}
    text = server.call("GET", "/metrics")[1]
    assert metric(text, "model_inference_duration_seconds_count", protocol="grpc", **labels) >= 5


# --- batching and shutdown, with a slow model ---------------------------------------------------------------------


def slow_server(trained: Trained, tmp: Any, monkeypatch: pytest.MonkeyPatch, latency_ms: int) -> tuple[Server, int]:
    """A binary server whose model takes `latency_ms` per batch (tests/support/faults), in its helper thread
    (the skops predictor), so requests keep arriving and queue while it computes."""
    faults.inject(monkeypatch, f"latency_ms={latency_ms}")
    grpc_port = free_port()
    server = start(trained.bundle, tmp, "--grpc-port", str(grpc_port), "--predictor", "skops",
                   env={"MLOPS_DEPLOY_ROLE": "canary"}, pythonpath=str(faults.FOLDER))
    return server, grpc_port


def test_grpc_and_http_requests_share_batches(trained: Trained, tmp_path: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server, grpc_port = slow_server(trained, tmp_path, monkeypatch, 800)
    try:
        name = served_model(server)
        meta = server.call("GET", f"/v2/models/{name}")[1]
        policy = load_policy(trained.policy)
        records = json.loads(generate(50, seed=5)[policy.data.feature_names].to_json(orient="records"))
        one = [r for r in records if None not in r.values()][:1]
        clients = [grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}") for _ in range(8)]
        for c in clients:
            assert c.is_server_live()  # connected before the burst
        blocker = threading.Thread(target=call, args=(server.port, "POST", f"/v2/models/{name}/infer",
                                                      json_body(meta, one)))
        blocker.start()
        threading.Event().wait(0.3)  # the blocker's batch is in the model; the burst below queues behind it
        with ThreadPoolExecutor(16) as pool:
            grpc_calls = [pool.submit(c.infer, name, tensors(meta, one)) for c in clients]
            http_calls = [pool.submit(call, server.port, "POST", f"/v2/models/{name}/infer", json_body(meta, one))
                          for _ in range(8)]
            scores = {round(float(f.result().as_numpy("score")[0]), 12) for f in grpc_calls}
            scores |= {round(f.result()[1]["outputs"][0]["data"][0], 12) for f in http_calls}
        blocker.join()
        assert len(scores) == 1  # the same row, the same score, either way
        text = server.call("GET", "/metrics")[1]
        batches = metric(text, "model_batch_size_count")
        # 17 rows; a batch of more than 8 holds rows of both protocols (8 of each in the burst).
        assert metric(text, "model_inference_rows_total") == 17
        assert batches - metric(text, "model_batch_size_bucket", le="8.0") >= 1, text
        for c in clients:
            c.close()
    finally:
        assert server.stop() == 0


def test_sigterm_answers_every_grpc_call_in_flight(trained: Trained, tmp_path: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server, grpc_port = slow_server(trained, tmp_path, monkeypatch, 1500)
    name = served_model(server)
    meta = server.call("GET", f"/v2/models/{name}")[1]
    policy = load_policy(trained.policy)
    records = json.loads(generate(50, seed=6)[policy.data.feature_names].to_json(orient="records"))
    some = [r for r in records if None not in r.values()][:3]
    clients = [grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}") for _ in range(6)]
    for c in clients:
        assert c.is_server_live()
    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(c.infer, name, tensors(meta, some)) for c in clients]
        http_call = pool.submit(call, server.port, "POST", f"/v2/models/{name}/infer", json_body(meta, some))
        threading.Event().wait(0.5)  # every call has reached the server; the model is still computing
        assert server.proc.poll() is None
        server.proc.send_signal(15)
        answers = [f.result().as_numpy("score").shape for f in calls]
        assert http_call.result()[0] == 200
    assert answers == [(3,)] * 6
    assert server.proc.wait(timeout=30) == 0
    assert any(line.get("event") == "stopped" for line in server.log_lines())
    for c in clients:
        c.close()
