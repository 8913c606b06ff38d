"""The gate report page: the verdict, every gate, and its pictures inline, from gate.json and the evidence."""

from __future__ import annotations

import base64
import re

import numpy as np

from steps._core.documents import GateEntry, GateReport
from steps._quality.metrics import per_class
from steps._quality.report import Evidence, render
from steps._quality.segments import SegmentF1


def entry(name: str, passed: bool, value: float, note: str) -> GateEntry:
    return GateEntry(name=name, passed=passed, value=value, bound=0.5, bound_kind="minimum", comparison="gte",
                     baseline_value=0.7, tolerance=0.03, note=note)


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
    assert "REJECTED: pr_auc" in page and "400 holdout rows; baseline version 3." in page
    assert "<td>pr_auc</td><td class='fail'>FAIL</td><td>0.2</td>" in page
    assert "<td>0.2 &lt; minimum 0.5</td>" in page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 3  # ROC, PR, confusion matrix: no segments or importances in this evidence
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)


def _images(page: str) -> list[str]:
    found = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([^']+)'", page)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for _, img in found)
    return [alt for alt, _ in found]


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
    assert _images(page) == ["Predicted vs actual", "Residuals vs predicted",
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
    assert _images(page) == ["Confusion matrix (the most probable class)", "Precision and recall per class",
                             "Macro-F1 per segment"]
    table = per_class(y, p)
    assert (f"<tr><td>outage</td><td>{int(table['support'][1])}</td><td>{int(table['predicted'][1])}</td>"
            f"<td>{table['precision'][1]:.3f}</td><td>{table['recall'][1]:.3f}</td>") in page
