"""The template store (workflows/local/templates.py): templateRef, clusterScope and workflowTemplateRef resolved
from local files as a cluster resolves them, with the conformance suite's own template store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workflows.local.templates import (
    Resolver,
    TemplateNotFound,
    TemplateStore,
    TemplateStoreError,
    strategic_merge,
    with_workflow_template,
)

STORE = Path(__file__).parent / "conformance" / "templates"


@pytest.fixture(scope="module")
def store() -> TemplateStore:
    return TemplateStore.load([STORE])


def test_a_folder_is_read_whole_and_keyed_by_kind_and_name(store: TemplateStore) -> None:
    assert store.names() == ["ClusterWorkflowTemplate/cluster-tools", "WorkflowTemplate/greetings",
                             "WorkflowTemplate/submittable"]
    assert store.get("cluster-tools", cluster_scope=True)["kind"] == "ClusterWorkflowTemplate"
    with pytest.raises(TemplateNotFound, match="^workflow template cluster-tools not found$"):
        store.get("cluster-tools")  # a WorkflowTemplate of that name does not exist: the kind is part of the key


def test_a_template_ref_switches_where_plain_names_resolve(store: TemplateStore) -> None:
    workflow = {"metadata": {"name": "w"}, "spec": {"templates": [{"name": "greet", "container": {"command": ["x"]}}]}}
    resolver = Resolver(workflow, store)
    base, template = resolver.resolve({"templateRef": {"name": "greetings", "template": "greet-twice"}})
    assert (base.scope_name, template["name"]) == ("namespaced/greetings", "greet-twice")
    # Inside the WorkflowTemplate, `greet` is its own template, not the workflow's template of the same name.
    _, inner = resolver.resolve(template["steps"][0][0], base)
    assert inner["container"]["args"][0].startswith('printf "%s %s"')
    _, own = resolver.resolve({"template": "greet"})
    assert own["container"] == {"command": ["x"]}


def test_unknown_references_fail_with_argo_s_messages(store: TemplateStore) -> None:
    resolver = Resolver({"metadata": {"name": "w"}, "spec": {"templates": []}}, store)
    with pytest.raises(TemplateNotFound, match="^workflow template no-such not found$"):
        resolver.resolve({"templateRef": {"name": "no-such", "template": "x"}})
    with pytest.raises(TemplateNotFound, match="^template nope not found in workflow template greetings$"):
        resolver.resolve({"templateRef": {"name": "greetings", "template": "nope"}})
    with pytest.raises(TemplateNotFound, match="^template main not found$"):
        resolver.resolve({"template": "main"})


def test_workflow_template_ref_merges_the_workflow_over_the_template(store: TemplateStore) -> None:
    workflow = {"metadata": {"name": "wtr"}, "spec": {
        "workflowTemplateRef": {"name": "submittable"},
        "arguments": {"parameters": [{"name": "message", "value": "from the workflow"}]}}}
    merged = with_workflow_template(workflow, store)["spec"]
    assert merged["entrypoint"] == "print-message" and merged["onExit"] == "bye"
    assert merged["arguments"]["parameters"] == [{"name": "message", "value": "from the workflow"},
                                                 {"name": "suffix", "value": "template-suffix"}]
    assert [t["name"] for t in merged["templates"]] == ["print-message", "bye"]


def test_template_defaults_fill_what_a_template_leaves_unset() -> None:
    workflow = {"metadata": {"name": "w"}, "spec": {
        "templateDefaults": {"timeout": "30s", "container": {"env": [{"name": "A", "value": "1"}]},
                             "script": {"command": ["sh"]}},
        "templates": [{"name": "c", "container": {"command": ["echo"], "env": [{"name": "B", "value": "2"}]}},
                      {"name": "s", "timeout": "5s", "script": {"source": "echo"}}]}}
    resolver = Resolver(workflow)
    _, container = resolver.resolve({"template": "c"})
    assert container["timeout"] == "30s" and "script" not in container
    assert container["container"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    _, script = resolver.resolve({"template": "s"})
    assert script["timeout"] == "5s" and script["script"] == {"command": ["sh"], "source": "echo"}


def test_lists_without_a_merge_key_are_replaced_whole() -> None:
    merged = strategic_merge({"container": {"args": ["a", "b"], "command": ["x"]}}, {"container": {"args": ["c"]}})
    assert merged == {"container": {"args": ["c"], "command": ["x"]}}


def test_two_different_templates_of_one_name_are_an_error(tmp_path: Path) -> None:
    for n, image in enumerate(["a", "b"]):
        (tmp_path / f"{n}.yaml").write_text(yaml.safe_dump({"kind": "WorkflowTemplate", "metadata": {"name": "t"},
                                                            "spec": {"entrypoint": image}}))
    with pytest.raises(TemplateStoreError, match="WorkflowTemplate 't' is defined twice"):
        TemplateStore.load([tmp_path])
    with pytest.raises(TemplateStoreError, match="no such file or folder"):
        TemplateStore.load([tmp_path / "missing.yaml"])
