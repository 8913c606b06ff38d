"""The register step's push of a training run's outcome to a real Pushgateway (job mlops-training): what a
dashboard and the alerts read, and that a Pushgateway that is down, refuses or is misnamed costs a warning only:
the version is registered and the exit code is the registration's."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from steps._core.prometheus import parse_exposition
from steps._storage.registry import Registry
from steps.register import main
from tests.support.bundles import MODEL, make_bundle
from tests.support.processes import PUSHGATEWAY, free_port, running

pytestmark = pytest.mark.integration

REPORT: Any = {
    "model": MODEL,
    "passed": True,
    "candidate": {"accuracy": 0.95, "pr_auc": 0.71},
    "gates": [
        {"name": "accuracy", "passed": True, "status": "pass", "value": 0.95},
        {"name": "pr_auc", "passed": True, "status": "pass", "value": 0.71},
        {"name": "feature_importance_stability", "passed": True, "status": "skipped", "value": None},
        {"name": "edge_cases", "passed": True, "value": None},  # a report from before gates had a status
    ],
    "failed": [],
    "skipped": ["feature_importance_stability"],
}
REJECTED: Any = {**REPORT, "passed": False, "failed": ["pr_auc"],
                 "gates": [{**g, "passed": False, "status": "fail", "value": 0.2} if g["name"] == "pr_auc" else g
                           for g in REPORT["gates"]]}
TRAINING = ("mlops_training_passed", "mlops_training_registered_version", "mlops_training_last_run_timestamp_seconds",
            "mlops_gate_passed", "mlops_gate_skipped", "mlops_gate_value")


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running(PUSHGATEWAY, [], tmp_path_factory.mktemp("pushgateway")) as url:
        yield url


def register(tmp_path: Path, report: Any, *extra: str, fingerprint: str = "5f2c9a1b77e0") -> int:
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(report))
    return main(["--bundle", str(make_bundle(tmp_path, fingerprint)), "--gate-report", str(gate), "--model", MODEL,
                 "--registry", str(tmp_path / "registry"), "--version-out", str(tmp_path / "version"), *extra])


def pushed(url: str) -> dict[tuple[str, str], float]:
    """This model's training series on the Pushgateway: (name, gate or "") -> value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(name, labels.get("gate", "")): value for name, labels, value in parse_exposition(text, *TRAINING)
            if labels.get("model") == MODEL and labels.get("job") == "mlops-training"}


def test_a_staged_candidate_pushes_its_version_and_each_gates_verdict(tmp_path: Path, pushgateway: str) -> None:
    before = time.time()
    assert register(tmp_path, REPORT, "--pushgateway", pushgateway) == 0
    metrics = pushed(pushgateway)
    assert metrics[("mlops_training_passed", "")] == 1
    assert metrics[("mlops_training_registered_version", "")] == 1
    assert before <= metrics[("mlops_training_last_run_timestamp_seconds", "")] <= time.time()
    assert {gate: v for (name, gate), v in metrics.items() if name == "mlops_gate_passed"} == {
        "accuracy": 1, "pr_auc": 1, "edge_cases": 1}
    # A skipped gate is neither passed nor failed.
    assert {gate for (name, gate) in metrics if name == "mlops_gate_skipped"} == {"feature_importance_stability"}
    assert {gate: v for (name, gate), v in metrics.items() if name == "mlops_gate_value"} == {
        "accuracy": 0.95, "pr_auc": 0.71}


def test_a_rejected_candidate_pushes_passed_0_from_the_environments_pushgateway(
        tmp_path: Path, pushgateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", pushgateway)
    assert register(tmp_path, REJECTED, fingerprint="weak") == 1
    metrics = pushed(pushgateway)
    assert metrics[("mlops_training_passed", "")] == 0
    assert metrics[("mlops_gate_passed", "pr_auc")] == 0 and metrics[("mlops_gate_value", "pr_auc")] == 0.2
    assert Registry.open(str(tmp_path / "registry")).get(MODEL, 1)["status"] == "rejected"


@pytest.mark.parametrize("where", ["unreachable", "wrong-path", "not-a-url"])
def test_a_failed_push_is_a_warning_and_the_registration_stands(
        tmp_path: Path, pushgateway: str, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = {"unreachable": f"http://127.0.0.1:{free_port()}", "wrong-path": f"{pushgateway}/nowhere",
           "not-a-url": "pushgateway:9091"}[where]
    assert register(tmp_path, REPORT, "--pushgateway", url) == 0
    out, err = capsys.readouterr()
    assert out == "register: churn-model v1 staged (fingerprint 5f2c9a1b…)\n"
    assert err.startswith("register: warning: metrics not pushed: pushgateway "), err
    assert {"unreachable": "unreachable", "wrong-path": "HTTP 404", "not-a-url": "not a URL"}[where] in err
    assert (tmp_path / "version").read_text() == "1"
    assert Registry.open(str(tmp_path / "registry")).get(MODEL, 1)["status"] == "staged"


def test_without_a_pushgateway_nothing_is_pushed_and_nothing_is_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLOPS_PUSHGATEWAY_URL", raising=False)
    assert register(tmp_path, REPORT) == 0
    assert capsys.readouterr().err == ""
