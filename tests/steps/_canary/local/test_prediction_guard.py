"""The prediction-shift guard in a real local rollout: multiclass models trained by steps.train, served by real
`python -m steps.serve` processes behind the router of `mlops deploy`, replayed traffic, and the guard's PSI
between the canary's and the stable's model_prediction_bin_total, from the servers' /metrics and through a real
Prometheus scraping as `mlops deploy --print-scrape-config` says. A copy of the production model passes; a model
trained on a shuffled target (it predicts mostly one class) is rolled back on the guard alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import rollout as step
from steps._canary.local.client import DeployClient
from steps._core.policy import Policy, load_policy
from steps._storage.registry import Registry
from tests.support.canary import PASSED, stable_deployment
from tests.support.models import Trained, candidate
from tests.support.paths import ROOT
from tests.support.processes import free_port, prometheus
from tests.support.tasks import task_frame, trained_task_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCALE = "0.05"  # 1m pause and interval -> 3 s
# A copy of the model scores ~0.1 on a few hundred rows a side; a logistic regression fitted to a shuffled target
# predicts one class for 7 rows in 10 and never a fourth: ~1.3.
LIMIT = 0.5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    return {"good": trained_task_bundle(tmp_path_factory, "multiclass"),
            "shuffled": trained_task_bundle(tmp_path_factory, "multiclass", "logistic_regression", shuffled=True)}


@pytest.fixture(scope="module")
def policy(models: dict[str, Trained], tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The multiclass policy with a short canary (50% for 1m, an analysis of 2 x 1m) and the guard on."""
    raw = yaml.safe_load(models["good"].policy.read_text())
    raw["canary"] = {"steps": [{"set_weight": 50, "pause": "1m", "analysis": True}, {"set_weight": 100}],
                     "analysis": {"interval": "1m", "count": 2, "failure_limit": 0, "inconclusive_limit": 1,
                                  "latency_p95_ms": 250, "error_ratio": 0.05, "min_requests": 100,
                                  "prediction_shift": LIMIT}}
    out = tmp_path_factory.mktemp("gates") / models["good"].policy.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_policy(out)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "rows.parquet"
    task_frame("multiclass", rows=600, seed=21).drop(columns=["queue"]).to_parquet(out, index=False)
    return out


def _registry(tmp_path: Path, models: dict[str, Trained], policy: Policy, canary: str) -> Registry:
    """v1 (the good model) in production, v2 (`canary`) staged."""
    registry = Registry.open(str(tmp_path / "registry"))
    for name, which in (("one", "good"), ("two", canary)):
        registry.register(policy.model_name, candidate(models[which], tmp_path, name), passed=True,
                          gate_report=PASSED)
    registry.promote(policy.model_name, 1, "production")
    return registry


def _rollout(policy: Policy, registry: Registry, url: str, dataset: Path, *extra: str) -> int:
    return step.main(["--model", policy.model_name, "--version", "2", "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "local", "--time-scale", SCALE,
                      "--deploy-url", url, "--dataset", str(dataset), *extra])


def _measurements(record: Any) -> list[dict[str, Any]]:
    [analysis] = record["history"][-1]["details"]["analysis"]
    measurements: list[dict[str, Any]] = analysis["measurements"]
    return measurements


@pytest.mark.parametrize(("canary", "promoted"), [("good", True), ("shuffled", False)])
def test_from_the_servers_metrics_the_guard_passes_a_copy_and_rolls_back_a_shifted_model(
        tmp_path: Path, models: dict[str, Trained], policy: Policy, dataset: Path, canary: str,
        promoted: bool) -> None:
    registry = _registry(tmp_path, models, policy, canary)
    with stable_deployment(registry, policy) as router:
        code = _rollout(policy, registry, router.url, dataset)
        status = DeployClient(router.url).status()
    record = registry.get(policy.model_name, 2)
    measurements = _measurements(record)
    assert all(m["source"] == "/metrics" and "prediction-shift" in m["metrics"] for m in measurements), measurements
    if promoted:
        assert code == 0 and record["status"] == "production", record["history"][-1]["why"]
        assert all(m["prediction_shift"] <= LIMIT for m in measurements), measurements
        return
    assert code == 1 and record["status"] == "rejected"
    why = record["history"][-1]["why"]
    assert "prediction shift (PSI vs stable)" in why and f"> {LIMIT:g}" in why, why
    assert "latency" not in why and "error ratio" not in why, why  # the guard alone failed it
    [first] = measurements
    assert first["metrics"] == {"latency-p95-ms": "Successful", "error-ratio": "Successful",
                                "prediction-shift": "Failed"} and first["prediction_shift"] > LIMIT
    assert status["stable"]["version"] == 1 and status["canary"] is None
    assert registry.get(policy.model_name, 1)["status"] == "production"


@pytest.fixture(scope="module")
def scraping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Prometheus configured by `mlops deploy --print-scrape-config --port P`: (its URL, P)."""
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    printed = subprocess.run([sys.executable, "-m", "workflows.cli", "deploy", "--print-scrape-config",
                              "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             check=True).stdout
    (root / "prometheus.yml").write_text(printed)
    with prometheus(root / "prometheus.yml", root) as url:
        yield url, port


def test_through_prometheus_the_rendered_guard_query_rolls_back_a_shifted_model(
        tmp_path: Path, models: dict[str, Trained], policy: Policy, dataset: Path,
        scraping: tuple[str, int]) -> None:
    url, port = scraping
    registry = _registry(tmp_path, models, policy, "shuffled")
    with stable_deployment(registry, policy, port=port) as router:
        code = _rollout(policy, registry, router.url, dataset, "--prometheus", url)
    record = registry.get(policy.model_name, 2)
    assert code == 1 and record["status"] == "rejected", record["history"][-1]["why"]
    assert "prediction shift (PSI vs stable)" in record["history"][-1]["why"]
    failed = [m for m in _measurements(record) if m["metrics"].get("prediction-shift") == "Failed"]
    assert failed and all(m["source"].startswith(f"prometheus {url}") for m in failed), failed
    assert all(m["prediction_shift"] > LIMIT for m in failed), failed
