"""The model server for multiclass and regression models as clients meet it: real `python -m steps.serve` processes
on 127.0.0.1 serving bundles that steps.train trained, real HTTP. V1 and Open Inference Protocol V2 answers equal
scikit-learn's predictions, a standard OIP client (tritonclient) reads them, bad requests are still 4xx,
/metrics counts the predictions in the profile's bins, and the inference log records each task's prediction."""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps._model import profile as _profile
from steps._model import task as _task
from steps._model.bundle import Bundle
from steps._serving.outputs import SHIFT_EDGES
from tests.support import tasks
from tests.support.models import Trained
from tests.support.serving import JSON_VALUES, Server, metric, start

pytestmark = pytest.mark.integration
TASKS = ("multiclass", "regression")
MODELS = {"multiclass": "ticket-queue", "regression": "demand"}
V2_TYPES = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}
FEATURES = [(str(f["name"]), str(f["type"])) for f in cast(list[dict[str, Any]], tasks.FEATURES)]  # (name, type)


@pytest.fixture(scope="module", params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def trained(task: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return tasks.trained_task_bundle(tmp_path_factory, task)


@pytest.fixture(scope="module")
def rows(task: str) -> list[dict[str, Any]]:
    """Request rows as a JSON client sends them (null for a missing value), not the training rows."""
    frame = tasks.task_frame(task, rows=300, seed=21).drop(columns=["queue" if task == "multiclass" else "demand"])
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
            for record in json.loads(frame.to_json(orient="records"))]


@pytest.fixture(scope="module")
def expected(trained: Trained, task: str, rows: list[dict[str, Any]]) -> np.ndarray:
    """scikit-learn's predictions for the rows: [n, k] probabilities, or [n] values."""
    return _task.predict(Bundle.open(trained.bundle).pipeline, pd.DataFrame(rows), task)


def predict_path(task: str) -> str:
    return f"/v1/models/{MODELS[task]}:predict"


def infer_path(task: str) -> str:
    return f"/v2/models/{MODELS[task]}/infer"


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "req-9", "inputs": [{"name": name, "datatype": V2_TYPES[kind], "shape": [len(rows)],
                                       "data": [r[name] for r in rows]} for name, kind in FEATURES]}


def test_v1_answers_by_task(server: Server, task: str, rows: list[dict[str, Any]], expected: np.ndarray) -> None:
    status, out = server.call("POST", predict_path(task), {"instances": rows[:60]})
    assert status == 200, out
    assert set(out) == {"predictions", "model_version"} and out["model_version"] == "unregistered"
    predictions = out["predictions"]
    assert len(predictions) == 60
    if task == "regression":
        assert all(set(p) == {"value"} for p in predictions)
        assert np.max(np.abs(np.array([p["value"] for p in predictions]) - expected[:60])) < 1e-9
        return
    assert all(set(p) == {"label", "probabilities"} for p in predictions)
    # Over exactly the classes, in class order, summing to 1, equal to scikit-learn's, the most probable the label.
    assert all(list(p["probabilities"]) == tasks.CLASSES for p in predictions)
    proba = np.array([list(p["probabilities"].values()) for p in predictions])
    assert np.max(np.abs(proba.sum(axis=1) - 1)) < 1e-9
    assert np.max(np.abs(proba - expected[:60])) < 1e-9
    assert [p["label"] for p in predictions] == _task.labels_of(expected[:60], tasks.CLASSES, None, task)


def test_v2_answers_by_task_with_the_class_order_in_the_metadata(server: Server, task: str,
                                                                 rows: list[dict[str, Any]],
                                                                 expected: np.ndarray) -> None:
    status, out = server.call("POST", infer_path(task), v2_body(rows[:7]))
    assert status == 200, out
    assert out["model_name"] == MODELS[task] and out["id"] == "req-9"
    outputs = {o["name"]: o for o in out["outputs"]}
    status, meta = server.call("GET", f"/v2/models/{MODELS[task]}")
    assert status == 200
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [(name, V2_TYPES[kind]) for name, kind in FEATURES]
    assert meta["parameters"]["task"] == task
    if task == "regression":
        assert list(outputs) == ["value"] and (outputs["value"]["datatype"], outputs["value"]["shape"]) == (
            "FP64", [7])
        assert np.max(np.abs(np.array(outputs["value"]["data"]) - expected[:7])) < 1e-9
        assert meta["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1]}]
        return
    assert list(outputs) == ["label", "probabilities"]
    assert (outputs["label"]["datatype"], outputs["label"]["shape"]) == ("BYTES", [7])
    assert (outputs["probabilities"]["datatype"], outputs["probabilities"]["shape"]) == ("FP64", [7, 4])
    proba = np.array(outputs["probabilities"]["data"]).reshape(7, 4)
    assert np.max(np.abs(proba - expected[:7])) < 1e-9
    assert outputs["label"]["data"] == _task.labels_of(expected[:7], tasks.CLASSES, None, task)
    assert meta["parameters"]["classes"] == tasks.CLASSES
    assert meta["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP64", "shape": [-1, 4]}]


