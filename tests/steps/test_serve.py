"""The model server as users and Kubernetes meet it: real `python -m steps.serve` processes on 127.0.0.1, real
HTTP. Endpoints and payloads (V1 and Open Inference Protocol V2), contract errors, fuzzed bodies, metrics across
workers (and promtool), refusing a tampered bundle, draining on SIGTERM, and the init container's `fetch`."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import bundle as _bundle
from steps._model import profile as _profile
from steps._model import skops as _model
from steps._model import trees as _predictor
from steps._serving.outputs import SHIFT_EDGES
from tests.support.models import Trained
from tests.support.paths import ROOT
from tests.support.processes import free_port
from tests.support.serving import JSON_VALUES, Server, call, metric, start, wait_ready

pytestmark = pytest.mark.integration
MODEL = "fraud-detection"
KINDS = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}


@pytest.fixture(scope="module")
def policy(trained: Trained) -> Any:
    return load_policy(trained.policy)


@pytest.fixture(scope="module")
def rows(policy: Any) -> list[dict[str, Any]]:
    frame = generate(400, seed=21)[policy.data.feature_names]
    casts = {"numeric": float, "integer": int, "categorical": str}
    out = []
    for record in frame.to_dict("records"):
        out.append({f.name: None if record[f.name] is None or record[f.name] != record[f.name]
                    else casts[f.type](record[f.name]) for f in policy.data.features})
    return out


@pytest.fixture(scope="module")
def expected(trained: Trained, rows: list[dict[str, Any]]) -> np.ndarray:
    import pandas as pd

    pipeline = _model.load(trained.bundle / _model.MODEL_FILE)
    return pipeline.predict_proba(pd.DataFrame(rows))[:, 1]


def v2_body(policy: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    inputs = []
    for f in policy.data.features:
        tensor = {"name": f.name, "datatype": KINDS[f.type], "shape": [len(rows)], "data": [r[f.name] for r in rows]}
        if f.type == "categorical":
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return {"id": "req-1", "parameters": {"content_type": "pd"}, "inputs": inputs}


# --- endpoints and payloads ------------------------------------------------------------------------------------


def test_v1_predict_answers_scores_labels_and_version(server: Server, rows: list[dict[str, Any]],
                                                      expected: np.ndarray, trained: Trained) -> None:
    threshold = json.loads((trained.bundle / "bundle.json").read_text())["threshold"]
    status, out = server.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:50]})
    assert status == 200, out
    assert set(out) == {"predictions", "model_version"} and out["model_version"] == "unregistered"
    scores = np.array([p["score"] for p in out["predictions"]])
    assert np.max(np.abs(scores - expected[:50])) < 1e-12
    assert [p["label"] for p in out["predictions"]] == [int(s >= threshold) for s in scores]


def test_v2_infer_takes_the_open_inference_protocol_body(server: Server, policy: Any, rows: list[dict[str, Any]],
                                                         expected: np.ndarray) -> None:
    status, out = server.call("POST", f"/v2/models/{MODEL}/infer", v2_body(policy, rows[:7]))
    assert status == 200, out
    assert out["model_name"] == MODEL and out["id"] == "req-1"
    score = next(o for o in out["outputs"] if o["name"] == "score")
    label = next(o for o in out["outputs"] if o["name"] == "label")
    assert (score["datatype"], score["shape"], label["datatype"]) == ("FP64", [7], "INT64")
    assert np.max(np.abs(np.array(score["data"]) - expected[:7])) < 1e-12
    versioned = f"/v2/models/{MODEL}/versions/unregistered/infer"
    assert server.call("POST", versioned, v2_body(policy, rows[:1]))[0] == 200


def test_v2_metadata_lists_one_input_per_feature_with_its_datatype(server: Server, policy: Any) -> None:
    status, meta = server.call("GET", f"/v2/models/{MODEL}")
    assert status == 200
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [(f.name, KINDS[f.type])
                                                                      for f in policy.data.features]
    assert meta["versions"] == ["unregistered"] and meta["platform"] == "argo-mlops/compiled"
    assert {o["name"] for o in meta["outputs"]} == {"score", "label"}
    assert server.call("GET", "/v2")[1]["name"] == "argo-mlops"
    assert server.call("GET", f"/v2/models/{MODEL}/ready") == (200, {"name": MODEL, "ready": True})


@pytest.mark.parametrize("path", ["/v1/health/live", "/v2/health/live", "/v1/health/ready", "/v2/health/ready"])
def test_health_endpoints(server: Server, path: str) -> None:
    assert server.call("GET", path)[0] == 200


# --- client mistakes ------------------------------------------------------------------------------------------


def _mistakes(row: dict[str, Any]) -> dict[str, tuple[str, str, bytes | Any, dict[str, str], int, str]]:
    """name -> (method, path, body, headers, status, rule)."""
    predict = f"/v1/models/{MODEL}:predict"

    def with_(**changes: Any) -> dict[str, Any]:
        return {"instances": [{**row, **changes}]}

    missing = dict(row)
    missing.pop("amount", None)
    return {
        "missing_field": ("POST", predict, {"instances": [missing]}, {}, 422, "required"),
        "wrong_type": ("POST", predict, with_(hour="noon"), {}, 422, "type"),
        "unknown_category_rejected": ("POST", predict, with_(channel="fax"), {}, 422, "category"),
        "out_of_range": ("POST", predict, with_(utilization=5), {}, 422, "max"),
        "nan_literal_not_nullable": ("POST", predict,
                                     json.dumps(with_(amount=1.0)).replace('"amount": 1.0', '"amount": NaN').encode(),
                                     {}, 422, "nullable"),
        "infinity_literal": ("POST", predict, json.dumps(with_(amount=1.0)).replace(
            '"amount": 1.0', '"amount": Infinity').encode(), {}, 422, "finite"),
        "too_many_rows": ("POST", predict, {"instances": [row] * 1001}, {}, 413, "max_rows"),
        "body_too_large": ("POST", predict, b'{"instances": [' + b" " * (5 * 1024 * 1024) + b"]}", {}, 413,
                           "max_body_bytes"),
        "malformed_json": ("POST", predict, b'{"instances": [', {}, 400, "json"),
        "wrong_content_type": ("POST", predict, with_(), {"Content-Type": "text/csv"}, 415, "content_type"),
        "get_on_predict": ("GET", predict, None, {}, 405, "method"),
        "another_model": ("POST", "/v1/models/churn:predict", with_(), {}, 404, "route"),
    }


@pytest.mark.parametrize("mistake", list(_mistakes({})))
def test_client_mistakes_get_a_4xx_naming_the_field_and_rule(server: Server, rows: list[dict[str, Any]],
                                                             mistake: str) -> None:
    row = next(r for r in rows if None not in r.values())
    method, path, body, headers, status, rule = _mistakes(row)[mistake]
    raw = body if isinstance(body, bytes) else None
    got_status, out = server.call(method, path, None if raw is not None else body, headers, raw=raw)
    assert (got_status, out["rule"]) == (status, rule), out
    if status == 422:
        field = out["field"]
        assert out["error"].startswith(f"instances[0].{field}:")


def test_unknown_category_mapped_to_other_is_scored(server: Server, rows: list[dict[str, Any]]) -> None:
    row = {**next(r for r in rows if None not in r.values()), "merchant_category": "space-tourism"}
    status, out = server.call("POST", f"/v1/models/{MODEL}:predict", {"instances": [row]})
    assert status == 200 and 0 <= out["predictions"][0]["score"] <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_bodies_never_get_a_server_error(server: Server, policy: Any, rows: list[dict[str, Any]],
                                                data: st.DataObject) -> None:
    row = dict(rows[0])
    v2 = data.draw(st.booleans(), label="v2")
    body: Any = v2_body(policy, [row]) if v2 else {"instances": [row]}
    how = data.draw(st.sampled_from(["value", "key", "whole", "bytes"]), label="how")
    if how == "value" and not v2:
        body["instances"][0][data.draw(st.sampled_from(sorted(row)))] = data.draw(JSON_VALUES, label="value")
    elif how == "value":
        tensor = body["inputs"][data.draw(st.integers(0, len(body["inputs"]) - 1))]
        tensor[data.draw(st.sampled_from(["name", "datatype", "shape", "data"]))] = data.draw(JSON_VALUES)
    elif how == "key":
        target = body["instances"][0] if not v2 else body
        target[data.draw(st.text(max_size=8), label="key")] = data.draw(JSON_VALUES)
    elif how == "whole":
        body = data.draw(JSON_VALUES, label="body")
    payload = (data.draw(st.binary(max_size=200), label="bytes") if how == "bytes"
               else json.dumps(body, allow_nan=True).encode())
    path = f"/v2/models/{MODEL}/infer" if v2 else f"/v1/models/{MODEL}:predict"
    status, out = server.call("POST", path, raw=payload)
    assert status < 500, out
    if status != 200:
        assert out["error"] and out["rule"]


# --- metrics --------------------------------------------------------------------------------------------------


def test_metrics_count_requests_rows_and_bins_and_pass_promtool(trained: Trained, tmp_path: Path,
                                                                rows: list[dict[str, Any]], policy: Any,
                                                                expected: np.ndarray) -> None:
    s = start(trained.bundle, tmp_path)
    try:
        for _ in range(3):
            assert s.call("GET", "/v1/health/ready")[0] == 200  # probes and scrapes are not requests
        assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:10]})[0] == 200
        assert s.call("POST", f"/v2/models/{MODEL}/infer", v2_body(policy, rows[10:15]))[0] == 200
        assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": [{"amount": 1}]})[0] == 422
        status, text = s.call("GET", "/metrics")
    finally:
        s.stop()
    assert status == 200
    labels = {"model": MODEL, "model_version": "unregistered"}
    assert metric(text, "model_requests_total", code="200", **labels) == 2
    assert metric(text, "model_requests_total", code="422", **labels) == 1
    assert metric(text, "model_inference_errors_total", **labels) == 0
    assert metric(text, "model_inference_rows_total", **labels) == 15
    assert metric(text, "model_inference_duration_seconds_count", **labels) == 3
    assert metric(text, "model_prediction_score_count", **labels) == 15
    assert metric(text, "model_batch_size_count", **labels) == 2
    for f in policy.data.features:  # every scored value lands in exactly one bin of its feature
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith("model_feature_bin_total{") and f'feature="{f.name}"' in line)
        assert counted == 15, f.name
    missing = sum(r["device_age_days"] is None for r in rows[:15])
    assert metric(text, "model_feature_bin_total", feature="device_age_days", bin="missing") == missing
    # Each score in its bin of the profile's prediction reference, where training puts the same scores.
    reference = json.loads((trained.bundle / "profile.json").read_text())["prediction"]
    wanted = _profile.bin_counts(reference, expected[:15])
    assert {label: metric(text, "model_prediction_bin_total", bin=label, **labels)
            for label in _profile.bin_labels(reference)} == {label: wanted.get(label, 0)
                                                              for label in _profile.bin_labels(reference)}
    # And in its fixed logit bin, the same for every version (what the canary's prediction-shift guard compares).
    fixed = [bisect_left(SHIFT_EDGES["binary"], s) for s in expected[:15]]
    assert [metric(text, "model_prediction_shift_bin_total", bin=str(i), **labels)
            for i in range(len(SHIFT_EDGES["binary"]) + 1)] == [fixed.count(i)
                                                                 for i in range(len(SHIFT_EDGES["binary"]) + 1)]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus): exposition not linted")
    done = subprocess.run([promtool, "check", "metrics"], check=False, input=text, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_metrics_are_shared_by_two_workers(trained: Trained, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    s = start(trained.bundle, tmp_path, env={"WORKERS": "2"})
    try:
        n = 60
        for i in range(n):  # a new connection each: SO_REUSEPORT spreads them over both workers
            assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": [rows[i]]})[0] == 200
        scraped = [metric(s.call("GET", "/metrics")[1], "model_requests_total", code="200") for _ in range(10)]
        assert scraped == [n] * 10
        assert s.stop() == 0
    finally:
        s.stop()
    stopped = [line for line in s.log_lines() if line["event"] == "stopped" and "worker" in line]
    assert sorted(line["worker"] for line in stopped) == [0, 1]
    assert all(line["requests"] > 0 and line["requests"] == line["responses"] for line in stopped)


# --- refusing to serve ----------------------------------------------------------------------------------------


def _rewrite_manifest(bundle: Path, drop: str | None = None) -> None:
    manifest = json.loads((bundle / _bundle.MANIFEST).read_text())
    manifest.pop("files")
    manifest.pop("format_version")
    if drop:
        (bundle / drop).unlink()
    _bundle.write_manifest(bundle, manifest)


@pytest.mark.parametrize(("damage", "message"), [
    ("tampered_trees", "model.trees.json: sha256"),
    ("tampered_skops", "model.skops: sha256"),
    ("missing_file", "profile.json: listed in bundle.json but missing"),
    ("no_model", "no model to serve"),
    ("not_a_bundle", "bundle.json: missing"),
])
def test_a_bad_bundle_is_refused_and_never_ready(trained: Trained, tmp_path: Path, damage: str,
                                                 message: str) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    if damage.startswith("tampered"):
        path = bundle / (_predictor.TREES_FILE if damage == "tampered_trees" else _model.MODEL_FILE)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
    elif damage == "missing_file":
        (bundle / "profile.json").unlink()
    elif damage == "no_model":
        (bundle / _model.MODEL_FILE).unlink()
        _rewrite_manifest(bundle, drop=_predictor.TREES_FILE)
    else:
        (bundle / _bundle.MANIFEST).unlink()
    s = start(bundle, tmp_path, wait=False)
    code = s.proc.wait(timeout=60)
    assert code == 2
    refusal = [line for line in s.log_lines() if line["level"] == "error"]
    assert refusal and message in refusal[0]["error"]
    assert not any(line["event"] == "ready" for line in s.log_lines())


def test_the_server_never_imports_great_expectations_or_scikit_learn(trained: Trained, tmp_path: Path,
                                                                     rows: list[dict[str, Any]]) -> None:
    poison = tmp_path / "poison"
    for package in ("great_expectations", "sklearn", "pandas"):
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(f"raise ImportError('the server imported {package}')\n")
    s = start(trained.bundle, tmp_path, pythonpath=str(poison))
    try:
        assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:3]})[0] == 200
    finally:
        assert s.stop() == 0


def test_skops_predictor_serves_the_same_scores(trained: Trained, tmp_path: Path, rows: list[dict[str, Any]],
                                                expected: np.ndarray) -> None:
    s = start(trained.bundle, tmp_path, env={"PREDICTOR": "skops"})
    try:
        status, out = s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:40]})
        assert status == 200
        assert s.call("GET", f"/v2/models/{MODEL}")[1]["platform"] == "argo-mlops/skops"
    finally:
        s.stop()
    assert np.max(np.abs(np.array([p["score"] for p in out["predictions"]]) - expected[:40])) < 1e-12


# --- draining -------------------------------------------------------------------------------------------------


def test_sigterm_under_load_answers_every_request_it_read(trained: Trained, tmp_path: Path,
                                                          rows: list[dict[str, Any]]) -> None:
    s = start(trained.bundle, tmp_path, env={"DRAIN_SECONDS": "1"})
    ok, errors, statuses = [0], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
                status, _ = call(s.port, "POST", f"/v1/models/{MODEL}:predict",
                                 {"instances": rows[k * 10:(k + 1) * 10]}, conn=conn)
                with lock:
                    statuses.append(status)
                    ok[0] += status == 200
            except (OSError, http.client.HTTPException) as err:  # closed while idle, or refused: never read
                with lock:
                    errors.append(type(err).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                if isinstance(err, ConnectionRefusedError):
                    return
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready_while_draining = s.call("GET", "/v1/health/ready")
    code = s.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert ready_while_draining == (503, {"ready": False})
    assert code == 0
    assert set(statuses) == {200}
    stopped = next(line for line in s.log_lines() if line["event"] == "stopped")
    # Everything the server read was answered, and every answer reached its client.
    assert stopped["requests"] == stopped["responses"]
    assert ok[0] + 2 == stopped["responses"]  # + the readiness probes: wait_ready's and the one above
    assert ok[0] > 20


# --- fetch and registry references ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from steps._storage.registry import Registry

    location = tmp_path_factory.mktemp("registry")
    Registry.open(str(location)).register(MODEL, trained.bundle, passed=True, gate_report={"passed": True})
    return location


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "steps.serve", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_fetch_verifies_and_writes_the_version(registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "current"
    done = run_serve("fetch", "--model", f"{MODEL}@1", "--registry", str(registry), "--out", str(out))
    assert done.returncode == 0, done.stderr
    manifest = _bundle.verify(out)
    assert manifest["version"] == 1 and _predictor.TREES_FILE in manifest["files"]


@pytest.mark.parametrize(("ref", "message"), [
    (f"{MODEL}@", "no version is pinned"),
    (MODEL, "expected <model>@<version>"),
    (f"{MODEL}@7", "no version 7"),
    ("Not_A_Model@1", "lowercase letters"),
])
def test_fetch_refuses_a_bad_reference(registry: Path, tmp_path: Path, ref: str, message: str) -> None:
    done = run_serve("fetch", "--model", ref, "--registry", str(registry), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["-m", "steps.serve", "fetch", "--out", "out"], ["-m", "steps.serve"],
                                     ["-m", "workflows.cli", "serve"]], ids=["fetch", "serve", "mlops-serve"])
def test_a_version_that_is_not_ascii_digits_is_refused_cleanly(tmp_path: Path, command: list[str]) -> None:
    # str.isdigit() says yes to '²', int() says no: the reference grammar takes ASCII digits only.
    (tmp_path / "tmp").mkdir()
    done = subprocess.run([sys.executable, *command, "--model", f"{MODEL}@²", "--registry", str(tmp_path / "reg")],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "version '²': expected a number (3)" in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == [] and not (tmp_path / "out").exists()


def test_fetch_refuses_a_tampered_version(registry: Path, tmp_path: Path) -> None:
    copy = tmp_path / "registry"
    shutil.copytree(registry, copy)
    stored = next(copy.rglob(_predictor.TREES_FILE))
    stored.write_bytes(stored.read_bytes().replace(b'"baseline":', b'"baseline": ', 1))
    done = run_serve("fetch", "--model", f"{MODEL}@1", "--registry", str(copy), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert re.search(r"model\.trees\.json: sha256 .* does not match", done.stderr)
    assert not (tmp_path / "out").exists()


def test_serve_a_registry_reference(registry: Path, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    port = free_port()
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", "--model", f"{MODEL}@latest",
                                 "--registry", str(registry), "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    s = Server(proc, port, tmp_path / "log")
    try:
        wait_ready(s)
        status, out = s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:1]})
        assert (status, out["model_version"]) == (200, "1")
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serving_a_registry_reference_leaves_no_copy_after_a_clean_stop(registry: Path, tmp_path: Path,
                                                                        rows: list[dict[str, Any]],
                                                                        workers: str) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", "--model", f"{MODEL}@1",
                                 "--registry", str(registry), "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                                env={**os.environ, "TMPDIR": str(temp), "WORKERS": workers})
    s = Server(proc, port, tmp_path / "log")
    try:
        wait_ready(s)
        copies = list(temp.iterdir())
        assert len(copies) == 1 and (next(copies[0].rglob(_bundle.MANIFEST))).is_file()  # the fetched copy
        assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:1]})[0] == 200
    finally:
        assert s.stop() == 0
    assert list(temp.iterdir()) == []


# --- the sampled inference log --------------------------------------------------------------------------------


def _logged_rows(folder: Path) -> Any:
    import pandas as pd

    files = sorted(folder.rglob("*.parquet"))
    return files, pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else None


def test_inference_log_writes_sampled_rows_as_parquet(trained: Trained, tmp_path: Path, policy: Any,
                                                      rows: list[dict[str, Any]], expected: np.ndarray) -> None:
    folder = tmp_path / "inference-log"
    s = start(trained.bundle, tmp_path, env={"INFERENCE_LOG": str(folder), "INFERENCE_LOG_SAMPLE": "1",
                                            "INFERENCE_LOG_BATCH_ROWS": "10"})
    try:
        for i in range(5):
            assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[i * 5:(i + 1) * 5]})[0] == 200
    finally:
        assert s.stop() == 0
    files, logged = _logged_rows(folder)
    assert len(files) >= 3  # 10 rows per file, the rest written on the way out
    assert all(f.relative_to(folder).parts[:2] == (MODEL, "vunregistered") for f in files)
    assert len(logged) == 25
    logged = logged.sort_values("score").reset_index(drop=True)
    assert np.allclose(np.sort(logged["score"]), np.sort(expected[:25]), rtol=0, atol=1e-12)
    for f in policy.data.features:  # the values as sent: numbers, categories, null for missing

        def norm(v: Any, f: Any = f) -> str:
            missing = v is None or (isinstance(v, float) and np.isnan(v))
            return "null" if missing else str(float(v) if f.type != "categorical" else v)

        assert sorted(map(norm, logged[f.name])) == sorted(norm(r[f.name]) for r in rows[:25]), f.name
    stopped = next(line for line in s.log_lines() if line["event"] == "stopped")
    assert (stopped["inference_log_rows"], stopped["inference_log_dropped_rows"]) == (25, 0)


def test_inference_log_goes_to_s3(trained: Trained, tmp_path: Path, rows: list[dict[str, Any]],
                                  s3_bucket: str) -> None:
    import boto3

    s = start(trained.bundle, tmp_path, env={"INFERENCE_LOG": f"s3://{s3_bucket}/inference",
                                            "INFERENCE_LOG_SAMPLE": "1"})
    try:
        assert s.call("POST", f"/v1/models/{MODEL}:predict", {"instances": rows[:7]})[0] == 200
    finally:
        assert s.stop() == 0
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix=f"inference/{MODEL}/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert len(keys) == 1 and keys[0].endswith(".parquet")
