"""The conformance cases are well-formed: every workflow, WorkflowTemplate and ConfigMap they use passes the official
schema (strict: no unknown field), and every expectation file follows the format of this folder's README, cites
Argo's source or docs for what it expects, and names a feature that docs/local-runner.md describes. The engine's
runner (another module) runs the cases; this module only checks that they can be trusted as input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT
from workflows._schemas import Schemas

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
DOC = ROOT / "docs" / "local-runner.md"

WORKFLOW_PHASES = {"Succeeded", "Failed", "Error"}
NODE_PHASES = {"Succeeded", "Failed", "Error", "Skipped", "Omitted"}
NODE_TYPES = {"Pod", "Container", "Steps", "StepGroup", "DAG", "TaskGroup", "Retry", "Skipped", "Suspend", "HTTP"}
CITATION = re.compile(r"argo-workflows v4\.1\.2 |docs/[\w./-]+\.md|govaluate|expr-lang|sprig")

TOP_KEYS = {"feature", "source", "run", "expect"}
RUN_KEYS = {"parameters", "templates", "configmaps", "timeout"}
EXPECT_KEYS = {"phase", "message", "because", "nodes", "complete", "absent", "workflow_outputs", "order", "refuse",
               "labels", "annotations"}
NODE_KEYS = {"phase", "type", "message", "inputs", "outputs", "memoized", "because"}
OUTPUT_KEYS = {"parameters", "result", "exitCode"}


def case_files() -> list[Path]:
    return sorted(p for p in CASES.glob("*.yaml") if not p.name.endswith(".expected.yaml"))


def expectation_of(case: Path) -> Path:
    return case.with_name(case.name.removesuffix(".yaml") + ".expected.yaml")


def load_all(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def load_one(path: Path) -> dict[str, Any]:
    docs = load_all(path)
    assert len(docs) == 1, f"{path.name}: expected one YAML document, found {len(docs)}"
    return docs[0]


@pytest.fixture(scope="module")
def schemas(schemas_dir: Path) -> Schemas:
    return Schemas(schemas_dir)


@pytest.fixture(scope="module")
def features() -> set[str]:
    """The feature tags docs/local-runner.md defines, written there as `<a id="tag"></a>` anchors."""
    return set(re.findall(r'<a id="([a-z0-9/-]+)"></a>', DOC.read_text(encoding="utf-8")))


def test_the_suite_covers_at_least_sixty_cases() -> None:
    assert len(case_files()) >= 60


def test_every_case_has_an_expectation_and_every_expectation_a_case() -> None:
    cases = {p.name.removesuffix(".yaml") for p in case_files()}
    expected = {p.name.removesuffix(".expected.yaml") for p in CASES.glob("*.expected.yaml")}
    assert cases == expected


@pytest.mark.parametrize("case", case_files(), ids=lambda p: p.stem)
def test_case_is_a_valid_workflow_named_after_its_file(case: Path, schemas: Schemas) -> None:
    doc = load_one(case)
    assert doc.get("kind") == "Workflow", f"{case.name}: a case holds one Workflow"
    issues = schemas.validate(doc)
    assert not issues, "\n".join(f"{case.name}: {i.path}: {i.message}" for i in issues)
    stem = re.sub(r"^\d{3}-", "", case.stem)
    assert doc["metadata"].get("name") == stem, f"{case.name}: metadata.name must be {stem!r} (node names use it)"


@pytest.mark.parametrize("path", sorted((HERE / "templates").glob("*.yaml")), ids=lambda p: p.stem)
def test_template_store_files_are_valid(path: Path, schemas: Schemas) -> None:
    for doc in load_all(path):
        assert doc["kind"] in {"WorkflowTemplate", "ClusterWorkflowTemplate"}, f"{path.name}: {doc['kind']}"
        issues = schemas.validate(doc)
        assert not issues, "\n".join(f"{path.name}: {i.path}: {i.message}" for i in issues)


@pytest.mark.parametrize("path", sorted((HERE / "configmaps").glob("*.yaml")), ids=lambda p: p.stem)
def test_configmap_files_are_valid(path: Path, schemas: Schemas) -> None:
    for doc in load_all(path):
        assert doc["apiVersion"] == "v1" and doc["kind"] == "ConfigMap", path.name
        assert isinstance(doc["metadata"]["name"], str) and isinstance(doc.get("data"), dict), path.name
        assert all(isinstance(v, str) for v in doc["data"].values()), f"{path.name}: ConfigMap data values are strings"
        issues = schemas.validate(doc)
        assert not issues, "\n".join(f"{path.name}: {i.path}: {i.message}" for i in issues)


@pytest.mark.parametrize("case", case_files(), ids=lambda p: p.stem)
def test_expectation_follows_the_readme_format(case: Path, features: set[str]) -> None:
    exp = load_one(expectation_of(case))
    where = expectation_of(case).name
    assert set(exp) <= TOP_KEYS, f"{where}: unknown keys {set(exp) - TOP_KEYS}"
    assert exp.get("feature") in features, f"{where}: feature {exp.get('feature')!r} is not a tag of {DOC.name}"
    check_run(case, exp.get("run") or {}, where)
    expect = exp["expect"]
    assert set(expect) <= EXPECT_KEYS, f"{where}: unknown expect keys {set(expect) - EXPECT_KEYS}"
    assert CITATION.search(str(expect.get("because", ""))), f"{where}: expect.because must cite Argo's source or docs"
    if "refuse" in expect:
        check_refusal(case, expect, where)
        return
    assert expect.get("phase") in WORKFLOW_PHASES, f"{where}: workflow phase {expect.get('phase')!r}"
    nodes = expect.get("nodes") or {}
    assert nodes, f"{where}: a run expectation lists nodes"
    for name, node in nodes.items():
        check_node(str(name), node, f"{where}: node {name!r}")
    names = set(map(str, nodes))
    absent = set(expect.get("absent") or [])
    assert not names & absent, f"{where}: nodes both expected and absent: {names & absent}"
    for rule in expect.get("order") or []:
        check_order(rule, names, where)
    for key in ("labels", "annotations"):
        values = expect.get(key) or {}
        assert all(isinstance(v, str) for v in values.values()), f"{where}: {key} values are strings"
    outputs = expect.get("workflow_outputs")
    if outputs is not None:
        assert set(outputs) <= {"parameters"} and all(isinstance(v, str) for v in outputs["parameters"].values())


def check_run(case: Path, run: dict[str, Any], where: str) -> None:
    assert set(run) <= RUN_KEYS, f"{where}: unknown run keys {set(run) - RUN_KEYS}"
    for key in ("templates", "configmaps"):
        for rel in run.get(key) or []:
            assert (case.parent / rel).resolve().is_file(), f"{where}: run.{key} names a missing file {rel}"
    assert all(isinstance(v, str) for v in (run.get("parameters") or {}).values()), f"{where}: parameters are strings"
    assert isinstance(run.get("timeout", 60), int), f"{where}: run.timeout is whole seconds"


def check_node(name: str, node: dict[str, Any], where: str) -> None:
    assert isinstance(node, dict) and set(node) <= NODE_KEYS, f"{where}: keys {node!r}"
    assert node.get("phase") in NODE_PHASES, f"{where}: phase {node.get('phase')!r}"
    assert node.get("type", "Pod") in NODE_TYPES, f"{where}: type {node.get('type')!r}"
    outputs = node.get("outputs") or {}
    assert set(outputs) <= OUTPUT_KEYS, f"{where}: output keys {set(outputs)}"
    for key in ("result", "exitCode"):
        assert key not in outputs or outputs[key] is None or isinstance(outputs[key], str), f"{where}: {key} is text"
    for section in (outputs.get("parameters") or {}, (node.get("inputs") or {}).get("parameters") or {}):
        assert all(isinstance(v, str) for v in section.values()), f"{where}: parameter values are strings"


def check_order(rule: dict[str, Any], names: set[str], where: str) -> None:
    if "not_concurrent" in rule:
        listed = set(rule["not_concurrent"])
    else:
        assert set(rule) == {"before", "after"}, f"{where}: order rule {rule!r}"
        listed = {rule["before"], rule["after"]}
    assert listed <= names, f"{where}: order names nodes the expectation does not list: {listed - names}"


def check_refusal(case: Path, expect: dict[str, Any], where: str) -> None:
    assert not set(expect) & {"phase", "nodes", "complete"}, f"{where}: a refusal expects no run"
    templates = {t["name"] for t in load_one(case)["spec"]["templates"]}
    for place in expect["refuse"]:
        assert set(place) <= {"template", "field", "reason"} and place.get("reason"), f"{where}: {place!r}"
        assert place["template"] in templates, f"{where}: refusal names unknown template {place['template']!r}"
