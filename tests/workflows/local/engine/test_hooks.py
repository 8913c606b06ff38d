"""Which exit handler a workflow, step or task has, and with which arguments (GetExitHook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.workflows.local.engine.cases import bounded, node
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.hooks import exit_hook
from workflows.local.engine.operator import Result, run_workflow

WORKFLOW_ARGS = {"parameters": [{"name": "p", "value": "1"}]}


def test_on_exit_runs_with_the_workflows_arguments() -> None:
    assert exit_hook({"onExit": "bye"}, WORKFLOW_ARGS) == {"template": "bye", "arguments": WORKFLOW_ARGS}


def test_hooks_exit_keeps_its_own_arguments() -> None:
    own = {"parameters": [{"name": "q", "value": "{{tasks.a.status}}"}]}
    hook = exit_hook({"hooks": {"exit": {"template": "bye", "arguments": own}}}, WORKFLOW_ARGS)
    assert hook is not None and hook["arguments"] == own


def test_hooks_exit_without_arguments_takes_the_workflows() -> None:
    hook = exit_hook({"hooks": {"exit": {"template": "bye"}}}, WORKFLOW_ARGS)
    assert hook is not None and hook["arguments"] == WORKFLOW_ARGS


def test_no_exit_handler() -> None:
    assert exit_hook({"hooks": {"running": {"template": "x", "expression": "true"}}}, WORKFLOW_ARGS) is None


def _run(spec: dict[str, Any], tmp_path: Path) -> Result:
    with bounded(30):
        return run_workflow({"metadata": {"name": "h"}, "spec": spec}, run_dir=tmp_path / "run",
                            executor=LocalExecutor(tmp_path / "run"), state_dir=tmp_path / "state")


ECHO = {"name": "echo", "container": {"image": "alpine:3.20", "command": ["echo", "hi"]}}


def test_a_step_hook_that_does_not_evaluate_errors_its_group(tmp_path: Path) -> None:
    result = _run({"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "s", "template": "echo", "hooks": {
            "bad": {"template": "echo", "expression": "asInt('x') > 1"}}}]]}, ECHO]}, tmp_path)
    assert node(result, "h[0]").phase == "Error"
    assert result.phase == "Failed"


def test_a_workflow_hook_without_expression_errors_the_entry_node(tmp_path: Path) -> None:
    result = _run({"entrypoint": "echo", "hooks": {"bad": {"template": "echo"}}, "templates": [ECHO]}, tmp_path)
    assert node(result, "h").phase == "Error"
    assert "Expression required" in node(result, "h").message
    assert result.phase == "Error"
