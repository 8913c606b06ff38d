"""Steps as steps.go runs them: a group waits for all its steps, continueOn, the next group never starts after a
failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.workflows.local.engine.cases import bounded, node
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.operator import Result, run_workflow


def _run(groups: list[list[dict[str, Any]]], tmp_path: Path) -> Result:
    workflow = {"metadata": {"name": "s"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": groups},
        {"name": "fail", "container": {"image": "alpine:3.20", "command": ["sh", "-c", "exit 2"]}},
        {"name": "slow", "container": {"image": "alpine:3.20", "command": ["sleep", "1"]}}]}}
    with bounded(30):
        return run_workflow(workflow, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                            state_dir=tmp_path / "state")


def test_a_failed_step_fails_its_group_once_its_siblings_end(tmp_path: Path) -> None:
    result = _run([[{"name": "f", "template": "fail"}, {"name": "w", "template": "slow"}],
                   [{"name": "next", "template": "slow"}]], tmp_path)
    assert result.phase == "Failed"
    assert node(result, "s[0].w").phase == "Succeeded"
    assert node(result, "s[0]").phase == "Failed"
    assert (node(result, "s[0]").finished_at or 0) >= (node(result, "s[0].w").finished_at or 0)
    assert result.nodes.by_name("s[1].next") is None


def test_continue_on_failed_lets_the_next_group_run(tmp_path: Path) -> None:
    result = _run([[{"name": "f", "template": "fail", "continueOn": {"failed": True}}],
                   [{"name": "next", "template": "slow"}]], tmp_path)
    assert result.phase == "Succeeded"
    assert node(result, "s[0].f").phase == "Failed"
    assert node(result, "s[1].next").phase == "Succeeded"
