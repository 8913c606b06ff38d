"""A local run's Workflow carries the labels and annotations Argo would give it (workflowMetadata applied with
substitutions, labels patched by the workflow itself, the controller's own), run.json records them with the
entrypoint's outputs, `mlops run` prints the title and the description's first line and writes run.html; what
Argo would reject or cannot be reproduced is an Error as Argo's, or refused before the run."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from workflows.local import api, run
from workflows.local.engine.sandbox import bwrap
from workflows.local.refusals import check
from workflows.local.templates import Resolver, TemplateStore

pytestmark = pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")

ECHO = {"image": "alpine:3.20", "command": ["sh", "-c", "echo hi"]}


def wf(name: str, templates: list[dict[str, Any]], meta: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name, **(meta or {})},
            "spec": {"entrypoint": templates[0]["name"], "templates": templates, **spec}}


def run_json(result: api.Result) -> dict[str, Any]:
    return dict(json.loads((result.run_dir / "run.json").read_text()))


APPROVAL = wf("approval", [
    {"name": "main", "steps": [[{"name": "approve", "template": "approve"}], [{"name": "act", "template": "act"}]],
     "outputs": {"parameters": [
         {"name": "answer", "valueFrom": {"parameter": "{{steps.approve.outputs.parameters.answer}}"}}]}},
    {"name": "approve", "suspend": {}, "outputs": {"parameters": [
        {"name": "answer", "valueFrom": {"supplied": {}, "default": "no"}}]}},
    {"name": "act", "container": ECHO},
    {"name": "label-result", "resource": {"action": "patch", "mergeStrategy": "merge", "manifest": (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: {{workflow.name}}\n"
        "  namespace: {{workflow.namespace}}\n  labels:\n"
        "    example.com/result: \"{{workflow.status}}\"\n")}},
], {"annotations": {"workflows.argoproj.io/title": "Approve **fraud** v3",
                    "workflows.argoproj.io/description": "\nWaits for a *person*.\nThen acts."}},
    onExit="label-result", arguments={"parameters": [{"name": "model", "value": "fraud"}]},
    workflowMetadata={"labels": {"example.com/model": "{{workflow.parameters.model}}"}})


def test_mlops_run_prints_the_title_records_labels_across_a_resume_and_writes_the_run_page(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "approval.yaml").write_text(yaml.safe_dump(APPROVAL))
    assert run.main(["--from", "approval.yaml"]) == 1  # stopped at the suspend
    out = capsys.readouterr().out
    run_dir = next((tmp_path / ".mlops" / "runs").iterdir())
    # argo get's header format; argo get itself prints neither line (the UI shows them in its list)
    assert re.search(r"^Name: +approval\nTitle: +Approve \*\*fraud\*\* v3\nDescription: +Waits for a \*person\*\.\n"
                     r"Status: +Running$", out, flags=re.MULTILINE), out
    saved = json.loads((run_dir / "run.json").read_text())
    assert saved["labels"] == {"example.com/model": "fraud", "workflows.argoproj.io/completed": "false",
                               "workflows.argoproj.io/phase": "Running"}
    assert f"Run page: {run_dir.relative_to(tmp_path) / 'run.html'}" in out
    assert "Approve" in (run_dir / "run.html").read_text()

    (run_dir / "run.html").unlink()  # a page that cannot be written: a folder in its place
    (run_dir / "run.html" / "x").mkdir(parents=True)
    assert run.main(["--resume", str(run_dir), "--supply", "approve.answer=yes"]) == 0
    captured = capsys.readouterr()
    assert "mlops run: warning: run.html was not written" in captured.err
    assert "Run page:" not in captured.out and re.search(r"^Status: +Succeeded$", captured.out, flags=re.MULTILINE)
    saved = json.loads((run_dir / "run.json").read_text())
    # the labels set before the suspend survive it; the exit handler's patch is the Workflow's at the end
    assert saved["labels"] == {"example.com/model": "fraud", "example.com/result": "Succeeded",
                               "workflows.argoproj.io/completed": "true", "workflows.argoproj.io/phase": "Succeeded"}
    assert saved["annotations"]["workflows.argoproj.io/title"] == "Approve **fraud** v3"
    assert saved["outputs"] == {"parameters": {"answer": "yes"}, "artifacts": {}}  # the entrypoint's


def test_an_invalid_label_value_ends_the_workflow_in_error_before_any_node(tmp_path):
    bad = wf("bad-label", [{"name": "main", "container": ECHO}], {"labels": {"team": "ml"}},
             arguments={"parameters": [{"name": "who", "value": "two words"}]},
             workflowMetadata={"labels": {"who": "{{workflow.parameters.who}}"}})
    result = api.run(bad, templates=[], run_dir=tmp_path / "r")
    assert (result.phase, result.nodes) == ("Error", {})
    assert result.message == (
        'invalid label value "two words" for label "who": a valid label must be an empty string or consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    saved = run_json(result)
    assert saved["labels"] == {"team": "ml", "workflows.argoproj.io/completed": "true",
                               "workflows.argoproj.io/phase": "Error"}
    assert saved["annotations"] == {}  # it never started: no pod-name-format


def test_a_labels_from_expression_must_give_a_string(tmp_path):
    bad = wf("not-a-string", [{"name": "main", "container": ECHO}],
             arguments={"parameters": [{"name": "n", "value": "3"}]},
             workflowMetadata={"labelsFrom": {"n": {"expression": "asInt(workflow.parameters.n) * 2"}}})
    result = api.run(bad, templates=[], run_dir=tmp_path / "r")
    assert (result.phase, result.message) == ("Error", 'failed to evaluate label "n" expression '
                                              '"asInt(workflow.parameters.n) * 2" evaluted to int but must be a string')


def test_a_workflow_template_s_metadata_is_merged_under_the_workflow_s(tmp_path):
    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "train"},
                "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": ECHO}],
                         "workflowMetadata": {"labels": {"a": "from-template", "b": "from-template"},
                                              "annotations": {"workflows.argoproj.io/title": "Training"}}}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(template))
    submitted = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "train-1"},
                 "spec": {"workflowTemplateRef": {"name": "train"}, "workflowMetadata": {"labels": {"b": "mine"}}}}
    result = api.run(submitted, templates=[tmp_path / "train.yaml"], run_dir=tmp_path / "r")
    assert result.phase == "Succeeded"
    assert {k: v for k, v in result.labels.items() if "/" not in k or "template" in k} == {
        "a": "from-template", "b": "mine", "workflows.argoproj.io/workflow-template": "train"}
    assert result.annotations["workflows.argoproj.io/title"] == "Training"


def patch_step(name: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "resource": {"action": "patch", **resource}}


def test_a_patch_kubernetes_would_reject_fails_its_node_and_changes_nothing(tmp_path):
    json_patch = patch_step("replace-missing", {
        "mergeStrategy": "json", "flags": ["workflow", "{{workflow.name}}"],
        "manifest": "- op: add\n  path: /metadata/labels/first\n  value: one\n"
                    "- op: replace\n  path: /metadata/labels/missing\n  value: x\n"})
    merge_patch = patch_step("bad-value", {
        "mergeStrategy": "merge", "flags": ["workflow", "{{workflow.name}}"],
        "manifest": "metadata:\n  labels:\n    note: \"{{workflow.parameters.note}}\"\n"})
    main = {"name": "main", "dag": {"tasks": [{"name": "replace-missing", "template": "replace-missing"},
                                              {"name": "bad-value", "template": "bad-value"}]}}
    result = api.run(wf("rejected", [main, json_patch, merge_patch], {"labels": {"kept": "yes"}},
                        arguments={"parameters": [{"name": "note", "value": "not valid!"}]}),
                     templates=[], run_dir=tmp_path / "r")
    assert result.phase == "Failed"
    assert (result.nodes["replace-missing"].phase, result.nodes["bad-value"].phase) == ("Failed", "Failed")
    assert "doc is missing key: /metadata/labels/missing" in result.nodes["replace-missing"].message
    assert "Invalid value: 'not valid!'" in result.nodes["bad-value"].message
    assert {k: v for k, v in result.labels.items() if not k.startswith("workflows.argoproj.io/")} == {"kept": "yes"}


def refusals_of(workflow: dict[str, Any], store: TemplateStore | None = None) -> list[str]:
    return [str(r) for r in check(workflow, Resolver(workflow, store or TemplateStore())).refusals]


def test_what_argo_would_give_differently_from_pass_to_pass_or_reject_is_refused_before_the_run(tmp_path):
    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "t"},
                "spec": {"entrypoint": "main", "templates": [
                    {"name": "main", "container": {**ECHO, "args": ["{{workflow.labels.trigger}}"]}}],
                    "workflowMetadata": {"labels": {"trigger": "{{workflow.parameters.trigger}}", "Bad Key": "x"}},
                    "arguments": {"parameters": [{"name": "trigger", "value": "manual"}]}}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(template))
    prepared = api.prepare(tmp_path / "t.yaml", templates=[tmp_path / "t.yaml"])
    assert [str(r) for r in prepared.report.refusals] == [
        "workflow spec.workflowMetadata.labels.Bad Key: 'Bad Key' is not a valid label key ([prefix/]name, the name "
        "at most 63 alphanumeric characters, '-', '_' or '.'): the API server would reject the Workflow",
        "workflow spec.workflowMetadata.labels.trigger: {{workflow.labels.trigger}} is used and its value holds a "
        "{{...}} tag: on Argo a node sees it substituted or not depending on the controller's pass"]
    # the same Workflow submitted on its own: its spec is substituted once and kept, so it runs
    plain = wf("plain", template["spec"]["templates"], workflowMetadata={"labels": {"trigger": "{{workflow.name}}"}})
    assert refusals_of(plain) == []
    reading = patch_step("read", {"mergeStrategy": "merge", "flags": ["workflow", "plain"],
                                  "manifest": "metadata:\n  labels: {a: b}\n"})
    reading["outputs"] = {"parameters": [{"name": "all", "valueFrom": {"jsonPath": "{.metadata.labels}"}}]}
    assert refusals_of(wf("plain", [reading])) == [
        "template read outputs.parameters.all: a resource template's output parameter other than valueFrom.jsonPath "
        "{.metadata.name|namespace|labels.KEY|annotations.KEY} (jqFilter and other JSONPath expressions are not "
        "evaluated here)"]


def test_a_cron_workflow_submitted_by_hand_carries_its_labels(tmp_path, monkeypatch, capsys):
    cron = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "workflowMetadata": {"labels": {"example.com/trigger": "schedule"}},
                     "workflowSpec": {"entrypoint": "main", "templates": [{"name": "main", "inputs": {"parameters": [
                         {"name": "at", "value": "{{workflow.scheduledTime}}"}]}, "container": ECHO}]}}}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cron.yaml").write_text(yaml.safe_dump(cron))
    assert run.main(["--from", "cron.yaml"]) == 0
    saved = json.loads(next((tmp_path / ".mlops" / "runs").glob("*/run.json")).read_text())
    assert saved["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"
    assert saved["labels"]["example.com/trigger"] == "schedule"
    scheduled = saved["annotations"]["workflows.argoproj.io/scheduled-time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", scheduled), scheduled
    [node] = saved["nodes"].values()
    assert node["inputs"]["parameters"] == {"at": scheduled}  # workflow.scheduledTime: the annotation's value


def test_the_whole_label_and_annotation_maps_are_refused_their_value_depends_on_the_pass():
    args = ["{{workflow.labels.json}}", "{{workflow.labels.team}}"]
    templates = [{"name": "main", "container": {**ECHO, "args": args}}]
    found = refusals_of(wf("maps", templates, {"labels": {"team": "ml"}},
                           arguments={"parameters": [{"name": "a", "value": "{{workflow.annotations}}"}]}))
    assert [f.split(":")[0] for f in found] == ["workflow spec", "template main"]
    assert "workflow.annotations: on Argo it holds the Workflow's annotations as they stand" in found[0]
    assert "workflow.labels.json: on Argo it holds the Workflow's labels" in found[1]


def test_a_submitted_label_the_api_server_would_reject_is_refused():
    found = refusals_of(wf("labelled", [{"name": "main", "container": ECHO}],
                           {"labels": {"ok": "fine", "team": "machine learning", "-bad": "x"}}))
    assert found == [
        "workflow metadata.labels.team: 'machine learning': a valid label must be an empty string or consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?') (the API server would reject the Workflow)",
        "workflow metadata.labels.-bad: 'x': not a valid label key (the API server would reject the Workflow)"]
