"""The canary's optional prediction-shift guard (policy canary.analysis.prediction_shift): the AnalysisTemplate gets
one more metric, the PSI between the canary's and the stable's served predictions in PromQL, on bins both versions
share (a multiclass model's classes, model_prediction_bin_total; a score's or a value's fixed bins,
model_prediction_shift_bin_total), checked on Prometheus' own engine (promtool) against the same PSI in Python,
which the local rollout computes from the servers' /metrics; left out of the policy, the template and the readings
are as before."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from steps._canary import analysis as _analysis
from steps._canary.local.measurement import Measurement, Snapshot, reading
from steps._core.policy import Policy, load_policy
from steps._drift import binned
from tests.support.argo import argo_verdict
from tests.support.policies import write_policy
from tests.support.tasks import task_policy
from workflows import serving
from workflows._schemas import Schemas

LIMIT = 0.1
MODEL = "churn"
TASKS = ("binary", "multiclass", "regression")
COUNTERS = {"binary": "model_prediction_shift_bin_total", "multiclass": "model_prediction_bin_total",
            "regression": "model_prediction_shift_bin_total"}


@pytest.fixture(scope="module")
def guarded(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    folder = tmp_path_factory.mktemp("guarded")
    return load_policy(write_policy(folder, policy_file, f"canary:\n  analysis: {{prediction_shift: {LIMIT}}}"))


@pytest.fixture(scope="module", params=TASKS)
def guarded_task(request: pytest.FixtureRequest, policy_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """A guarded policy of each task (the reference policy for binary, the test models' for the others)."""
    folder = tmp_path_factory.mktemp(f"guarded-{request.param}")
    if request.param == "binary":
        return load_policy(write_policy(folder, policy_file, f"canary:\n  analysis: {{prediction_shift: {LIMIT}}}"))
    path = task_policy(request.param, folder, model=MODEL)
    raw = yaml.safe_load(path.read_text())
    raw["canary"] = {"analysis": {"prediction_shift": LIMIT}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_policy(path)


@pytest.fixture(scope="module")
def unguarded(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_policy(write_policy(tmp_path_factory.mktemp("unguarded"), policy_file, "canary:\n  replicas: 5"))


def _metrics(policy: Policy) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in serving.build_analysis_template(policy)["spec"]["metrics"]}


# --- the rendered template ------------------------------------------------------------------------------------


def test_without_the_policy_setting_the_template_has_only_latency_and_errors(unguarded: Policy) -> None:
    assert unguarded.canary.analysis.prediction_shift is None
    assert list(_metrics(unguarded)) == ["latency-p95-ms", "error-ratio"]


def test_the_guard_adds_a_prediction_shift_metric_that_validates_against_the_crd(
        guarded_task: Policy, schemas_dir: Path) -> None:
    guarded = guarded_task
    template = serving.build_analysis_template(guarded)
    assert Schemas(schemas_dir).validate(template) == []
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert list(metrics) == ["latency-p95-ms", "error-ratio", "prediction-shift"]
    shift = metrics["prediction-shift"]
    assert shift["provider"]["prometheus"]["query"] == _analysis.prediction_shift_query(guarded)
    assert (shift["successCondition"], shift["failureCondition"]) == _analysis.conditions(LIMIT)
    for key in ("interval", "count", "failureLimit", "inconclusiveLimit"):
        assert shift[key] == metrics["latency-p95-ms"][key], key
    query = shift["provider"]["prometheus"]["query"]
    # Canary against stable, this model only, over the analysis window, behind the canary's traffic condition.
    # The bins both versions share: a multiclass model's classes, a score's or a value's fixed bins.
    counter = COUNTERS[guarded.model.task]
    assert _analysis.shift_metric(guarded) == counter
    assert set(re_labels(query, counter)) == {f'model="{MODEL}", role="canary"', f'model="{MODEL}", role="stable"'}
    assert set(re.findall(r"\b(model_[a-z_]+)\{", query)) == {counter, "model_requests_total"}
    assert f"[{_analysis.window(guarded)}]" in query and _analysis.traffic_condition(guarded) in query


def re_labels(query: str, counter: str) -> list[str]:
    return re.findall(counter + r"\{([^}]*)\}", query)


@pytest.mark.parametrize("scale", [0.1, 0.01], ids=["scale-0.1", "scale-0.01"])
def test_the_local_rollout_runs_the_rendered_guard_query_with_only_the_window_scaled(
        guarded: Policy, scale: float) -> None:
    seconds = _analysis.window_seconds(guarded, scale)
    cluster, local = _analysis.window(guarded), _analysis.window(guarded, seconds)
    rendered = _metrics(guarded)["prediction-shift"]["provider"]["prometheus"]["query"]
    assert _analysis.prediction_shift_query(guarded, seconds) == rendered.replace(f"[{cluster}]", f"[{local}]")


@pytest.mark.parametrize(("result", "expected"), [
    ([], "Inconclusive"), ([math.nan], "Inconclusive"), ([0.0], "Successful"), ([LIMIT], "Successful"),
    ([LIMIT + 1e-6], "Failed"), ([math.inf], "Failed")], ids=["empty", "nan", "zero", "at-limit", "over", "inf"])
def test_the_guard_is_judged_as_argo_rollouts_judges_its_rendered_conditions(
        guarded: Policy, result: list[float], expected: str) -> None:
    assert _analysis.verdict(result, LIMIT) == expected
    assert argo_verdict(_metrics(guarded)["prediction-shift"], result) == expected


# --- the PSI ------------------------------------------------------------------------------------------------------

def test_the_psi_is_the_drift_checks_psi_over_the_two_sides_counts() -> None:
    canary = {"0": 40.0, "1": 30.0, "2": 20.0, "3": 10.0}
    stable = {"0": 20.0, "1": 40.0, "2": 60.0, "3": 80.0}
    expected = binned.psi_rows(np.array([[20, 40, 60, 80]]), np.array([[40, 30, 20, 10]]))[0]
    assert _analysis.psi(canary, stable) == pytest.approx(expected, rel=1e-12)
    assert _analysis.psi(stable, canary) == pytest.approx(expected, rel=1e-12)  # symmetric
    assert _analysis.psi(canary, {k: 3 * v for k, v in canary.items()}) == pytest.approx(0.0, abs=1e-15)
    # A bin one side never counted is 0 there, floored at epsilon as the drift check floors an empty bin.
    only = _analysis.psi({"0": 50.0, "other": 50.0}, {"0": 100.0})
    assert only == pytest.approx(binned.psi_rows(np.array([[100, 0]]), np.array([[50, 50]]))[0], rel=1e-12)
    assert math.isnan(_analysis.psi({}, stable)) and math.isnan(_analysis.psi(canary, {"0": 0.0}))


def _snap(requests: float, bins: dict[str, float]) -> Snapshot:
    return Snapshot(requests, 0.0, ((0.01, requests), (math.inf, requests)), tuple(sorted(bins.items())))


def test_a_local_reading_from_metrics_pages_judges_the_shift_over_the_window(guarded: Policy,
                                                                             unguarded: Policy) -> None:
    zero = _snap(0, {})
    stable = (_snap(1000, {"0": 500, "1": 500}), _snap(3000, {"0": 1500, "1": 1500}))
    same = reading(guarded, zero, _snap(200, {"0": 100, "1": 100}), 1.0, stable)
    assert same.metrics == {"latency-p95-ms": "Successful", "error-ratio": "Successful",
                            "prediction-shift": "Successful"} and same.prediction_shift == pytest.approx(0.0)
    skewed = reading(guarded, zero, _snap(200, {"0": 190, "1": 10}), 1.0, stable)
    assert skewed.prediction_shift == pytest.approx(_analysis.psi({"0": 190, "1": 10}, {"0": 1000, "1": 1000}))
    assert skewed.metrics["prediction-shift"] == "Failed" and skewed.phase == "Failed"
    record = Measurement.of(skewed, 1.0, "/metrics").record()
    assert record["prediction_shift"] == skewed.prediction_shift
    assert record["metrics"]["prediction-shift"] == "Failed"
    # The stable server counted no predictions (a bundle without a `prediction` profile): Inconclusive.
    blind = reading(guarded, zero, _snap(200, {"0": 190, "1": 10}), 1.0, (zero, _snap(500, {})))
    assert blind.metrics["prediction-shift"] == "Inconclusive" and blind.phase == "Inconclusive"
    # Too little canary traffic: nothing measured, whatever the shares.
    idle = reading(guarded, zero, _snap(5, {"0": 5}), 1.0, stable)
    assert idle.metrics["prediction-shift"] == "Inconclusive" and math.isnan(idle.prediction_shift)
    # Without the policy setting, the reading and its record are as before the guard existed.
    off = reading(unguarded, zero, _snap(200, {"0": 190, "1": 10}), 1.0, stable)
    assert off.metrics == {"latency-p95-ms": "Successful", "error-ratio": "Successful"} and off.phase == "Successful"
    assert "prediction_shift" not in Measurement.of(off, 1.0, "/metrics").record()


# --- the query on Prometheus' own engine -----------------------------------------------------------------------

C = {"model": MODEL, "role": "canary", "model_version": "2", "pod": "churn-server-c1"}
S = {"model": MODEL, "role": "stable", "model_version": "1", "pod": "churn-server-s1"}


def _counter(name: str, labels: dict[str, str], per_scrape: float) -> dict[str, str]:
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": f"0+{per_scrape:g}x80"}


def _predictions(labels: dict[str, str], per_bin: dict[str, float],
                 counter: str = "COUNTER") -> list[dict[str, str]]:
    return [_counter(counter, {**labels, "bin": b}, n) for b, n in per_bin.items()]


UNIFORM = {"0": 10.0, "1": 10.0, "2": 10.0, "3": 10.0}
SKEWED = {"0": 31.0, "1": 5.0, "2": 3.0, "3": 1.0}
# name -> (input series besides the canary's requests, canary's bins, stable's bins; None: no result)
SCENARIOS: dict[str, tuple[list[dict[str, str]], dict[str, float] | None, dict[str, float] | None]] = {
    "same-shares-at-other-volumes": (
        [*_predictions(C, UNIFORM), *_predictions(S, {b: 4 * n for b, n in UNIFORM.items()})], UNIFORM, UNIFORM),
    "skewed-canary": ([*_predictions(C, SKEWED), *_predictions(S, UNIFORM)], SKEWED, UNIFORM),
    # Two canary pods summed, another model's stable pods left out.
    "two-canary-pods-and-another-model": (
        [*_predictions(C, {"0": 10, "1": 2}), *_predictions({**C, "pod": "churn-server-c2"}, {"0": 20, "1": 4}),
         *_predictions(S, {"0": 1, "1": 1}), *_predictions({**S, "model": "fraud"}, {"0": 1, "1": 99})],
        {"0": 30, "1": 6}, {"0": 1, "1": 1}),
    # A bin only the canary counts (the other version's profile has one bin more): 0 on the stable's side.
    "a-bin-only-the-canary-has": (
        [*_predictions(C, {"0": 10, "1": 10, "other": 10}), *_predictions(S, {"0": 10, "1": 10})],
        {"0": 10, "1": 10, "other": 10}, {"0": 10, "1": 10}),
    "stable-counts-no-predictions": (_predictions(C, SKEWED), None, None),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`): PromQL checks skipped")
    return path


@pytest.mark.parametrize("busy", [True, False], ids=["busy-canary", "idle-canary"])
def test_the_rendered_psi_query_on_prometheus_engine_equals_the_python_psi(
        guarded_task: Policy, promtool: str, tmp_path: Path, busy: bool) -> None:
    query = _metrics(guarded_task)["prediction-shift"]["provider"]["prometheus"]["query"]
    counter = COUNTERS[guarded_task.model.task]
    # 50 requests a scrape: 1000 in the 5m window, over min_requests; 1 a scrape: 20, under it.
    requests = _counter("model_requests_total", {**C, "code": "200"}, 50 if busy else 1)
    # The other counter, skewed, is not what the query reads: the guard's counter alone decides.
    other = ("model_prediction_bin_total" if counter != "model_prediction_bin_total"
             else "model_prediction_shift_bin_total")
    decoy = _predictions(C, {"0": 1000.0, "1": 1.0}, other)
    tests = []
    for series, canary, stable in SCENARIOS.values():
        series = [{**one, "series": one["series"].replace("COUNTER", counter)} for one in series] + decoy
        expected = None if canary is None or stable is None or not busy else _analysis.psi(canary, stable)
        # The value within 1e-9 (PromQL's float arithmetic is not Python's, bit for bit): 1 when close.
        expr = f"abs(({query}) - {expected if expected is not None else 0}) < bool 1e-9"
        samples = [] if expected is None else [{"labels": "{}", "value": 1}]
        tests.append({"interval": "15s", "input_series": [requests, *series],
                      "promql_expr_test": [{"expr": expr, "eval_time": "15m", "exp_samples": samples}]})
    path = tmp_path / "shift-test.yaml"
    path.write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = {name: _analysis.verdict([] if c is None or s is None else [_analysis.psi(c, s)], LIMIT)
                for name, (_, c, s) in SCENARIOS.items()}
    assert verdicts == {"same-shares-at-other-volumes": "Successful", "skewed-canary": "Failed",
                        "two-canary-pods-and-another-model": "Failed", "a-bin-only-the-canary-has": "Failed",
                        "stable-counts-no-predictions": "Inconclusive"}
