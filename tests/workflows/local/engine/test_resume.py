"""An indefinite suspend stops the run with its state in the run folder; `mlops run --resume` (run_workflow with
`resume`) continues it, with supplied outputs or their defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local.engine.cases import bounded, node, output
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.operator import run_workflow
from workflows.local.engine.resume import STATE_FILE, ResumeError

WORKFLOW: dict[str, Any] = {
    "metadata": {"name": "approval"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [
                [{"name": "approve", "template": "approve"}],
                [{"name": "release", "template": "release", "arguments": {"parameters": [
                    {"name": "answer", "value": "{{steps.approve.outputs.parameters.answer}}"}]}}]]},
            {"name": "approve", "suspend": {}, "outputs": {"parameters": [
                {"name": "answer", "valueFrom": {"supplied": {}, "default": "by-default"}}]}},
            {"name": "release", "inputs": {"parameters": [{"name": "answer"}]},
             "container": {"image": "alpine:3.20", "command": ["sh", "-c"],
                           "args": ["echo {{inputs.parameters.answer}}"]},
             "outputs": {"parameters": [{"name": "said", "value": "{{inputs.parameters.answer}}"}]}},
        ],
    },
}


def _run(tmp_path: Path, resume: dict[str, dict[str, str]] | None = None) -> Any:
    with bounded(30):
        return run_workflow(WORKFLOW, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                            state_dir=tmp_path / "state", resume=resume)


def test_indefinite_suspend_stops_the_run_and_keeps_its_state(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.phase == "Running"
    assert result.suspended == ["approval[0].approve"]
    assert node(result, "approval[0].approve").phase == "Running"
    assert result.nodes.by_name("approval[1].release") is None
    assert (tmp_path / "run" / STATE_FILE).exists()


def test_resume_supplies_the_output_and_finishes(tmp_path: Path) -> None:
    _run(tmp_path)
    result = _run(tmp_path, resume={"approve": {"answer": "yes"}})
    assert result.phase == "Succeeded"
    assert output(node(result, "approval[0].approve"), "answer") == "yes"
    assert node(result, "approval[1].release").inputs.parameters[0].value == "yes"
    assert not (tmp_path / "run" / STATE_FILE).exists()


def test_resume_without_values_takes_the_defaults(tmp_path: Path) -> None:
    _run(tmp_path)
    result = _run(tmp_path, resume={})
    assert result.phase == "Succeeded"
    assert node(result, "approval[1].release").inputs.parameters[0].value == "by-default"


def test_resume_of_a_run_that_is_not_suspended_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResumeError, match="no suspended run"):
        _run(tmp_path, resume={})


def test_a_workflow_submitted_suspended_runs_nothing_until_resumed(tmp_path: Path) -> None:
    suspended = {**WORKFLOW, "spec": {**WORKFLOW["spec"], "suspend": True}}
    with bounded(30):
        first = run_workflow(suspended, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                             state_dir=tmp_path / "state")
        assert (first.phase, first.suspended, first.nodes.nodes) == ("Running", ["approval"], {})
        second = run_workflow(suspended, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                              state_dir=tmp_path / "state", resume={})
    assert second.phase == "Running"
    assert second.suspended == ["approval[0].approve"]
