"""A DAG task's `depends` (or `dependencies`) as Argo v4.1.2 expands and evaluates it.

workflow/common/ancestry.go GetTaskDependencies finds task names with a regular expression and expands each bare
name `A` to `(A.Succeeded || A.Skipped || A.Daemoned)` (plus `A.Errored` and `A.Failed` when A continues on
them); workflow/controller/dag.go evaluateDependsLogic replaces every `-` with `_` and evaluates the result with
expr-lang over one TaskResults struct per dependency.

    logic = expand("A && (B.Failed || !C)", {"A": ContinueOn(), "B": ContinueOn(), "C": ContinueOn()})
    evaluate(logic, {"A": task_results("Succeeded"), "B": task_results("Failed"), "C": task_results("Skipped")})
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from workflows.local.lang.errors import DependsError, LangError
from workflows.local.lang.exprlang import compile_expr
from workflows.local.lang.gotypes import GoStruct

RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
ITEM_RESULTS = ("AnySucceeded", "AllFailed")
_TASK_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
_TASK_RESULT = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)")
# the node phases a TaskResults field stands for (wfv1.NodeSucceeded, NodeFailed, NodeError, ...)
_PHASES = {"Succeeded": "Succeeded", "Failed": "Failed", "Errored": "Error", "Skipped": "Skipped",
           "Omitted": "Omitted"}


@dataclass(frozen=True)
class ContinueOn:
    """A task's continueOn: whether its dependents run after it failed or errored."""

    failed: bool = False
    error: bool = False


def validate(depends: str) -> None:
    """ValidateTaskResults: every `task.Result` names one of Argo's results (`A.Succeded` is refused)."""
    for match in _TASK_RESULT.finditer(depends):
        task, result = match.group(1).split(".", 1)
        if result not in RESULTS:
            raise DependsError(f"task result '{result}' for task '{task}' is invalid")


def expand_dependency(task: str, continue_on: ContinueOn) -> str:
    """expandDependency: what a bare task name means."""
    results = ["Succeeded", "Skipped", "Daemoned"]
    if continue_on.error:
        results.append("Errored")
    if continue_on.failed:
        results.append("Failed")
    return "(" + " || ".join(f"{task}.{r}" for r in results) + ")"


def expand(depends: str, tasks: Mapping[str, ContinueOn], dependencies: Sequence[str] = ()) -> str:
    """The task's resolved depends logic (GetTaskDependencies): `depends`, or the `dependencies` list joined with
    `&&`, with each bare task name expanded. `tasks` are the DAG's tasks and their continueOn."""
    logic = depends or " && ".join(expand_dependency(d, _task(tasks, d)) for d in dependencies)
    validate(logic)
    pieces, last = [], 0
    for match in _TASK_NAME.finditer(logic):
        if match.group(1) is not None:
            _task(tasks, match.group(1).split(".", 1)[0])
            continue
        pieces.append(logic[last:match.start()])
        pieces.append(expand_dependency(match.group(2), _task(tasks, match.group(2))))
        last = match.end()
    return "".join(pieces) + logic[last:]


def _task(tasks: Mapping[str, ContinueOn], name: str) -> ContinueOn:
    if name not in tasks:
        raise DependsError(f"target {name} does not exist")  # dagContext.GetTask panics with this
    return tasks[name]


def dependencies(logic: str) -> dict[str, str]:
    """The tasks a resolved logic waits for: "items" where it uses .AnySucceeded or .AllFailed, else "task"."""
    found: dict[str, str] = {}
    for match in _TASK_NAME.finditer(logic):
        if match.group(1) is not None:
            task, result = match.group(1).split(".", 1)
            if result in ITEM_RESULTS:
                found[task] = "items"
            else:
                found.setdefault(task, "task")
        else:
            found[match.group(2)] = "task"
    return found


def task_results(phase: str, daemoned: bool = False, children: Iterable[str] | None = None) -> GoStruct:
    """TaskResults for a finished dependency: its node phase (Succeeded, Failed, Error, Skipped, Omitted), whether
    it is daemoned, and for a task group (withItems, withParam, withSequence) its children's phases."""
    kids = list(children) if children is not None else []
    values = {name: phase == node_phase for name, node_phase in _PHASES.items()}
    values["Daemoned"] = daemoned and phase != "Pending"
    values["AnySucceeded"] = any(p == "Succeeded" for p in kids)
    values["AllFailed"] = bool(kids) and all(p == "Failed" for p in kids)
    order = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
    return GoStruct("controller.TaskResults", {name: values[name] for name in order})


def evaluate(logic: str, results: Mapping[str, GoStruct]) -> bool:
    """evaluateDependsLogic: `-` becomes `_` in the logic and in the task names (the first of two names that
    become equal wins), then argoexpr.EvalBool over the results."""
    env: dict[str, GoStruct] = {}
    for name, result in results.items():
        env.setdefault(name.replace("-", "_"), result)
    text = logic.replace("-", "_")
    try:
        return compile_expr(text).run_bool(env)
    except LangError as err:
        raise DependsError(f"unable to evaluate expression '{text}': {err}") from err
