"""What the registry page plots: the gates a version measured as a number, not a gate every version skipped nor a
`required` one; and the trigger as a person says it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steps._registry.views import read
from steps._storage.registry import Registry
from tests.steps._registry.scenario import MODELS, bundle, gate_report, quality


def test_only_gates_measured_as_numbers_are_plotted(tmp_path: Path) -> None:
    model, gates = MODELS["binary"], quality("binary")
    reg = Registry.open(str(tmp_path / "registry"))
    for n in (1, 2):
        report: Any = gate_report(model, gates, 0.1, None)
        for entry in report["gates"]:
            if entry["name"] == "recall_gap":  # too few positives per segment in every run: skipped, no value
                entry.update(status="skipped", value=None, note="skipped: fewer than 2 segments")
        reg.register(model, bundle(tmp_path, model, n, "manual"), passed=True, gate_report=report)
    view = read(reg, model)
    assert "recall_gap" not in view.gated_metrics and "edge_cases" not in view.gated_metrics
    assert view.gated_metrics[:3] == ["accuracy", "pr_auc", "roc_auc"]  # the policy's order


def test_the_trigger_says_manual_drift_with_its_features_or_git_push(tmp_path: Path) -> None:
    model, gates = MODELS["regression"], quality("regression")
    reg = Registry.open(str(tmp_path / "registry"))
    reasons = ["manual", "automated_drift_detection", "git-push"]
    for n, reason in enumerate(reasons, start=1):
        report: Any = gate_report(model, gates, 0.1, None)
        reg.register(model, bundle(tmp_path, model, n, reason), passed=True, gate_report=report)
    assert [v.trigger for v in read(reg, model).versions] == ["manual", "drift: amount, hour", "git push 3333333ccc"]
