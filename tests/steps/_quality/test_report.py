"""The gate report page: the verdict first naming the failed gates, every gate, and the task's pictures as inline
SVG (no `data:` URIs, which Argo's artifact viewer blocks), from gate.json and the evidence."""

from __future__ import annotations

import re

import numpy as np

from steps._core.documents import GateEntry, GateReport
from steps._quality.metrics import per_class
from steps._quality.report import Evidence, render
from steps._quality.segments import SegmentF1


def entry(name: str, passed: bool, value: float, note: str) -> GateEntry:
    return GateEntry(name=name, passed=passed, value=value, bound=0.5, bound_kind="minimum", comparison="gte",
                     baseline_value=0.7, tolerance=0.03, note=note)


def pictures(page: str) -> list[str]:
    """The accessible names of the page's pictures, in order; every picture is inline SVG, none a `data:` URI."""
    assert "data:" not in page and "<img" not in page and "<script" not in page.lower()
    return re.findall(r"<svg role='img' aria-label='([^']+)'", page)


def test_a_rejected_candidate_shows_its_failed_gates_and_the_baseline() -> None:
    report = GateReport(
        model="fraud-detection", passed=False, holdout_rows=400, candidate={"pr_auc": 0.2},
        baseline={"version": 3, "metrics": {"pr_auc": 0.7}},
        gates=[entry("pr_auc", False, 0.2, "0.2 < minimum 0.5"), entry("roc_auc", True, 0.9, "")], failed=["pr_auc"],
    )
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 200)
    evidence = Evidence(y=y, candidate_scores=rng.random(400), threshold=0.5,
                        baseline_scores=np.clip(y * 0.6 + rng.random(400) * 0.4, 0, 1), baseline_label="v3")
    page = render(report, evidence)
    assert "<div class='verdict fail' role='status'>Rejected: failed pr_auc<small>" in page
    assert "2 gates on 400 holdout rows, against baseline version 3." in page
    assert page.index("Rejected: failed pr_auc") < page.index("<h2>Gates</h2>")
    assert "<td class='wrap'>pr_auc</td><td class='wrap'><span class='tag fail'>FAIL</span></td>" in page
    assert "0.2 &lt; minimum 0.5" in page and "≥ baseline 0.7 (tolerance 0.03)" in page
    # ROC, PR, confusion matrix: no segments or importances in this evidence
    assert pictures(page) == ["ROC curve", "Precision-recall curve", "Confusion matrix at the threshold"]
    assert "<a href='gate.json'>gate.json</a>" in page


def test_a_passing_candidate_with_a_skipped_gate_says_both() -> None:
    report = GateReport(model="fraud-detection", passed=True, holdout_rows=300, candidate={}, baseline=None,
                        gates=[entry("roc_auc", True, 0.9, "")], failed=[], skipped=["predictor_parity"])
    y = np.array([0, 1] * 150)
    page = render(report, Evidence(y=y, candidate_scores=np.linspace(0, 1, 300), threshold=0.5))
    assert "<div class='verdict warn' role='status'>Passed: the candidate meets every required gate" in page
    assert "1 skipped, not evaluated: predictor_parity" in page and "with no baseline to compare with" in page


def _report(model: str) -> GateReport:
    return GateReport(model=model, passed=True, holdout_rows=300, candidate={}, baseline=None,
                      gates=[entry("r2", True, 0.9, "")], failed=[])


def test_a_regression_report_shows_predicted_vs_actual_and_residuals() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 300)
    evidence = Evidence(y=y, candidate_scores=y + rng.normal(0, 3, 300), threshold=None, task="regression",
                        baseline_scores=y + rng.normal(0, 5, 300), baseline_label="v2",
                        importances={"x1": (2.0, 1.5), "x2": (0.5, 0.7)})
    page = render(_report("demand"), evidence)
    assert pictures(page) == ["Predicted vs actual", "Residuals vs predicted",
                              "Permutation importance (increase in RMSE)"]
    assert "ROC curve" not in page and "<h2>Per class</h2>" not in page


def test_a_multiclass_report_shows_the_confusion_matrix_and_each_class() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    p = np.eye(3)[y] + rng.random((300, 3))
    p /= p.sum(axis=1, keepdims=True)
    segment_f1 = [SegmentF1(segment="eu", rows=200, macro_f1=0.8, counted=True),
                  SegmentF1(segment="us", rows=100, macro_f1=0.7, counted=True)]
    evidence = Evidence(y=y, candidate_scores=p, threshold=None, task="multiclass",
                        classes=["billing", "outage", "spam"], segment_f1=segment_f1)
    page = render(_report("tickets"), evidence)
    assert pictures(page) == ["Confusion matrix (the most probable class)", "Precision and recall per class",
                              "Macro-F1 per segment"]
    table = per_class(y, p)
    assert (f"<tr><td class='wrap'>outage</td><td class='num'>{int(table['support'][1])}</td>"
            f"<td class='num'>{int(table['predicted'][1])}</td><td class='num'>{table['precision'][1]:.3f}</td>"
            f"<td class='num'>{table['recall'][1]:.3f}</td>") in page


def test_a_curve_of_a_large_holdout_stays_a_light_page() -> None:
    """A million-row holdout has a ROC point per distinct score: drawn as SVG that was megabytes of markup."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200_000)
    scores = np.clip(y * 0.3 + rng.random(200_000) * 0.7, 0, 1)
    page = render(_report("fraud-detection"), Evidence(y=y, candidate_scores=scores, threshold=0.5))
    assert len(pictures(page)) == 3
    assert len(page) < 400_000, f"{len(page)} characters"


def test_a_regression_page_of_a_large_holdout_draws_a_sample_of_the_points() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(50, 10, 200_000)
    evidence = Evidence(y=y, candidate_scores=y + rng.normal(0, 3, 200_000), threshold=None, task="regression",
                        baseline_scores=y + rng.normal(0, 5, 200_000), baseline_label="v2")
    page = render(_report("demand"), evidence)
    assert pictures(page) == ["Predicted vs actual", "Residuals vs predicted"]
    assert len(page) < 600_000, f"{len(page)} characters"
