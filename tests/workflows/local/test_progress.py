"""What `mlops run` prints (workflows/local/progress.py): task lines, coloured only on a terminal, and the
summary: the tasks, the registered version, how the rollout ended, each gate's verdict, the reports."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from workflows.local.progress import Progress, print_summary
from workflows.local.record import RunResult
from workflows.local.task import TaskState


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Progress(Terminal()).paint("Failed", "Failed") == "\033[31mFailed\033[0m"
    assert Progress(io.StringIO()).paint("Failed", "Failed") == "Failed"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Progress(Terminal()).paint("Failed", "Failed") == "Failed"


def summary(tmp_path: Path, rollout_phase: str, rollout_message: str = "") -> str:
    reports = tmp_path / "tasks" / "gate" / "outputs" / "reports"
    reports.mkdir(parents=True)
    (reports / "gate.json").write_text(json.dumps({
        "model": "churn", "passed": False, "candidate": {"pr_auc": 0.21}, "failed": ["pr_auc"],
        "gates": [{"name": "pr_auc", "passed": False, "value": 0.21, "bound": 0.5, "bound_kind": "minimum",
                   "note": "below the minimum"}]}))
    tasks = {
        "gate": TaskState("gate", "gate", [], phase="Succeeded", attempts=1, started=0.0, finished=1.5,
                          artifacts={"gate-report": str(reports)}),
        "register": TaskState("register", "register", ["gate"], phase="Succeeded", attempts=1,
                              parameters={"version": "3"}),
        "rollout": TaskState("rollout", "rollout", ["register"], phase=rollout_phase, message=rollout_message),
    }
    stream = io.StringIO()
    print_summary(RunResult("churn-training-x1", "Failed", "failed: rollout", tmp_path, {"model": "churn"}, tasks,
                            12.0), Progress(stream))
    return stream.getvalue()


def test_the_summary_names_the_version_the_gates_and_where_the_reports_are(tmp_path: Path) -> None:
    out = summary(tmp_path, "Failed", "exit code 1")
    assert "churn-training-x1: Failed in 12.0s (failed: rollout)" in out
    assert "Registered: churn v3 (rejected)" in out
    assert f"Rollout: churn v3 not promoted: exit code 1 (see {tmp_path / 'tasks' / 'rollout' / 'log'})" in out
    assert "Gate: REJECTED (failed: pr_auc)" in out
    assert "  metrics: pr_auc=0.21" in out
    assert re.search(r"^  FAIL +pr_auc: 0\.21 minimum 0\.5 \(below the minimum\)$", out, flags=re.MULTILINE), out
    assert f"  gate.gate-report: {tmp_path / 'tasks' / 'gate' / 'outputs' / 'reports'}/ (gate.json)" in out
    assert out.rstrip().endswith(f"Run folder: {tmp_path} (workflow.yaml, run.json, tasks/<task>/log)")


def test_the_summary_says_when_the_rollout_promoted_the_version(tmp_path: Path) -> None:
    assert "Rollout: churn v3 promoted to production" in summary(tmp_path, "Succeeded")
    # An omitted rollout (the gate said no) says nothing about a rollout.
    assert "Rollout:" not in summary(tmp_path / "omitted", "Omitted")
