"""The server's Prometheus metrics (steps/_serving/metrics.py): one table in shared memory that every worker process
counts into, rendered as an exposition Prometheus parses, with the series the canary analysis and the drift check
query."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from steps._canary import analysis
from steps._core.policy import load_policy
from steps._serving.metrics import CODES, DURATION_BUCKETS, Metrics
from steps._serving.outputs import shift_labels
from tests.support.paths import POLICY
from tests.support.serving import (
    SCORE_PROFILE,
    VALUE_PROFILE,
    class_profile,
    served,
    served_multiclass,
    served_regression,
)

FEATURES = ["amount", "channel"]
BINS = [["0", "1", "2", "missing"], ["0", "1", "other", "missing"]]


def new(workers: int = 1, model: str = "fraud-detection", version: str = "3",
        features: list[str] | None = None, bins: list[list[str]] | None = None, **options: Any) -> Metrics:
    return Metrics(model, version, features or FEATURES, bins or BINS, workers, **options)


def families(metrics: Metrics) -> dict[str, Any]:
    """The rendered exposition as prometheus_client's parser reads it, by family name."""
    return {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}


def samples(metrics: Metrics, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for f in families(metrics).values() for s in f.samples if s.name == name]


def one(metrics: Metrics, name: str, **labels: str) -> float:
    values = [v for found, v in samples(metrics, name) if labels.items() <= found.items()]
    assert len(values) == 1, (name, labels, values)
    return values[0]


