"""steps/_canary/local/measurement.py: a measurement of the canary from its server's /metrics is the same kind of
reading as the AnalysisTemplate's queries give through Prometheus, judged by the same conditions: p95 from the
window's histogram buckets as Prometheus interpolates it, errors / requests, and nothing (Inconclusive) while the
canary served fewer than min_requests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from steps._canary.local.measurement import Snapshot, quantile, reading, snapshot
from steps._core.errors import UsageError
from steps._core.policy import Policy, load_policy


@pytest.fixture(scope="module")
def policy(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The reference policy with short_canary_policy's thresholds (tests.support.canary): p95 100 ms, errors 5%, 20
    requests."""
    raw = yaml.safe_load(policy_file.read_text())
    raw["canary"]["analysis"].update(interval="1m", count=2, failure_limit=0, inconclusive_limit=1,
                                     latency_p95_ms=100, error_ratio=0.05, min_requests=20)
    out = tmp_path_factory.mktemp("gates") / policy_file.name
    out.write_text(yaml.safe_dump(raw))
    return load_policy(out)


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    before = Snapshot(0, 0, ((0.01, 0), (0.1, 0), (float("inf"), 0)))
    after = Snapshot(100, 0, ((0.01, 50), (0.1, 100), (float("inf"), 100)))
    # rank 95 of 100 lies 45/50 of the way through the 0.01-0.1 bucket.
    assert quantile(0.95, before, after) == pytest.approx(0.01 + 0.09 * 45 / 50)
    assert quantile(0.95, after, after) != quantile(0.95, after, after)  # no traffic: NaN, never a number


def test_too_little_traffic_is_inconclusive_never_a_pass(policy: Policy) -> None:
    before = Snapshot(0, 0, ((0.01, 0), (float("inf"), 0)))
    after = Snapshot(5, 0, ((0.01, 5), (float("inf"), 5)))
    assert reading(policy, before, after, 1.0).phase == "Inconclusive"
    busy = Snapshot(50, 0, ((0.01, 50), (float("inf"), 50)))
    assert reading(policy, before, busy, 1.0).phase == "Successful"
    failing = Snapshot(50, 10, ((0.01, 50), (float("inf"), 50)))
    assert reading(policy, before, failing, 1.0).phase == "Failed"


def test_each_metric_is_judged_by_its_own_condition_as_the_analysis_template_does(policy: Policy) -> None:
    before = Snapshot(0, 0, ((0.01, 0), (0.5, 0), (float("inf"), 0)))
    slow = Snapshot(50, 0, ((0.01, 0), (0.5, 50), (float("inf"), 50)))  # p95 ~ 475 ms > 100 ms
    found = reading(policy, before, slow, 2.0)
    assert (found.latency_phase, found.error_phase, found.phase) == ("Failed", "Successful", "Failed")
    assert found.latency_p95_ms == pytest.approx(10 + 490 * 47.5 / 50) and found.error_ratio == 0.0
    assert found.metrics == {"latency-p95-ms": "Failed", "error-ratio": "Successful"}
    idle = reading(policy, before, Snapshot(5, 5, ((0.01, 0), (0.5, 5), (float("inf"), 5))), 2.0)
    # Below min_requests the queries answer nothing: NaN values, both metrics Inconclusive, even at 100% errors.
    assert (idle.latency_phase, idle.error_phase) == ("Inconclusive", "Inconclusive")
    assert math.isnan(idle.latency_p95_ms) and math.isnan(idle.error_ratio) and idle.requests == 5


def test_snapshot_sums_the_series_of_the_server() -> None:
    text = """# TYPE model_requests_total counter
model_requests_total{model="m",version="1",code="200"} 7
model_requests_total{model="m",version="1",code="500"} 3
model_inference_errors_total{model="m",version="1"} 3
model_inference_duration_seconds_bucket{model="m",version="1",le="0.005"} 4
model_inference_duration_seconds_bucket{model="m",version="1",le="+Inf"} 10
"""
    snap = snapshot(text)
    assert (snap.requests, snap.errors) == (10, 3)
    assert snap.buckets == ((0.005, 4), (float("inf"), 10))



def test_snapshot_reads_the_prediction_counter_the_guard_compares() -> None:
    text = """model_requests_total{model="m",version="1",code="200"} 7
model_prediction_bin_total{model="m",version="1",bin="0"} 5
model_prediction_bin_total{model="m",version="1",bin="1"} 2
model_prediction_shift_bin_total{model="m",version="1",bin="17"} 4
model_prediction_shift_bin_total{model="m",version="1",bin="18"} 3
"""
    assert snapshot(text).predictions == (("0", 5), ("1", 2))  # a multiclass model's classes
    assert snapshot(text, predictions="model_prediction_shift_bin_total").predictions == (("17", 4), ("18", 3))

def test_a_page_that_is_not_an_exposition_is_refused_naming_it() -> None:
    with pytest.raises(UsageError, match="http://127.0.0.1:1/metrics/canary: not a Prometheus text exposition"):
        snapshot("model_requests_total{model=\"m\" 7\n", "http://127.0.0.1:1/metrics/canary")