def test_a_standard_open_inference_protocol_client_reads_the_answers(server: Server, task: str,
                                                                     rows: list[dict[str, Any]],
                                                                     expected: np.ndarray) -> None:
    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed (a dev extra): "
                                                           "the standard OIP client cannot be tried")
    picked = [i for i, r in enumerate(rows) if None not in r.values()][:5]  # JSON has no NaN for a missing value
    client = http.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_ready() and client.is_model_ready(MODELS[task])
        inputs = []
        for name, kind in FEATURES:
            values = [rows[i][name] for i in picked]
            dtype = {"numeric": np.float64, "integer": np.int64, "categorical": np.object_}[kind]
            tensor = http.InferInput(name, [len(picked)], V2_TYPES[kind])
            tensor.set_data_from_numpy(np.array(values, dtype=dtype), binary_data=False)
            inputs.append(tensor)
        names = ["value"] if task == "regression" else ["label", "probabilities"]
        result = client.infer(MODELS[task], inputs,
                              outputs=[http.InferRequestedOutput(n, binary_data=False) for n in names])
        if task == "regression":
            assert np.max(np.abs(result.as_numpy("value") - expected[picked])) < 1e-9
            return
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (len(picked), 4)
        assert np.max(np.abs(probabilities - expected[picked])) < 1e-9
        assert [str(label) for label in result.as_numpy("label")] == _task.labels_of(
            expected[picked], tasks.CLASSES, None, task)
        assert client.get_model_metadata(MODELS[task])["parameters"]["classes"] == tasks.CLASSES
    finally:
        client.close()


@pytest.mark.parametrize(("mistake", "status", "rule"), [
    ("out_of_range", 422, "max"), ("unknown_feature", 422, "unknown_field"), ("missing_feature", 422, "required"),
    ("wrong_type", 422, "type"), ("no_rows", 422, "rows"), ("malformed_json", 400, "json"),
])
def test_bad_requests_are_still_a_4xx_naming_the_rule(server: Server, task: str, rows: list[dict[str, Any]],
                                                      mistake: str, status: int, rule: str) -> None:
    row = next(r for r in rows if None not in r.values())
    body: Any = {
        "out_of_range": {"instances": [{**row, "x2": 11.0}]},
        "unknown_feature": {"instances": [{**row, "colour": "red"}]},
        "missing_feature": {"instances": [{k: v for k, v in row.items() if k != "x2"}]},
        "wrong_type": {"instances": [{**row, "count": "many"}]},
        "no_rows": {"instances": []},
    }.get(mistake)
    raw = b'{"instances": [' if mistake == "malformed_json" else None
    got, out = server.call("POST", predict_path(task), body, raw=raw)
    assert (got, out["rule"]) == (status, rule), out


def test_metrics_count_each_prediction_in_its_bin_of_the_profile(trained: Trained, task: str, tmp_path: Path,
                                                                 rows: list[dict[str, Any]],
                                                                 expected: np.ndarray) -> None:
    s = start(trained.bundle, tmp_path, env={"WORKERS": "2"})
    try:
        for i in range(0, 40, 8):  # new connections: both workers answer some
            assert s.call("POST", predict_path(task), {"instances": rows[i:i + 8]})[0] == 200
        assert s.call("POST", infer_path(task), v2_body(rows[40:50]))[0] == 200
        status, text = s.call("GET", "/metrics")
    finally:
        assert s.stop() == 0
    assert status == 200
    labels = {"model": MODELS[task], "model_version": "unregistered"}
    reference = json.loads((trained.bundle / "profile.json").read_text())["prediction"]
    served = (np.array(_task.labels_of(expected[:50], tasks.CLASSES, None, task), dtype=object)
              if task == "multiclass" else expected[:50])
    wanted = _profile.bin_counts(reference, served)  # where training's reference puts the same predictions
    for label in _profile.bin_labels(reference):  # every bin declared, each with its count
        assert metric(text, "model_prediction_bin_total", bin=label, **labels) == wanted.get(label, 0), label
    assert metric(text, "model_inference_rows_total", **labels) == 50
    assert "model_prediction_score" not in text  # a binary model's histogram
    # A value also counts in its fixed signed-log bin, the same for every version (the canary's prediction-shift
    # guard compares those); a multiclass model's classes are the same for every version already.
    if task == "multiclass":
        assert "model_prediction_shift_bin_total" not in text
        return
    edges = SHIFT_EDGES["regression"]
    fixed = [bisect_left(edges, v) for v in expected[:50]]
    assert [metric(text, "model_prediction_shift_bin_total", bin=str(i), **labels)
            for i in range(len(edges) + 1)] == [fixed.count(i) for i in range(len(edges) + 1)]


