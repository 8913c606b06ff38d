"""`depends` as Argo expands and evaluates it; expectations come from Argo's own tests, cited."""

from __future__ import annotations

import pytest

from workflows.local.lang.depends import (
    ContinueOn,
    dependencies,
    evaluate,
    expand,
    task_results,
    validate,
)
from workflows.local.lang.errors import DependsError

TASKS = {"task-1": ContinueOn(), "task-2": ContinueOn(), "task-3": ContinueOn()}


# argo-workflows v4.1.2 workflow/common/ancestry_test.go TestGetTaskDependenciesFromDepends
@pytest.mark.parametrize(
    ("depends", "logic", "deps"),
    [
        ("(task-1 || task-2.Succeeded) && !task-3.Succeeded",
         "((task-1.Succeeded || task-1.Skipped || task-1.Daemoned) || task-2.Succeeded) && !task-3.Succeeded",
         {"task-1": "task", "task-2": "task", "task-3": "task"}),
        ("(task-1 || task-2.AnySucceeded) && !task-3.Succeeded",
         "((task-1.Succeeded || task-1.Skipped || task-1.Daemoned) || task-2.AnySucceeded) && !task-3.Succeeded",
         {"task-1": "task", "task-2": "items", "task-3": "task"}),
        ("(task-1||(task-2.Succeeded || task-2.Failed))&&!task-3.Failed",
         "((task-1.Succeeded || task-1.Skipped || task-1.Daemoned)||(task-2.Succeeded || task-2.Failed))"
         "&&!task-3.Failed",
         {"task-1": "task", "task-2": "task", "task-3": "task"}),
        ("(task-1 || task-1.Succeeded) && !task-1.Failed",
         "((task-1.Succeeded || task-1.Skipped || task-1.Daemoned) || task-1.Succeeded) && !task-1.Failed",
         {"task-1": "task"}),
        ("task-1.Succeeded && task-1.AnySucceeded", "task-1.Succeeded && task-1.AnySucceeded", {"task-1": "items"}),
    ],
)
def test_depends_expands_as_argo_expands_it(depends: str, logic: str, deps: dict[str, str]) -> None:
    assert expand(depends, TASKS) == logic
    assert dependencies(logic) == deps


@pytest.mark.parametrize(
    ("continue_on", "logic"),
    # ancestry_test.go TestGetTaskDependenciesFromDepends, with task-1's continueOn set
    [(ContinueOn(failed=True), "(task-1.Succeeded || task-1.Skipped || task-1.Daemoned || task-1.Failed)"),
     (ContinueOn(error=True), "(task-1.Succeeded || task-1.Skipped || task-1.Daemoned || task-1.Errored)"),
     (ContinueOn(failed=True, error=True),
      "(task-1.Succeeded || task-1.Skipped || task-1.Daemoned || task-1.Errored || task-1.Failed)")],
)
def test_continue_on_widens_a_bare_dependency(continue_on: ContinueOn, logic: str) -> None:
    assert expand("task-1", {**TASKS, "task-1": continue_on}) == logic


def test_dependencies_list_is_joined_with_and() -> None:
    # ancestry.go getTaskDependsLogic: "dependencies: [A, B]" is each expanded, joined with " && "
    assert expand("", TASKS, ["task-1", "task-2"]) == (
        "(task-1.Succeeded || task-1.Skipped || task-1.Daemoned) && (task-2.Succeeded || task-2.Skipped || "
        "task-2.Daemoned)")


def test_invalid_results_and_unknown_tasks_are_refused() -> None:
    # ancestry_test.go TestValidateTaskResults
    validate("(task-1 || task-2.Succeeded) && !task-3")
    validate("((task-1.Succeeded || task-1.Omitted) || task-2.Succeeded) && !task-3.Skipped && task-2.Failed")
    with pytest.raises(DependsError, match="task result 'DoeNotExist' for task 'task-1' is invalid"):
        validate("(task-1.DoeNotExist || task-2.Succeeded)")
    with pytest.raises(DependsError, match="target task-9 does not exist"):
        expand("task-9", TASKS)


def run(task: str, depends: str, phases: dict[str, str], tasks: dict[str, ContinueOn] | None = None) -> bool:
    logic = expand(depends, tasks or {name: ContinueOn() for name in phases} | {task: ContinueOn()})
    return evaluate(logic, {name: task_results(phase) for name, phase in phases.items()})


def test_depends_decides_as_the_dag_controller_does() -> None:
    # argo-workflows v4.1.2 workflow/controller/dag_test.go TestEvaluateDependsLogic: A succeeded, B succeeded,
    # C failed
    phases = {"A": "Succeeded", "B": "Succeeded", "C": "Failed"}
    assert run("should-execute-1", "A && (C.Succeeded || C.Failed)", phases) is True
    assert run("should-execute-2", "B || C", phases) is True
    assert run("should-not-execute", "B && C", phases) is False
    later = {"should-execute-2": "Succeeded", "should-not-execute": "Skipped"}
    assert run("should-execute-3", "should-execute-2 || should-not-execute", later) is True


@pytest.mark.parametrize(
    ("result", "phase"),
    # dag_test.go TestAllEvaluateDependsLogic (Succeeded, Failed, Skipped); Errored and Omitted from dag.go
    # evaluateDependsLogic: Errored is `depNode.Phase == wfv1.NodeError` (issue 13: Errored never matched locally)
    [("Succeeded", "Succeeded"), ("Failed", "Failed"), ("Errored", "Error"), ("Skipped", "Skipped"),
     ("Omitted", "Omitted")],
)
def test_each_result_matches_its_phase(result: str, phase: str) -> None:
    assert run("Run", f"same.{result}", {"same": phase}) is True
    assert run("NotRun", f"!same.{result}", {"same": phase}) is False


def test_daemoned_and_item_results() -> None:
    # dag_test.go TestEvaluateDependsLogicWhenDaemonFailed: a running daemon satisfies `A`
    assert evaluate(expand("A", {"A": ContinueOn()}), {"A": task_results("Running", daemoned=True)}) is True
    # dag_test.go TestEvaluateAnyAllDependsLogic: AnySucceeded once one child succeeded, AllFailed when all failed
    tasks = {"A": ContinueOn(), "B": ContinueOn()}
    assert evaluate(expand("A.AnySucceeded", tasks), {"A": task_results("Failed", children=["Failed"])}) is False
    assert evaluate(expand("A.AnySucceeded", tasks),
                    {"A": task_results("Succeeded", children=["Failed", "Succeeded"])}) is True
    assert evaluate(expand("B.AllFailed", tasks), {"B": task_results("Failed", children=["Failed", "Failed"])})


def test_words_other_than_task_names_are_task_names_to_argo() -> None:
    # ancestry.go's regexp takes any word, so `not`/`and` are task names there: the workflow is refused
    with pytest.raises(DependsError, match="target not does not exist"):
        expand("not A", {"A": ContinueOn()})
