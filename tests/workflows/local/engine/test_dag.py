"""DAGs as dag.go runs them: failFast never stops a running branch, a looped task is a TaskGroup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.workflows.local.engine.cases import bounded, node
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.operator import Result, run_workflow


def _sh(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "inputs": {"parameters": [{"name": "x", "default": ""}]},
            "container": {"image": "alpine:3.20", "command": ["sh", "-c", script]}}


def _run(tasks: list[dict[str, Any]], tmp_path: Path, **dag: Any) -> Result:
    workflow = {"metadata": {"name": "d"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": tasks, **dag}}, _sh("fail", "exit 3"), _sh("slow", "sleep 1"),
        dict(_sh("retried", "true"), retryStrategy={"limit": 1}),
        _sh("echo", "echo {{inputs.parameters.x}}")]}}
    with bounded(30):
        return run_workflow(workflow, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                            state_dir=tmp_path / "state")


def test_a_failure_lets_the_running_branch_finish_before_the_dag_fails(tmp_path: Path) -> None:
    result = _run([{"name": "a", "template": "fail"}, {"name": "b", "template": "slow"},
                   {"name": "c", "template": "echo", "depends": "b"}], tmp_path)
    assert result.phase == "Failed"
    assert node(result, "d.b").phase == node(result, "d.c").phase == "Succeeded"
    assert (node(result, "d").finished_at or 0) >= (node(result, "d.c").finished_at or 0)


def test_a_looped_task_is_a_task_group_its_dependents_test_as_a_whole(tmp_path: Path) -> None:
    result = _run([{"name": "l", "template": "echo", "withItems": ["a", "b"],
                    "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}},
                   {"name": "f", "template": "fail", "withItems": [1, 2]},
                   {"name": "after", "template": "echo", "depends": "l.AnySucceeded && f.AllFailed"}], tmp_path)
    assert (node(result, "d.l").type, node(result, "d.l").phase) == ("TaskGroup", "Succeeded")
    assert (node(result, "d.f").type, node(result, "d.f").phase) == ("TaskGroup", "Failed")
    assert node(result, "d.f(1:2)").phase == "Failed"
    assert node(result, "d.after").phase == "Succeeded"
    assert result.phase == "Succeeded"  # the leaf ran and succeeded: its own phase decides its branch


def test_target_runs_only_the_targets_and_their_ancestors(tmp_path: Path) -> None:
    result = _run([{"name": "a", "template": "echo"}, {"name": "b", "template": "echo", "depends": "a"},
                   {"name": "c", "template": "fail"}], tmp_path, target="b")
    assert result.phase == "Succeeded"
    assert result.nodes.by_name("d.c") is None


def test_a_retried_tasks_exit_handler_keeps_the_dag_running(tmp_path: Path) -> None:
    result = _run([{"name": "r", "template": "retried", "onExit": "slow"}], tmp_path)
    assert result.phase == "Succeeded"
    assert node(result, "d.r").type == "Retry"
    assert node(result, "d.r.onExit").phase == "Succeeded"
    assert (node(result, "d").finished_at or 0) >= (node(result, "d.r.onExit").finished_at or 0)