def test_the_skops_predictor_answers_the_same(trained: Trained, task: str, tmp_path: Path,
                                              rows: list[dict[str, Any]], expected: np.ndarray) -> None:
    s = start(trained.bundle, tmp_path, env={"PREDICTOR": "skops"})
    try:
        status, out = s.call("POST", predict_path(task), {"instances": rows[:40]})
        meta = s.call("GET", f"/v2/models/{MODELS[task]}")[1]
    finally:
        assert s.stop() == 0
    assert status == 200 and meta["platform"] == "argo-mlops/skops"
    got = (np.array([p["value"] for p in out["predictions"]]) if task == "regression"
           else np.array([list(p["probabilities"].values()) for p in out["predictions"]]))
    assert np.max(np.abs(got - expected[:40])) < 1e-12


@pytest.mark.parametrize("estimator", ["random_forest", "linear"])
def test_a_model_without_compiled_trees_is_served_through_skops_and_says_why(
        task: str, estimator: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        rows: list[dict[str, Any]]) -> None:
    name = estimator if estimator != "linear" else ("logistic_regression" if task == "multiclass" else "ridge")
    trained = tasks.trained_task_bundle(tmp_path_factory, task, name)
    expected = _task.predict(Bundle.open(trained.bundle).pipeline, pd.DataFrame(rows[:20]), task)
    s = start(trained.bundle, tmp_path)
    try:
        status, out = s.call("POST", predict_path(task), {"instances": rows[:20]})
    finally:
        assert s.stop() == 0
    assert status == 200, out
    got = (np.array([p["value"] for p in out["predictions"]]) if task == "regression"
           else np.array([list(p["probabilities"].values()) for p in out["predictions"]]))
    assert np.max(np.abs(got - expected)) < 1e-12
    loaded = next(line for line in s.log_lines() if line["event"] == "loaded")
    assert (loaded["predictor"], loaded["task"]) == ("skops", task)
    assert f"{name} is served through skops" in loaded["not_compiled"]


def test_the_inference_log_records_each_tasks_prediction(trained: Trained, task: str, tmp_path: Path,
                                                         rows: list[dict[str, Any]], expected: np.ndarray) -> None:
    folder = tmp_path / "inference-log"
    s = start(trained.bundle, tmp_path, env={"INFERENCE_LOG": str(folder), "INFERENCE_LOG_SAMPLE": "1"})
    try:
        assert s.call("POST", predict_path(task), {"instances": rows[:12]})[0] == 200
    finally:
        assert s.stop() == 0
    logged = pd.concat([pd.read_parquet(f) for f in sorted(folder.rglob("*.parquet"))], ignore_index=True)
    assert len(logged) == 12 and "score" not in logged
    logged = logged.sort_values("x2").reset_index(drop=True)
    order = np.argsort([r["x2"] for r in rows[:12]], kind="stable")
    if task == "regression":
        assert np.max(np.abs(logged["value"].to_numpy() - expected[:12][order])) < 1e-9
    else:
        assert logged["label"].tolist() == [_task.labels_of(expected[:12], tasks.CLASSES, None, task)[i]
                                            for i in order]


def test_the_compiled_models_are_served_without_scikit_learn_or_pandas(trained: Trained, task: str, tmp_path: Path,
                                                                       rows: list[dict[str, Any]]) -> None:
    poison = tmp_path / "poison"
    for package in ("sklearn", "pandas"):
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(f"raise ImportError('the server imported {package}')\n")
    s = start(trained.bundle, tmp_path, pythonpath=str(poison))
    try:
        assert s.call("POST", predict_path(task), {"instances": rows[:3]})[0] == 200
        assert s.call("GET", f"/v2/models/{MODELS[task]}")[1]["platform"] == "argo-mlops/compiled"
    finally:
        assert s.stop() == 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_bodies_never_get_a_server_error(server: Server, task: str, rows: list[dict[str, Any]],
                                                data: st.DataObject) -> None:
    row = dict(rows[0])
    v2 = data.draw(st.booleans(), label="v2")
    body: Any = v2_body([row]) if v2 else {"instances": [row]}
    if v2:
        tensor = body["inputs"][data.draw(st.integers(0, len(body["inputs"]) - 1))]
        tensor[data.draw(st.sampled_from(["name", "datatype", "shape", "data"]))] = data.draw(JSON_VALUES)
    else:
        body["instances"][0][data.draw(st.sampled_from(sorted(row)))] = data.draw(JSON_VALUES, label="value")
    status, out = server.call("POST", infer_path(task) if v2 else predict_path(task),
                              raw=json.dumps(body, allow_nan=True).encode())
    assert status < 500, out
    assert out.get("predictions") or out.get("outputs") if status == 200 else out["error"] and out["rule"]