def in_child(work: Callable[[], None]) -> None:
    """Run `work` in a forked process, as a server worker runs, and wait for it to exit cleanly."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            work()
        except BaseException:  # any failure must reach the parent as an exit code, never unwind into pytest
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_exposition_parses_with_the_types_and_labels_prometheus_expects() -> None:
    metrics = new()
    found = families(metrics)
    assert {name: f.type for name, f in found.items()} == {
        "model_requests": "counter", "model_inference_errors": "counter", "model_inference_rows": "counter",
        "model_inference_duration_seconds": "histogram", "model_batch_size": "histogram",
        "model_prediction_score": "histogram", "model_feature_bin": "counter",
    }
    for family in found.values():
        for sample in family.samples:
            assert sample.labels["model"] == "fraud-detection" and sample.labels["model_version"] == "3", sample
    assert metrics.render().endswith(b"\n")


def test_every_status_code_is_declared_from_the_start_at_zero() -> None:
    # Pre-declared so that rate() over the first 5xx sees it rise from 0 instead of appearing.
    assert sorted((labels["code"], value) for labels, value in samples(new(), "model_requests_total")) == sorted(
        (str(code), 0.0) for code in CODES)


def test_the_series_the_canary_analysis_and_the_drift_check_query_exist() -> None:
    policy = load_policy(POLICY)
    queries = analysis.latency_query(policy) + analysis.error_ratio_query(policy) + analysis.requests_query(policy)
    queried = set(re.findall(r"\b(model_[a-z_]+)\{", queries))
    assert queried == {"model_requests_total", "model_inference_duration_seconds_bucket",
                       "model_inference_errors_total"}
    metrics = new()
    metrics.request(200, 0.01)
    exposed = {name for name in queried if samples(metrics, name)}
    assert exposed == queried
    # The analysis selects on `model` (`role` is added by the scrape); the latency query sums by `le`.
    assert all("le" in labels for labels, _ in samples(metrics, "model_inference_duration_seconds_bucket"))
    assert {labels["code"] for labels, _ in samples(metrics, "model_requests_total")} >= {"200", "500", "503"}
    # The drift check reads model_feature_bin_total{feature, bin}.
    assert {(labels["feature"], labels["bin"]) for labels, _ in samples(metrics, "model_feature_bin_total")} == {
        (feature, label) for feature, labels in zip(FEATURES, BINS, strict=True) for label in labels}


def test_requests_count_by_code_and_5xx_count_as_errors() -> None:
    metrics = new()
    for code in (200, 200, 400, 503, 500):
        metrics.request(code, 0.002)
    assert [one(metrics, "model_requests_total", code=c) for c in ("200", "400", "503", "500")] == [2, 1, 1, 1]
    assert one(metrics, "model_inference_errors_total") == 2
    assert metrics.value("model_requests_total", code="200") == 2
    assert metrics.value("model_inference_errors_total") == 2


def test_a_status_outside_the_declared_codes_is_still_counted_as_a_request() -> None:
    metrics = new()
    metrics.request(418, 0.001)
    assert sum(value for _, value in samples(metrics, "model_requests_total")) == 1
    assert one(metrics, "model_requests_total", code="500") == 1


def test_the_duration_histogram_is_cumulative_with_sum_and_count() -> None:
    metrics = new()
    for seconds in (0.0005, 0.003, 0.003, 0.2, 5.0):
        metrics.request(200, seconds)
    buckets = {labels["le"]: value for labels, value in samples(metrics, "model_inference_duration_seconds_bucket")}
    assert list(buckets) == [*(str(float(b)) for b in DURATION_BUCKETS), "+Inf"]
    assert (buckets["0.001"], buckets["0.005"], buckets["0.1"], buckets["0.25"], buckets["2.5"], buckets["+Inf"]) == (
        1, 3, 3, 4, 4, 5)
    assert one(metrics, "model_inference_duration_seconds_count") == 5
    assert one(metrics, "model_inference_duration_seconds_sum") == pytest.approx(5.2065)


def test_a_scored_batch_counts_rows_batch_size_and_scores() -> None:
    metrics = new()
    metrics.batch_done(3, [0.02, 0.5, 0.97])
    metrics.batch_done(1, [0.6])
    assert one(metrics, "model_inference_rows_total") == 4
    assert metrics.value("model_inference_rows_total") == 4
    batch = {labels["le"]: value for labels, value in samples(metrics, "model_batch_size_bucket")}
    assert (batch["1.0"], batch["2.0"], batch["4.0"], batch["+Inf"]) == (1, 1, 2, 2)
    assert one(metrics, "model_batch_size_sum") == 4
    score = {labels["le"]: value for labels, value in samples(metrics, "model_prediction_score_bucket")}
    assert [score[le] for le in ("0.01", "0.05", "0.5", "0.6", "0.99", "+Inf")] == [0, 1, 2, 3, 4, 4]
    assert one(metrics, "model_prediction_score_sum") == pytest.approx(2.09)
    assert one(metrics, "model_prediction_score_count") == 4


def test_counters_and_histograms_add_up_across_slots() -> None:
    metrics = new(workers=3)
    metrics.use_slot(0)
    metrics.request(200, 0.003)
    metrics.request(200, 0.003)
    metrics.use_slot(1)
    metrics.request(503, 0.2)
    metrics.batch_done(2, [0.1, 0.2])
    metrics.use_slot(2)
    metrics.request(200, 0.05)
    metrics.batch_done(1, [0.9])
    metrics.counts[metrics.bin_offsets[1] + 2] += 1  # as the contract counts a row's bin
    assert one(metrics, "model_requests_total", code="200") == 3
    assert one(metrics, "model_requests_total", code="503") == 1
    assert one(metrics, "model_inference_errors_total") == 1
    assert one(metrics, "model_inference_duration_seconds_count") == 4
    assert one(metrics, "model_inference_duration_seconds_bucket", le="0.005") == 2
    assert one(metrics, "model_inference_duration_seconds_bucket", le="0.05") == 3
    assert one(metrics, "model_inference_rows_total") == 3
    assert one(metrics, "model_feature_bin_total", feature="channel", bin="other") == 1
    assert metrics.value("model_feature_bin_total", feature="channel", bin="other") == 1


def test_worker_processes_count_into_one_table() -> None:
    metrics = new(workers=2)

    def worker() -> None:
        metrics.use_slot(1)
        for _ in range(5):
            metrics.request(200, 0.01)
        metrics.batch_done(5, [0.3] * 5)

    in_child(worker)
    metrics.use_slot(0)
    metrics.request(500, 0.01)
    # Whichever worker a scrape reaches renders every worker's counts.
    assert one(metrics, "model_requests_total", code="200") == 5
    assert one(metrics, "model_requests_total", code="500") == 1
    assert one(metrics, "model_inference_rows_total") == 5


def test_a_restarted_worker_keeps_its_slot_so_counters_never_go_back() -> None:
    metrics = new(workers=2)

    def serve(requests: int) -> Callable[[], None]:
        def worker() -> None:
            metrics.use_slot(1)
            for _ in range(requests):
                metrics.request(200, 0.01)
        return worker

    in_child(serve(3))
    in_child(serve(2))  # the supervisor restarts the dead worker on the same slot
    assert one(metrics, "model_requests_total", code="200") == 5


@pytest.mark.parametrize("slot", [-1, 2])
def test_a_slot_outside_the_workers_is_refused(slot: int) -> None:
    with pytest.raises(ValueError, match=rf"metrics slot {slot}: must be below 2"):
        new(workers=2).use_slot(slot)


def test_label_values_are_escaped_and_parse_back() -> None:
    model, version = 'fraud "v2"', "3\\beta"
    feature, bin_label = "merchant\ncategory", 'say "other"'
    metrics = new(model=model, version=version, features=[feature], bins=[[bin_label]])
    metrics.counts[metrics.bin_offsets[0]] += 2
    assert samples(metrics, "model_feature_bin_total") == [
        ({"model": model, "model_version": version, "feature": feature, "bin": bin_label}, 2.0)]
    assert all(labels["model"] == model for labels, _ in samples(metrics, "model_requests_total"))


def test_value_of_an_unknown_series_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        new().value("model_unknown_total")


def test_prediction_bins_are_declared_from_the_start_and_counted_across_workers() -> None:
    metrics = new(workers=2, prediction_bins=["0", "1", "2", "other"])
    assert samples(metrics, "model_prediction_bin_total") == [
        ({"model": "fraud-detection", "model_version": "3", "bin": b}, 0.0) for b in ("0", "1", "2", "other")]

    def worker() -> None:
        metrics.use_slot(1)
        metrics.counts[metrics.prediction_offset + 2] += 3  # as the App counts a batch's predictions

    in_child(worker)
    metrics.counts[metrics.prediction_offset + 2] += 1
    assert one(metrics, "model_prediction_bin_total", bin="2") == 4
    assert metrics.value("model_prediction_bin_total", bin="2") == 4
    assert {f.name: f.type for f in families(metrics).values()}["model_prediction_bin"] == "counter"


def test_a_model_without_a_prediction_profile_has_no_prediction_bins() -> None:
    assert "model_prediction_bin" not in families(new())


@pytest.mark.parametrize(("model", "bins", "scores", "fixed"), [
    (served(), [], True, 0),
    (served(profile=SCORE_PROFILE), ["0", "1", "2", "3"], True, 38),
    (served_regression(profile=VALUE_PROFILE), ["0", "1", "2"], False, 104),
    (served_multiclass(profile=class_profile(["a", "b", "c"])), ["0", "1", "2", "other"], False, 0),
], ids=["binary-without-profile", "binary", "regression", "multiclass"])
def test_the_table_for_a_model_follows_its_task(model: Any, bins: list[str], scores: bool, fixed: int) -> None:
    metrics = Metrics.for_model(model, workers=1)
    metrics.batch_done(2, [0.1, 0.9])  # scores reach the histogram of a binary model only
    found = families(metrics)
    assert ("model_prediction_score" in found) == scores
    assert [s.labels["bin"] for s in found["model_prediction_bin"].samples] == bins if bins else (
        "model_prediction_bin" not in found)
    # The guard's fixed bins: a score's or a value's, counted with the profile's (none without one).
    assert [s.labels["bin"] for s in found["model_prediction_shift_bin"].samples] == [
        str(i) for i in range(fixed)] if fixed else "model_prediction_shift_bin" not in found
    assert {s.labels["feature"] for s in found["model_feature_bin"].samples} == {"amount", "channel"}
    assert one(metrics, "model_inference_rows_total") == 2


@pytest.mark.parametrize("model", [served(profile=SCORE_PROFILE), served_regression(profile=VALUE_PROFILE)],
                         ids=["binary", "regression"])
def test_a_prediction_counts_in_its_profile_bin_and_its_fixed_bin_across_workers(model: Any) -> None:
    metrics = Metrics.for_model(model, workers=2)
    assert metrics.shift_bins == list(shift_labels(model.task))
    assert samples(metrics, "model_prediction_shift_bin_total")[0] == (
        {"model": model.name, "model_version": model.version, "bin": "0"}, 0.0)  # declared from the start
    predictions = [0.5, 0.5, 0.9]

    def worker() -> None:
        metrics.use_slot(1)
        model.outputs.count(predictions, metrics.counts, metrics.prediction_offset)  # as the App counts a batch

    in_child(worker)
    model.outputs.count(predictions, metrics.counts, metrics.prediction_offset)
    fixed = {labels["bin"]: v for labels, v in samples(metrics, "model_prediction_shift_bin_total") if v}
    profile = {labels["bin"]: v for labels, v in samples(metrics, "model_prediction_bin_total") if v}
    assert sum(fixed.values()) == sum(profile.values()) == 6 and sorted(fixed.values()) == [2, 4]
    assert metrics.value("model_prediction_shift_bin_total", bin=max(fixed, key=fixed.__getitem__)) == 4
    assert {f.name: f.type for f in families(metrics).values()}["model_prediction_shift_bin"] == "counter"
