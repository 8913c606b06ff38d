"""The prediction-shift guard in a real local rollout: multiclass and regression models trained by steps.train,
served by real `python -m steps.serve` processes behind the router of `mlops deploy`, replayed traffic, and the
guard's PSI between the canary's and the stable's predictions, from the servers' /metrics and through a real
Prometheus scraping as `mlops deploy --print-scrape-config` says. A copy of the production model passes; a model
trained on a shuffled target (it predicts mostly one class) is rolled back on the guard alone. A regression model
retrained on drifted data (as good as the production model) passes: both versions count in the same fixed bins
(model_prediction_shift_bin_total), where each version's own quantile bins read the drift as a shift."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from steps import rollout as step
from steps import train
from steps._canary import analysis as _analysis
from steps._canary.local.client import DeployClient
from steps._canary.local.measurement import snapshot
from steps._core.policy import Policy, load_policy
from steps._model import bundle as _bundle
from steps._storage.registry import Registry
from tests.support import serving
from tests.support.canary import PASSED, stable_deployment
from tests.support.models import Trained, candidate
from tests.support.paths import ROOT
from tests.support.processes import free_port, prometheus
from tests.support.tasks import task_frame, task_policy, trained_task_bundle, validated_folder

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCALE = "0.05"  # 1m pause and interval -> 3 s
# A copy of the model scores ~0.1 on a few hundred rows a side; a logistic regression fitted to a shuffled target
# predicts one class for 7 rows in 10 and never a fourth: ~1.3.
LIMIT = 0.5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    return {"good": trained_task_bundle(tmp_path_factory, "multiclass"),
            "shuffled": trained_task_bundle(tmp_path_factory, "multiclass", "logistic_regression", shuffled=True)}


def _guarded(trained: Trained, tmp_path_factory: pytest.TempPathFactory, limit: float) -> Policy:
    """The model's policy with a short canary (50% for 1m, an analysis of 2 x 1m) and the guard on."""
    raw = yaml.safe_load(trained.policy.read_text())
    raw["canary"] = {"steps": [{"set_weight": 50, "pause": "1m", "analysis": True}, {"set_weight": 100}],
                     "analysis": {"interval": "1m", "count": 2, "failure_limit": 0, "inconclusive_limit": 1,
                                  "latency_p95_ms": 250, "error_ratio": 0.05, "min_requests": 100,
                                  "prediction_shift": limit}}
    out = tmp_path_factory.mktemp("gates") / trained.policy.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_policy(out)


