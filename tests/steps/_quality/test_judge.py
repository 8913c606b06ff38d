"""Judging one gate: the candidate's value against its bound, then against the baseline with the tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from steps._core.policy import Gate
from steps._quality.edge_cases import EdgeCase
from steps._quality.judge import judge
from steps._quality.measures import Measured
from steps._quality.noise import Interval


def measured(metrics: dict[str, float | None], notes: dict[str, str] | None = None, cases: int = 0) -> Measured:
    edge_cases = [EdgeCase(name=f"case{i}", rows=1, outcome="scores", passed=True, detail="") for i in range(cases)]
    return Measured(scores=np.empty(0), metrics=metrics, notes=notes or {}, edge_cases=edge_cases)


@pytest.mark.parametrize(
    ("gate", "value", "bound_kind", "reason"),
    [
        (Gate("pr_auc", minimum=0.5), 0.42, "minimum", "0.42 < minimum 0.5"),
        (Gate("latency_p95_ms", maximum=50.0), 61.25, "maximum", "61.25 > maximum 50"),
    ],
    ids=["below-minimum", "above-maximum"],
)
def test_a_value_beyond_its_bound_fails_naming_value_and_bound(
    gate: Gate, value: float, bound_kind: str, reason: str
) -> None:
    entry = judge(gate, measured({gate.name: value}), None)
    assert entry["passed"] is False and entry["note"] == reason
    assert entry["value"] == value and entry["bound_kind"] == bound_kind
    assert entry["bound"] == (gate.minimum if bound_kind == "minimum" else gate.maximum)


def test_a_candidate_below_the_baseline_minus_the_tolerance_fails() -> None:
    gate = Gate("pr_auc", minimum=0.5, comparison="gte", tolerance=0.03)
    entry = judge(gate, measured({"pr_auc": 0.6}), measured({"pr_auc": 0.7}))
    assert entry["passed"] is False and entry["note"] == "0.6 < baseline 0.7 - 0.03"
    assert (entry["baseline_value"], entry["comparison"], entry["tolerance"]) == (0.7, "gte", 0.03)


def test_a_candidate_within_the_tolerance_of_the_baseline_passes() -> None:
    gate = Gate("latency_p95_ms", maximum=50.0, comparison="lte", tolerance=5.0)
    assert judge(gate, measured({"latency_p95_ms": 24.0}), measured({"latency_p95_ms": 20.0}))["passed"] is True
    entry = judge(gate, measured({"latency_p95_ms": 26.0}), measured({"latency_p95_ms": 20.0}))
    assert entry["passed"] is False and entry["note"] == "26 > baseline 20 + 5"


def test_without_a_baseline_a_comparison_passes_on_its_bound_and_says_why() -> None:
    gate = Gate("roc_auc", minimum=0.8, comparison="gte", tolerance=0.01)
    assert judge(gate, measured({"roc_auc": 0.9}), None)["note"] == "not compared: no baseline yet"
    why = "baseline v3 not comparable: the holdout lacks its features ['age']"
    entry = judge(gate, measured({"roc_auc": 0.9}), None, why)
    assert entry["passed"] is True and entry["status"] == "pass" and entry["baseline_value"] is None
    assert entry["note"] == f"not compared: {why}"


def test_a_baseline_value_that_could_not_be_measured_is_not_compared() -> None:
    gate = Gate("recall_gap", maximum=0.2, comparison="lte", tolerance=0.05)
    entry = judge(gate, measured({"recall_gap": 0.1}), measured({"recall_gap": None}))
    assert entry["passed"] is True
    assert entry["note"] == "the baseline's value could not be measured: not compared"


def test_an_unmeasurable_value_is_skipped_with_its_reason_never_passed() -> None:
    why = "fewer than 2 segments of 'region' with >= 20 positives (eu: 3): nothing to compare"
    entry = judge(Gate("recall_gap", maximum=0.2), measured({"recall_gap": None}, {"recall_gap": why}), None)
    assert entry["status"] == "skipped" and entry["value"] is None and entry["note"] == f"skipped: {why}"
    assert entry["passed"] is True  # it does not hold the model back (if_skipped: allow, the default)
    entry = judge(Gate("peak_memory_mb", maximum=256.0), measured({"peak_memory_mb": None}), None)
    assert entry["status"] == "skipped" and entry["note"] == "skipped: could not be measured"


def test_a_skipped_gate_blocks_the_candidate_when_the_policy_says_so() -> None:
    gate = Gate("recall_gap", maximum=0.2, if_skipped="block")
    entry = judge(gate, measured({"recall_gap": None}, {"recall_gap": "too few positives"}), None)
    assert entry["status"] == "skipped" and entry["passed"] is False
    assert entry["note"] == ("could not be evaluated, and the policy says if_skipped: block; "
                             "skipped: too few positives")


def test_importance_stability_needs_a_baseline_and_a_defined_correlation() -> None:
    gate = Gate("feature_importance_stability", minimum=0.9, comparison="gte")
    candidate = measured({"feature_importance_stability": None})
    entry = judge(gate, candidate, None)
    assert entry["passed"] is True and entry["status"] == "skipped"
    assert entry["note"] == "skipped: no baseline yet: no importances to compare with"
    entry = judge(gate, candidate, measured({}))
    assert entry["passed"] is False
    assert entry["note"] == "importances are constant, so their correlation is undefined"


def test_edge_cases_are_required_with_no_bound_or_comparison() -> None:
    gate = Gate("edge_cases", comparison="gte", tolerance=1.0)
    entry = judge(gate, measured({"edge_cases": 0}, {"edge_cases": "empty_batch: error ValueError"}, cases=5), None)
    assert entry["passed"] is True and entry["note"] == "all 5 cases handled: empty_batch: error ValueError"
    assert (entry["bound"], entry["bound_kind"], entry["comparison"], entry["tolerance"]) == (
        None, "required", None, None
    )
    failing = measured({"edge_cases": 1}, {"edge_cases": "huge_values: 2 of 2 scores outside [0, 1]"}, cases=5)
    entry = judge(gate, failing, None)
    assert entry["passed"] is False
    assert entry["note"] == "1 of 5 cases failed: huge_values: 2 of 2 scores outside [0, 1]"


def test_an_informational_gate_says_so_after_its_verdict() -> None:
    entry = judge(Gate("model_size_mb", maximum=1.0, required=False), measured({"model_size_mb": 3.5}), None)
    assert entry["passed"] is False
    assert entry["note"] == "3.5 > maximum 1; not required (informational)"


def test_a_worse_candidate_within_the_holdout_s_noise_passes_and_beyond_it_fails() -> None:
    """On a small holdout the bootstrap interval of (candidate - baseline) reaches above -tolerance: the
    difference could be a reshuffle of the rows, so the retrain is not rejected for it; on a large one it cannot."""
    gate = Gate("pr_auc", minimum=0.1, comparison="gte", tolerance=0.02)
    noisy = Interval(low=-0.15, high=0.01, resamples=200)
    entry = judge(gate, measured({"pr_auc": 0.6}), measured({"pr_auc": 0.67}), interval=noisy)
    assert entry["passed"] is True and entry["interval"] == [-0.15, 0.01]
    assert "worse than the tolerance 0.02, but within the holdout's sampling noise" in entry["note"]
    certain = Interval(low=-0.09, high=-0.05, resamples=200)
    entry = judge(gate, measured({"pr_auc": 0.6}), measured({"pr_auc": 0.67}), interval=certain)
    assert entry["passed"] is False and entry["status"] == "fail"
    assert entry["note"].startswith("0.6 < baseline 0.67 - 0.02; 95% bootstrap interval")


def test_a_baseline_of_another_task_skips_the_comparison_but_not_the_bound() -> None:
    why = "baseline v3 not comparable: it is a binary model, the candidate a regression model"
    gate = Gate("rmse_vs_mean", maximum=0.8, comparison="lte", tolerance=0.02)
    entry = judge(gate, measured({"rmse_vs_mean": 0.4}), None, why, incomparable=True)
    assert entry["status"] == "skipped" and entry["passed"] is True and entry["baseline_value"] is None
    assert entry["note"] == f"skipped: not compared: {why}"
    entry = judge(gate, measured({"rmse_vs_mean": 1.02}), None, why, incomparable=True)
    assert entry["status"] == "fail" and entry["note"] == f"1.02 > maximum 0.8; not compared: {why}"
    blocking = Gate("rmse_vs_mean", maximum=0.8, comparison="lte", tolerance=0.02, if_skipped="block")
    entry = judge(blocking, measured({"rmse_vs_mean": 0.4}), None, why, incomparable=True)
    assert entry["status"] == "skipped" and entry["passed"] is False
    assert entry["note"].startswith("could not be evaluated, and the policy says if_skipped: block")
    # A gate with no comparison is judged on its bound alone, as with no baseline.
    assert judge(Gate("rmse", maximum=5.0), measured({"rmse": 4.0}), None, why, incomparable=True)["status"] == "pass"
