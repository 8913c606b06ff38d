"""The Python API (workflows/local/api.py) and the README's Hera example: a Hera object, a dict or a YAML file is
prepared as `argo submit` would submit it (-p, --from workflowtemplate/, workflowTemplateRef), checked, and run."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.local import api

ROOT = Path(__file__).parents[3]
CONFORMANCE = Path(__file__).parent / "conformance"
ENGINE_THERE = api.engine_available()


def hera_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Running any Argo workflow locally", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]


def test_the_readme_hera_example_is_checked_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = hera_example()
    setup, _, run_part = code.partition("result = run(")
    (tmp_path / "example.py").write_text(setup)  # Hera reads a script's source from its file
    scope: dict[str, Any] = runpy.run_path(str(tmp_path / "example.py"))
    prepared = api.prepare(scope["workflow"], {"name": "local"})
    assert prepared.report.refusals == []
    assert prepared.workflow["spec"]["arguments"]["parameters"] == [{"name": "name", "value": "local"}]
    if not ENGINE_THERE:
        with pytest.raises(api.EngineUnavailable):
            exec(compile("result = run(" + run_part, "README.md", "exec", dont_inherit=True), scope)  # noqa: S102
        return
    exec(compile("result = run(" + run_part, "README.md", "exec", dont_inherit=True), scope)  # noqa: S102
    result = scope["result"]
    assert result.nodes["greet"].outputs["exitCode"] == "0"
    assert "hello local" in (next(result.run_dir.glob("pods/*/log"))).read_text()
    assert json.loads((result.run_dir / "run.json").read_text())["phase"] == "Succeeded"


def test_a_hera_object_that_cannot_run_here_is_refused_naming_every_place() -> None:
    from hera.workflows import Container, Steps, Workflow

    with Workflow(name="needs-image", entrypoint="main") as workflow:
        say = Container(name="say", image="argoproj/argosay:v2", args=["echo", "hi"])
        with Steps(name="main"):
            say(name="a")
    with pytest.raises(api.Refused) as refused:
        api.run(workflow)
    assert [r.template for r in refused.value.refusals] == ["template say"]
    assert "--image-command argoproj/argosay:v2=CMD" in str(refused.value)


def test_parameters_replace_the_declared_ones_whole_and_come_first_as_argo_submit_p() -> None:
    doc = {"kind": "Workflow", "metadata": {"generateName": "p-"}, "spec": {
        "entrypoint": "main", "arguments": {"parameters": [
            {"name": "a", "value": "1"}, {"name": "b", "value": "2", "enum": ["2", "3"]}]},
        "templates": [{"name": "main", "container": {"image": "x", "command": ["true"]}}]}}
    prepared = api.prepare(doc, {"b": "9", "c": "new"})
    assert prepared.name == "p"
    assert prepared.workflow["spec"]["arguments"]["parameters"] == [
        {"name": "b", "value": "9"}, {"name": "c", "value": "new"}, {"name": "a", "value": "1"}]


def test_a_workflow_template_is_submitted_as_a_workflow_referring_to_it(tmp_path: Path) -> None:
    source = CONFORMANCE / "templates" / "submittable-workflowtemplate.yaml"
    template = yaml.safe_load(source.read_text())
    prepared = api.prepare(source, templates=[])
    assert prepared.name == template["metadata"]["name"]
    assert prepared.workflow["kind"] == "Workflow"
    assert prepared.workflow["spec"]["entrypoint"] == template["spec"]["entrypoint"]
    assert prepared.report.refusals == []


def test_a_file_with_several_workflows_needs_a_name(tmp_path: Path) -> None:
    docs = [{"kind": "Workflow", "metadata": {"name": n}, "spec": {}} for n in ("a", "b")]
    (tmp_path / "two.yaml").write_text(yaml.safe_dump_all(docs))
    with pytest.raises(api.LoadError, match="found: Workflow/a, Workflow/b"):
        api.prepare(tmp_path / "two.yaml", templates=[])
    assert api.prepare(tmp_path / "two.yaml", name="b", templates=[]).name == "b"


def test_a_cron_workflow_runs_its_workflow_spec_as_argo_submit_from_cronwf() -> None:
    cron = {"kind": "CronWorkflow", "metadata": {"name": "nightly"}, "spec": {"schedules": ["0 1 * * *"],
            "workflowSpec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "alpine", "command": ["true"]}}]}}}
    prepared = api.prepare(cron, templates=[])
    assert (prepared.name, prepared.workflow["kind"], prepared.workflow["spec"]["entrypoint"]) == (
        "nightly", "Workflow", "main")
    assert prepared.report.refusals == []


@pytest.mark.skipif(not ENGINE_THERE, reason="the new engine is not there")
def test_a_config_map_given_as_a_dict_feeds_a_parameter(tmp_path: Path) -> None:
    label = {"workflows.argoproj.io/configmap-type": "Parameter"}  # the controller reads only labelled ones
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": label},
                "data": {"greeting": "hi"}}
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "cm"}, "spec": {
        "entrypoint": "say", "templates": [{
            "name": "say", "inputs": {"parameters": [{"name": "g", "valueFrom": {
                "configMapKeyRef": {"name": "settings", "key": "greeting"}}}]},
            "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.g}}"]}}]}}
    result = api.run(workflow, configmaps=[settings], templates=[], run_dir=tmp_path / "run")
    assert (result.phase, result.nodes["cm"].inputs["parameters"]) == ("Succeeded", {"g": "hi"})


@pytest.mark.skipif(not ENGINE_THERE, reason="the new engine is not there")
def test_a_folder_of_config_maps_is_read_whole(tmp_path: Path) -> None:
    label = {"workflows.argoproj.io/configmap-type": "Parameter"}
    folder = tmp_path / "configmaps"
    folder.mkdir()
    for name, value in (("settings", "hi"), ("other", "unused")):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": label},
            "data": {"greeting": value}}))
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "cm"}, "spec": {
        "entrypoint": "say", "templates": [{
            "name": "say", "inputs": {"parameters": [{"name": "g", "valueFrom": {
                "configMapKeyRef": {"name": "settings", "key": "greeting"}}}]},
            "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.g}}"]}}]}}
    result = api.run(workflow, configmaps=[folder], templates=[], run_dir=tmp_path / "run")
    assert (result.phase, result.nodes["cm"].inputs["parameters"]) == ("Succeeded", {"g": "hi"})


@pytest.mark.skipif(not ENGINE_THERE, reason="the new engine is not there")
def test_an_image_command_reaches_the_inline_templates_of_steps_and_tasks(tmp_path: Path) -> None:
    # Argo's dag-inline-workflow / steps-inline-workflow shape: the containers have an image and no command.
    says = {"container": {"image": "example/say:1", "args": ["inline"]}}
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "inl"}, "spec": {
        "entrypoint": "main", "templates": [
            {"name": "main", "dag": {"tasks": [{"name": "a", "inline": says},
                                               {"name": "b", "depends": "a", "template": "group"}]}},
            {"name": "group", "steps": [[{"name": "c", "inline": says}]]}]}}
    result = api.run(workflow, templates=[], run_dir=tmp_path / "run", image_commands={"example/say:1": ["echo"]})
    assert result.phase == "Succeeded"
    assert {n: result.nodes[n].phase for n in ("a", "b", "c")} == dict.fromkeys("abc", "Succeeded")
