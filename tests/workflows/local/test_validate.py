"""Argo's submit-time validation (workflows/local/validate.py, validation.py): what `argo submit` rejects is found
before a local run, every place at once, with Argo's messages (workflow/validate/validate.go)."""

from __future__ import annotations

from typing import Any

from workflows.local.templates import Resolver, TemplateStore
from workflows.local.validate import validate
from workflows.local.validation import Problem


def wf(*templates: dict[str, Any], entrypoint: str = "main") -> dict[str, Any]:
    return {"metadata": {"name": "w"}, "spec": {"entrypoint": entrypoint, "templates": list(templates)}}


def echo(name: str, *args: str, inputs: tuple[str, ...] = ()) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "container": {"image": "x", "command": ["echo", *args]}}
    if inputs:
        template["inputs"] = {"parameters": [{"name": n} for n in inputs]}
    return template


def problems(workflow: dict[str, Any]) -> list[Problem]:
    return validate(workflow, Resolver(workflow, TemplateStore()))


def test_a_workflow_argo_accepts_has_no_problem() -> None:
    dag = {"name": "main", "dag": {"tasks": [
        {"name": "a", "template": "t"},
        {"name": "b", "template": "u", "depends": "a",
         "arguments": {"parameters": [{"name": "x", "value": "{{tasks.a.outputs.result}}"}]}}]}}
    assert problems(wf(dag, echo("t"), echo("u", "{{inputs.parameters.x}}", inputs=("x",)))) == []


def test_a_variable_that_cannot_exist_in_its_scope_is_rejected() -> None:
    assert problems(wf(echo("main", "{{inputs.parameters.nope}}"))) == [
        Problem("main", "", "failed to resolve {{inputs.parameters.nope}}")]


def test_a_step_cannot_read_a_later_step() -> None:
    later = "{{steps.b.outputs.result}}"
    steps = {"name": "main", "steps": [
        [{"name": "a", "template": "t", "arguments": {"parameters": [{"name": "x", "value": later}]}}],
        [{"name": "b", "template": "t"}]]}
    assert problems(wf(steps, echo("t"))) == [Problem("main", "steps[0][0]", f"failed to resolve {later}")]


def test_cycles_invalid_names_and_missing_templates_are_each_reported() -> None:
    cycle = {"name": "main", "dag": {"tasks": [{"name": "a", "template": "t", "depends": "b"},
                                               {"name": "b", "template": "t", "depends": "a"}]}}
    assert problems(wf(cycle, echo("t"))) == [Problem("main", "dag.tasks", "dependency cycle detected: a->b->a")]
    bad = {"name": "main", "steps": [[{"name": "Bad_Name", "template": "t"}]]}
    assert problems(wf(bad, echo("t"))) == [Problem("main", "steps[0][0]", "steps[0].name 'Bad_Name' is invalid")]
    assert problems(wf(echo("t"))) == [Problem("", "spec.entrypoint.template", "template name 'main' undefined")]
