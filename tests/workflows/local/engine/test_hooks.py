"""Which exit handler a workflow, step or task has, and with which arguments (GetExitHook)."""

from __future__ import annotations

from workflows.local.engine.hooks import exit_hook

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
