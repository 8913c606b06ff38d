"""The gate report page: the verdict, every gate, and its pictures inline, from gate.json and the evidence."""

from __future__ import annotations

import base64
import re

import numpy as np

from steps._core.documents import GateEntry, GateReport
from steps._quality.report import Evidence, render


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