@pytest.fixture(scope="module")
def policy(models: dict[str, Trained], tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The multiclass policy with a short canary and the guard on."""
    return _guarded(models["good"], tmp_path_factory, LIMIT)


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
    stable = status["stable"]
    assert stable is not None and stable["version"] == 1 and status["canary"] is None
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


# --- regression: a retrain on drifted data against the production model -----------------------------------------

DRIFT_LIMIT = 0.1  # the bound gates/examples/demand-forecast.yaml sets


def _trained_on(tmp_path_factory: pytest.TempPathFactory, name: str, frame: pd.DataFrame) -> Trained:
    root = tmp_path_factory.mktemp(f"regression-{name}")
    policy = task_policy("regression", root / "gates")
    done = Trained(root / "bundle", root / "holdout.parquet", policy)
    result = train.train(validated_folder(frame, root / "validated"), load_policy(policy), git_commit="0" * 40)
    result.write(done.bundle, done.holdout)
    return done


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """v1 trained on the reference data; `drifted` on data whose x1 and x2 moved one unit (their spread is 1.5),
    as good on it (R^2 alike); `shuffled` on a shuffled target (it predicts about the mean)."""
    models = {"v1": _trained_on(tmp_path_factory, "v1", task_frame("regression", seed=3)),
              "drifted": _trained_on(tmp_path_factory, "drifted", task_frame("regression", seed=4, shift=1.0)),
              "shuffled": _trained_on(tmp_path_factory, "shuffled", task_frame("regression", seed=5, shuffled=True))}
    r2 = {name: json.loads((m.bundle / _bundle.MANIFEST).read_text())["metrics"]["holdout_r2"]
          for name, m in models.items()}
    assert r2["v1"] > 0.8 and r2["drifted"] > 0.8 and r2["shuffled"] < 0.05, r2
    return models


@pytest.fixture(scope="module")
def drifted_traffic(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """What the production model serves after the drift that made the retrain: the drifted rows, no target."""
    return task_frame("regression", rows=1500, seed=21, shift=1.0).drop(columns=["demand"])


@pytest.fixture(scope="module")
def served_counts(regression: dict[str, Trained], drifted_traffic: pd.DataFrame,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, float]]]:
    """Each model behind its own real server, sent the same drifted traffic: its /metrics' counts per bin of the
    guard's counter and of its profile's bins ({model: {counter: {bin: count}}})."""
    root = tmp_path_factory.mktemp("servers")
    rows = json.loads(drifted_traffic.to_json(orient="records"))
    out = {}
    for name, model in regression.items():
        server = serving.start(model.bundle, root)
        try:
            for i in range(0, len(rows), 100):
                code, body = server.call("POST", "/v1/models/demand:predict", {"instances": rows[i:i + 100]})
                assert code == 200, body
            text = server.call("GET", "/metrics")[1]
        finally:
            server.stop()
        out[name] = {counter: dict(snapshot(text, predictions=counter).predictions)
                     for counter in (_analysis.SHIFT_BIN_METRIC, _analysis.PREDICTION_METRIC)}
    return out


def test_from_real_servers_metrics_a_drift_retrain_reads_no_shift_and_a_shuffled_model_does(
        served_counts: dict[str, dict[str, dict[str, float]]]) -> None:
    fixed = {name: counts[_analysis.SHIFT_BIN_METRIC] for name, counts in served_counts.items()}
    assert all(sum(c.values()) == 1500 for c in fixed.values()), fixed
    retrain, shuffled = _analysis.psi(fixed["drifted"], fixed["v1"]), _analysis.psi(fixed["shuffled"], fixed["v1"])
    assert retrain < DRIFT_LIMIT < shuffled, (retrain, shuffled)  # measured: ~0.004 and ~1.1
    # Each version's own quantile bins read the drift (~0.1 here, as much as the bound): the defect fixed.
    own = {name: counts[_analysis.PREDICTION_METRIC] for name, counts in served_counts.items()}
    assert _analysis.psi(own["drifted"], own["v1"]) > 10 * retrain


def test_the_rendered_guard_query_on_prometheus_engine_reads_the_real_servers_counts(
        regression: dict[str, Trained], served_counts: dict[str, dict[str, dict[str, float]]],
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`): PromQL checks skipped")
    policy = _guarded(regression["v1"], tmp_path_factory, DRIFT_LIMIT)
    from workflows import serving as rendering

    [guard] = [m for m in rendering.build_analysis_template(policy)["spec"]["metrics"]
               if m["name"] == _analysis.SHIFT_METRIC]
    query = guard["provider"]["prometheus"]["query"]
    model = policy.model_name

    def series(counts: dict[str, dict[str, float]], role: str, version: str) -> list[dict[str, str]]:
        # Each server's counts, served again every 15 s scrape: the window's shares are the counts' shares.
        out = []
        for counter, bins in counts.items():
            for b, n in bins.items():
                labels = f'model="{model}", role="{role}", model_version="{version}", bin="{b}"'
                out.append({"series": f"{counter}{{{labels}}}", "values": f"0+{n:g}x80"})
        return out

    requests = {"series": f'model_requests_total{{model="{model}", role="canary", code="200"}}', "values": "0+50x80"}
    tests, expected = [], {}
    for canary in ("drifted", "shuffled"):
        psi = _analysis.psi(served_counts[canary][_analysis.SHIFT_BIN_METRIC],
                            served_counts["v1"][_analysis.SHIFT_BIN_METRIC])
        expected[canary] = _analysis.verdict([psi], DRIFT_LIMIT)
        tests.append({"interval": "15s", "input_series": [
            requests, *series(served_counts[canary], "canary", "2"), *series(served_counts["v1"], "stable", "1")],
            "promql_expr_test": [{"expr": f"abs(({query}) - {psi!r}) < bool 1e-9", "eval_time": "15m",
                                  "exp_samples": [{"labels": "{}", "value": 1}]}]})
    path = tmp_path / "guard-test.yaml"
    path.write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected == {"drifted": "Successful", "shuffled": "Failed"}


@pytest.mark.parametrize(("canary", "promoted"), [("drifted", True), ("shuffled", False)])
def test_a_local_rollout_promotes_a_drift_retrain_and_rolls_back_a_shuffled_model_on_the_guard(
        tmp_path: Path, regression: dict[str, Trained], drifted_traffic: pd.DataFrame,
        tmp_path_factory: pytest.TempPathFactory, canary: str, promoted: bool) -> None:
    policy = _guarded(regression["v1"], tmp_path_factory, DRIFT_LIMIT)
    dataset = tmp_path / "rows.parquet"
    drifted_traffic.to_parquet(dataset, index=False)
    models = {"good": regression["v1"], canary: regression[canary]}
    registry = _registry(tmp_path, models, policy, canary)
    with stable_deployment(registry, policy) as router:
        code = _rollout(policy, registry, router.url, dataset)
    record = registry.get(policy.model_name, 2)
    measurements = _measurements(record)
    assert all("prediction-shift" in m["metrics"] for m in measurements), measurements
    if promoted:
        assert code == 0 and record["status"] == "production", record["history"][-1]["why"]
        assert all(m["prediction_shift"] <= DRIFT_LIMIT for m in measurements), measurements
        return
    assert code == 1 and record["status"] == "rejected"
    why = record["history"][-1]["why"]
    assert "prediction shift (PSI vs stable)" in why and "latency" not in why and "error ratio" not in why, why
