"""The official schemas as validators (workflows/_schemas.py): every document we render and ship passes, and a
broken one is reported where it is broken, with the rule and, for a typo, the key that was meant. Skips, saying
why, when ../shared/schemas is not beside the checkout (the `schemas_dir` fixture)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.paths import POLICY, ROOT
from workflows._schemas import NoSchema, SchemaIssue, Schemas, locate
from workflows.events import build_event_source
from workflows.render import render_documents


@pytest.fixture(scope="module")
def schemas(schemas_dir: Path) -> Schemas:
    return Schemas(schemas_dir)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """What `mlops compile` renders for the reference policy, by file name."""
    return render_documents(load_policy(POLICY))


def by_kind(rendered: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(doc for doc in rendered.values() if doc["kind"] == kind))


def template(doc: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    return next((i, t) for i, t in enumerate(doc["spec"]["templates"]) if t["name"] == name)


# --- what we ship passes ------------------------------------------------------------------------------------------


def test_every_rendered_document_validates(schemas: Schemas, rendered: dict[str, dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in rendered.values()}
    assert {"WorkflowTemplate", "CronWorkflow", "Sensor", "Rollout", "AnalysisTemplate", "Service",
            "ConfigMap"} <= kinds
    assert {name: schemas.validate(doc) for name, doc in rendered.items()} == dict.fromkeys(rendered, [])


def test_every_base_manifest_validates(schemas: Schemas) -> None:
    files = sorted((ROOT / "manifests" / "base").glob("*.yaml"))
    docs = {(f.name, i): doc for f in files if f.name not in ("kustomization.yaml", "kustomizeconfig.yaml")
            for i, doc in enumerate(yaml.safe_load_all(f.read_text())) if doc}
    assert any(doc["kind"] == "EventSource" for doc in docs.values())
    assert {key: schemas.validate(doc) for key, doc in docs.items()} == dict.fromkeys(docs, [])


def test_the_webhook_event_source_validates_without_a_url(schemas: Schemas) -> None:
    # Quirk 3 of the schemas' README: the Go fields without omitempty are `required`; the cluster needs no url.
    source = build_event_source()
    assert all("url" not in hook for hook in source["spec"]["webhook"].values())
    assert schemas.validate(source) == []


@pytest.mark.parametrize("limit", [3, "3"], ids=["integer", "string"])
def test_an_int_or_string_accepts_both(schemas: Schemas, rendered: dict[str, dict[str, Any]], limit: Any) -> None:
    # Quirk 1: IntOrString is {"type": "string"} in the published schema, yet Argo accepts `limit: 3`.
    doc = by_kind(rendered, "WorkflowTemplate")
    _, validate = template(doc, "validate")
    validate["retryStrategy"]["limit"] = limit
    assert schemas.validate(doc) == []


# --- broken documents ---------------------------------------------------------------------------------------------


def test_an_unknown_field_is_named_with_its_path_and_the_closest_key(schemas: Schemas,
                                                                      rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "WorkflowTemplate")
    doc["spec"]["entrypiont"] = doc["spec"]["entrypoint"]
    i, train = template(doc, "train")
    train["container"]["imagePullPolicyy"] = "IfNotPresent"
    assert schemas.validate(doc) == [
        SchemaIssue("spec.entrypiont", "unknown-field",
                    "'entrypiont' is not a field here (did you mean 'entrypoint'?)"),
        SchemaIssue(f"spec.templates[{i}].container.imagePullPolicyy", "unknown-field",
                    "'imagePullPolicyy' is not a field here (did you mean 'imagePullPolicy'?)"),
    ]


def test_an_unknown_field_with_no_close_key_is_still_named(schemas: Schemas,
                                                          rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "CronWorkflow")
    doc["spec"]["zzqqxx"] = True
    assert schemas.validate(doc) == [SchemaIssue("spec.zzqqxx", "unknown-field", "'zzqqxx' is not a field here")]


def test_a_value_of_the_wrong_type_is_named_with_its_path(schemas: Schemas,
                                                          rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "WorkflowTemplate")
    i, gate = template(doc, "gate")
    gate["container"]["args"] = "--bundle /tmp/bundle"
    assert schemas.validate(doc) == [
        SchemaIssue(f"spec.templates[{i}].container.args", "schema", "'--bundle /tmp/bundle' is not of type 'array'")]


def test_a_sensor_is_checked_against_the_argo_events_schema(schemas: Schemas,
                                                            rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "Sensor")
    doc["spec"]["dependencies"][0]["eventSourceNmae"] = "x"
    [issue] = schemas.validate(doc)
    assert (issue.path, issue.rule) == ("spec.dependencies[0].eventSourceNmae", "unknown-field")
    assert "did you mean 'eventSourceName'?" in issue.message


def test_a_rollout_is_checked_against_its_crd(schemas: Schemas, rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "Rollout")
    doc["spec"]["replicas"] = "five"
    doc["spec"]["strategy"]["canary"]["stepz"] = []
    assert schemas.validate(doc) == [
        SchemaIssue("spec.replicas", "schema", "'five' is not of type 'integer'"),
        SchemaIssue("spec.strategy.canary.stepz", "unknown-field",
                    "'stepz' is not a field here (did you mean 'steps'?)"),
    ]


def test_an_analysis_template_is_checked_against_its_crd(schemas: Schemas,
                                                         rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "AnalysisTemplate")
    doc["spec"]["metrics"][0]["sucessCondition"] = doc["spec"]["metrics"][0].pop("successCondition")
    [issue] = schemas.validate(doc)
    assert (issue.path, issue.rule) == ("spec.metrics[0].sucessCondition", "unknown-field")
    assert "did you mean 'successCondition'?" in issue.message


def test_a_core_kind_is_checked_by_kubernetes_validate(schemas: Schemas,
                                                       rendered: dict[str, dict[str, Any]]) -> None:
    doc = by_kind(rendered, "Service")
    doc["spec"]["portz"] = doc["spec"].pop("ports")
    assert schemas.validate(doc) == [
        SchemaIssue("spec.portz", "unknown-field", "'portz' is not a field here (did you mean 'ports'?)")]
    doc = by_kind(rendered, "Service")
    doc["spec"]["ports"] = "http"
    [issue] = schemas.validate(doc)
    assert (issue.path, issue.rule) == ("spec.ports", "schema") and "'http' is not of type 'array'" in issue.message


def test_a_missing_required_field_at_the_root_is_reported_at_the_document(schemas: Schemas) -> None:
    issues = schemas.validate({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": "none"})
    assert issues == [SchemaIssue("<document>", "schema", "'metadata' is a required property"),
                      SchemaIssue("spec", "schema", "'none' is not of type 'object'")]


# --- kinds without a schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "where"), [
    ({"apiVersion": "example.com/v1", "kind": "Widget"}, "in "),
    ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}, "in "),
    ({"apiVersion": "v1", "kind": "Widget"}, "in kubernetes-validate"),
], ids=["unknown-group", "argo-cd", "unknown-core-kind"])
def test_an_unknown_kind_raises_no_schema_naming_it(schemas: Schemas, doc: dict[str, Any], where: str) -> None:
    with pytest.raises(NoSchema, match=rf"^no schema for {doc['kind']} \({doc['apiVersion']}\) {where}"):
        schemas.validate(doc)


def test_no_schema_is_a_lookup_error() -> None:
    assert issubclass(NoSchema, LookupError)


# --- finding the schemas ------------------------------------------------------------------------------------------


def test_a_folder_without_the_schemas_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path}: no argo-workflows.schema.json"):
        Schemas(tmp_path)


def test_locate_prefers_the_flag_then_the_environment_then_the_shared_folder(
        schemas_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SCHEMAS", str(tmp_path / "from-env"))
    assert locate(tmp_path / "from-flag") == tmp_path / "from-flag"
    assert locate() == tmp_path / "from-env"
    monkeypatch.delenv("MLOPS_SCHEMAS")
    assert locate() == ROOT.parent / "shared" / "schemas" == schemas_dir
