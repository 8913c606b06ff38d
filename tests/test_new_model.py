"""A table the project never saw goes through the loop from `mlops init`, as a new user would take it, with no hand
edit: init -> run training -> production -> serve -> drift check. Two public tables (tests/data/README.md):
an imbalanced credit-default table whose target and category are Yes/No text, and an orange-juice table whose
categories are integer codes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def mlops(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_REGISTRY": str(cwd / "registry")}
    return subprocess.run([sys.executable, "-m", "workflows.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def serve(model: str, cwd: Path) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "MLOPS_REGISTRY": str(cwd / "registry")}
    proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", "--model", f"{model}@production",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if call(port, "GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder where `mlops init` and one training run of the credit table happened."""
    project = tmp_path_factory.mktemp("credit")
    shutil.copy(DATA / "credit-default.csv", project / "credit-default.csv")
    init = mlops("init", "--data", "credit-default.csv", "--target", "default", "--segment", "student", cwd=project)
    assert init.returncode == 0, init.stderr
    assert (project / "gates" / "credit-default.yaml").is_file()
    trained = mlops("run", "training", "--model", "credit-default", cwd=project)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-2000:]
    assert "Rollout: credit-default v1 promoted to production" in trained.stdout
    return project


def test_an_imbalanced_yes_no_table_reaches_production_and_answers_with_its_own_labels(credit):
    rows = pd.read_csv(credit / "credit-default.csv")
    instances = json.loads(rows.drop(columns="default").head(50).to_json(orient="records"))
    for port in serve("credit-default", credit):
        status, answer = call(port, "POST", "/v1/models/credit-default:predict", {"instances": instances})
        assert status == 200, answer
        assert {p["label"] for p in answer["predictions"]} <= {"Yes", "No"}
        assert all(0.0 <= p["score"] <= 1.0 for p in answer["predictions"])
        inputs = [{"name": c, "datatype": "BYTES" if c == "student" else "FP64", "shape": [1],
                   "data": [instances[0][c]]} for c in ("student", "balance", "income")]
        status, answer = call(port, "POST", "/v2/models/credit-default/infer", {"inputs": inputs})
        assert status == 200 and answer["outputs"][1] == {
            "name": "label", "datatype": "BYTES", "shape": [1], "data": [answer["outputs"][1]["data"][0]]}
        assert answer["outputs"][1]["data"][0] in ("Yes", "No")


def test_the_training_file_shows_no_drift(credit):
    checked = mlops("drift", "check", "--model", "credit-default", "--current", "credit-default.csv",
                    "--report-dir", "drift", cwd=credit)
    assert checked.returncode == 0, checked.stderr
    assert json.loads((credit / "drift" / "drift.json").read_text())["decision"] == "no_retrain"


def test_an_always_no_model_is_rejected_on_the_imbalanced_target(credit):
    """A threshold of 1.0 flags no row: its accuracy equals answering "No" everywhere (0.97), and the F1 gate
    (at 0 for it) rejects it while v1 keeps production."""
    policy = yaml.safe_load((credit / "gates" / "credit-default.yaml").read_text())
    policy["model"]["threshold"] = 1.0
    (credit / "always-no.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    rejected = mlops("run", "training", "--policy", "always-no.yaml", cwd=credit)
    assert rejected.returncode == 1, rejected.stdout[-3000:]
    assert "Gate: REJECTED (failed: f1)" in rejected.stdout
    listed = mlops("registry", "list", "--model", "credit-default", "--json", cwd=credit)
    statuses = {v["version"]: v["status"] for v in json.loads(listed.stdout)["versions"]}
    assert statuses == {1: "production", 2: "rejected"}


def test_integer_coded_categories_are_served_as_json_carries_them_and_show_no_drift(tmp_path):
    shutil.copy(DATA / "orange-juice.csv", tmp_path / "orange-juice.csv")
    assert mlops("init", "--data", "orange-juice.csv", "--target", "Purchase", cwd=tmp_path).returncode == 0
    policy = yaml.safe_load((tmp_path / "gates" / "orange-juice.yaml").read_text())
    codes = {f["name"]: f["categories"] for f in policy["data"]["features"] if f["type"] == "categorical"}
    assert codes["StoreID"] == [1, 2, 3, 4, 7] and codes["SpecialCH"] == [0, 1]
    trained = mlops("run", "training", "--model", "orange-juice", cwd=tmp_path)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-2000:]
    rows = pd.read_csv(tmp_path / "orange-juice.csv").drop(columns="Purchase")
    instances = json.loads(rows.head(200).to_json(orient="records"))
    assert type(instances[0]["StoreID"]) is int  # as a JSON client sends the training rows
    for port in serve("orange-juice", tmp_path):
        status, answer = call(port, "POST", "/v1/models/orange-juice:predict", {"instances": instances})
        assert status == 200, answer
        assert {p["label"] for p in answer["predictions"]} <= {"CH", "MM"}
    checked = mlops("drift", "check", "--model", "orange-juice", "--current", "orange-juice.csv", "--report-dir",
                    "drift", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    report = json.loads((tmp_path / "drift" / "drift.json").read_text())
    assert report["decision"] == "no_retrain" and report["drifted_features"] == []
