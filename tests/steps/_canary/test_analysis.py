"""steps/_canary/analysis.py: the one source of the canary analysis' PromQL. The local rollout's queries are the
rendered AnalysisTemplate's, only the rate window differs; its verdicts are Argo Rollouts' reading of the template's
own conditions; an unreachable Prometheus is a transient failure that names the URL."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from steps._canary import analysis as _analysis
from steps._core.errors import TransientError
from steps._core.policy import Policy, load_policy
from steps._core.prometheus import Prometheus
from tests.support.argo import VERDICTS, argo_verdict
from tests.support.policies import write_policy
from tests.support.processes import free_port
from workflows import serving


@pytest.fixture(scope="module")
def policy(policy_file: Path) -> Policy:
    return load_policy(policy_file)


def _rendered(policy: Policy) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in serving.build_analysis_template(policy)["spec"]["metrics"]}


def _local_queries(policy: Policy, seconds: int) -> dict[str, str]:
    return {"latency-p95-ms": _analysis.latency_query(policy, seconds),
            "error-ratio": _analysis.error_ratio_query(policy, seconds)}


@pytest.mark.parametrize("scale", [0.1, 0.01, 0.5], ids=["scale-0.1", "scale-0.01", "scale-0.5"])
def test_the_local_rollout_runs_the_rendered_analysis_template_queries_with_only_the_window_scaled(
        policy: Policy, scale: float) -> None:
    rendered = _rendered(policy)
    cluster, local = _analysis.window(policy), _analysis.window(policy, _analysis.window_seconds(policy, scale))
    assert local != cluster, "a time-scaled rollout must measure over a shorter window"
    for name, query in _local_queries(policy, _analysis.window_seconds(policy, scale)).items():
        template = rendered[name]["provider"]["prometheus"]["query"]
        assert f"[{cluster}]" in template
        assert query == template.replace(f"[{cluster}]", f"[{local}]"), name
        assert f"[{cluster}]" not in query


def test_an_unscaled_local_rollout_runs_exactly_the_rendered_queries(policy: Policy) -> None:
    rendered = _rendered(policy)
    for name, query in _local_queries(policy, _analysis.window_seconds(policy, 1.0)).items():
        assert query == rendered[name]["provider"]["prometheus"]["query"], name


WINDOWS = [
    # (interval, scale, window)
    ("1m", 1.0, "1m"),
    ("2m", 1.0, "2m"),
    ("90s", 1.0, "90s"),
    ("30s", 1.0, "1m"),  # Prometheus needs a few scrapes: never under a minute in the cluster
    ("1m", 0.1, "6s"),  # 60 * 0.1 is 6.000000000000001 in floating point: still 6 s
    ("1m", 0.01, f"{_analysis.LOCAL_MIN_WINDOW_SECONDS}s"),  # a few 1 s scrapes locally
    ("5m", 0.5, "150s"),
]


@pytest.mark.parametrize(("interval", "scale", "expected"), WINDOWS, ids=[f"{w[0]}x{w[1]}" for w in WINDOWS])
def test_the_rate_window_is_the_interval_scaled_with_a_floor(
        policy_file: Path, tmp_path: Path, interval: str, scale: float, expected: str) -> None:
    policy = load_policy(write_policy(tmp_path, policy_file, f"canary:\n  analysis: {{interval: {interval}}}"))
    assert _analysis.window(policy, _analysis.window_seconds(policy, scale)) == expected
    assert f"[{expected}]" in _analysis.latency_query(policy, _analysis.window_seconds(policy, scale))


def test_the_queries_select_the_model_from_the_policy(policy_file: Path, tmp_path: Path) -> None:
    churn = load_policy(write_policy(tmp_path, policy_file, "canary:\n  analysis: {min_requests: 7}", model="churn"))
    query = _analysis.error_ratio_query(churn, 6)
    assert re.findall(r'model="([^"]+)"', query) == ["churn"] * 3
    assert query.rstrip().endswith(">= 7)")


@pytest.mark.parametrize(("metric", "result", "expected"), VERDICTS,
                         ids=[f"{m}-{r}" for m, r, _ in VERDICTS])
def test_a_reading_is_judged_as_argo_rollouts_judges_the_rendered_conditions(
        policy: Policy, metric: str, result: list[float], expected: str) -> None:
    threshold = {"latency-p95-ms": policy.canary.analysis.latency_p95_ms,
                 "error-ratio": policy.canary.analysis.error_ratio}[metric]
    assert _analysis.verdict(result, threshold) == expected
    assert _analysis.verdict(result, threshold) == argo_verdict(_rendered(policy)[metric], result)


PHASES = [
    ("Successful", "Successful", "Successful"),
    ("Failed", "Successful", "Failed"),
    ("Successful", "Failed", "Failed"),
    ("Failed", "Inconclusive", "Failed"),  # a failure is evidence enough, whatever the other metric says
    ("Inconclusive", "Successful", "Inconclusive"),
    ("Inconclusive", "Inconclusive", "Inconclusive"),
]


@pytest.mark.parametrize(("latency", "errors", "expected"), PHASES, ids=[f"{a}-{b}" for a, b, _ in PHASES])
def test_a_measurement_fails_on_any_failed_metric_and_passes_only_when_both_pass(
        latency: str, errors: str, expected: str) -> None:
    reading = _analysis.Reading(math.nan, math.nan, 0.0, latency, errors, "6s")
    assert reading.phase == expected


def test_a_reading_keeps_each_metrics_value_and_phase_and_nan_for_an_empty_result(policy: Policy) -> None:
    limit = policy.canary.analysis.latency_p95_ms
    reading = _analysis.judge(policy, [limit + 1], [], 7.0, "6s")
    assert (reading.latency_p95_ms, reading.requests, reading.window) == (limit + 1, 7.0, "6s")
    assert math.isnan(reading.error_ratio)
    assert reading.metrics == {"latency-p95-ms": "Failed", "error-ratio": "Inconclusive"}
    assert reading.phase == "Failed"


def test_an_unreachable_prometheus_is_transient_and_named(policy: Policy) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransientError, match=re.escape(f"prometheus {url}: unreachable")):
        _analysis.read(Prometheus(url), policy)
