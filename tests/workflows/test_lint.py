"""`mlops lint`: the rendered manifests are clean, and each kind of mistake is caught and named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from workflows import lint
from workflows._schemas import Schemas
from workflows.training import build_training

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered(policy_file: Path) -> dict[str, Any]:
    return build_training(load_policy(policy_file)).to_dict()


def _tasks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    dag = next(t for t in doc["spec"]["templates"] if "dag" in t)
    return {t["name"]: t for t in dag["dag"]["tasks"]}


def _template(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def _problems(doc: dict[str, Any], schemas: Schemas | None) -> list[lint.Problem]:
    return lint.lint_document(doc, "training.yaml", 1, schemas)


def test_the_committed_manifests_lint_clean(schemas_dir, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint.main(["--schemas", str(schemas_dir)]) == 0
    assert "OK" in capsys.readouterr().out


MISTAKES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing-template", lambda d: _tasks(d)["gate"].update(template="gait"), "missing-template",
     "spec.templates[4].dag.tasks[2].template"),
    ("missing-entrypoint", lambda d: d["spec"].update(entrypoint="trainnig"), "missing-template", "spec.entrypoint"),
    ("cycle", lambda d: _tasks(d)["validate"].update(depends="register"), "cycle", "spec.templates[4].dag.tasks"),
    ("missing-task", lambda d: _tasks(d)["register"].update(depends="train && gates"), "missing-task",
     "spec.templates[4].dag.tasks[3].depends"),
    ("unresolved-workflow-parameter",
     lambda d: _tasks(d)["validate"]["arguments"]["parameters"][0].update(value="{{workflow.parameters.datasett}}"),
     "unresolved-variable", "spec.templates[4].dag.tasks[0].arguments.parameters[0].value"),
    ("unresolved-input", lambda d: _template(d, "train")["container"]["args"].append("{{inputs.parameters.seed}}"),
     "unresolved-variable", "spec.templates[1].container.args[16]"),
    ("undeclared-task-output",
     lambda d: _tasks(d)["register"]["arguments"]["parameters"].append(
         {"name": "x", "value": "{{tasks.gate.outputs.parameters.verdict}}"}),
     "unresolved-variable", "spec.templates[4].dag.tasks[3].arguments.parameters[3].value"),
    ("not-an-ancestor", lambda d: _tasks(d)["train"]["arguments"]["parameters"][0].update(
        value="{{tasks.gate.outputs.parameters.passed}}"), "unresolved-variable",
     "spec.templates[4].dag.tasks[1].arguments.parameters[0].value"),
    ("unknown-field-entrypiont", lambda d: d["spec"].update(entrypiont="training"), "unknown-field",
     "spec.entrypiont"),
    ("unknown-field-limt", lambda d: _template(d, "gate")["retryStrategy"].update(limt="3"), "unknown-field",
     "spec.templates[2].retryStrategy.limt"),
    ("schema-type", lambda d: _template(d, "gate")["container"].update(args="--bundle"), "schema",
     "spec.templates[2].container.args"),
    ("bad-when", lambda d: _tasks(d)["register"].update(when="{{tasks.gate.outputs.parameters.passed}} == "),
     "bad-expression", "spec.templates[4].dag.tasks[3].when"),
    ("bad-depends-result", lambda d: _tasks(d)["register"].update(depends="gate.Succeded"), "bad-expression",
     "spec.templates[4].dag.tasks[3].depends"),
    ("missing-argument", lambda d: _tasks(d)["gate"]["arguments"].update(
        parameters=[{"name": "policy", "value": "{{workflow.parameters.policy}}"}]), "missing-argument",
     "spec.templates[4].dag.tasks[2].arguments.parameters"),
    ("unknown-argument", lambda d: _tasks(d)["gate"]["arguments"]["parameters"].append(
        {"name": "baseline", "value": "3"}), "unknown-argument", "spec.templates[4].dag.tasks[2].arguments.parameters"),
]


@pytest.mark.parametrize(("change", "rule", "path"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_lint_catches_the_mistake_and_names_it(rendered, schemas_dir, change, rule, path):
    doc = copy.deepcopy(rendered)
    change(doc)
    problems = _problems(doc, Schemas(schemas_dir))
    assert (path, rule) in {(p.path, p.rule) for p in problems}, [str(p) for p in problems]
    assert all(str(p).startswith("training.yaml: #1 WorkflowTemplate/fraud-detection-training: ") for p in problems)


def test_lint_problem_lines_name_file_document_path_and_rule(rendered, schemas_dir, tmp_path, capsys):
    doc = copy.deepcopy(rendered)
    doc["spec"]["entrypiont"] = doc["spec"].pop("entrypoint")
    path = tmp_path / "bad.yaml"
    path.write_text("# a comment\n" + yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap",
                                                           "metadata": {"name": "ok"}}, doc]))
    assert lint.main([str(path), "--schemas", str(schemas_dir)]) == 1
    out = capsys.readouterr().out
    assert (f"{path}: #2 WorkflowTemplate/fraud-detection-training: spec.entrypiont: unknown-field: "
            "'entrypiont' is not a field here (did you mean 'entrypoint'?)") in out


def test_core_kinds_are_checked_with_kubernetes_validate(schemas_dir):
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "lables": {}}, "data": {}}
    problems = _problems(config_map, Schemas(schemas_dir))
    assert [(p.path, p.rule) for p in problems] == [("metadata.lables", "unknown-field")]
    unknown_kind = {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "x"}}
    assert [p.rule for p in _problems(unknown_kind, Schemas(schemas_dir))] == ["no-schema"]


def test_rollout_typos_are_caught_against_the_crd(schemas_dir):
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "m"},
               "spec": {"selector": {"matchLabels": {"a": "b"}},
                        "strategy": {"canary": {"steps": [{"setWieght": 10}]}}}}
    problems = _problems(rollout, Schemas(schemas_dir))
    assert ("spec.strategy.canary.steps[0].setWieght", "unknown-field") in {(p.path, p.rule) for p in problems}


def test_without_schemas_lint_says_so_and_still_checks_semantics(rendered, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_SCHEMAS", str(tmp_path / "nowhere"))
    doc = copy.deepcopy(rendered)
    _tasks(doc)["gate"]["template"] = "gait"
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert lint.main([str(path)]) == 1
    captured = capsys.readouterr()
    assert "semantic checks only" in captured.err
    assert "missing-template" in captured.out


def test_kustomization_resources_must_exist(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["gone.yaml"]}))
    problems = lint.lint_files([tmp_path / "kustomization.yaml"], None)
    assert [(p.path, p.rule) for p in problems] == [("resources[0]", "missing-resource")]


def test_lint_of_a_missing_file_is_a_usage_error(tmp_path, capsys):
    assert lint.main([str(tmp_path / "absent.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_without_kubernetes_validate_lint_checks_the_rest_and_says_what_it_skipped(schemas_dir, capsys,
                                                                                   monkeypatch):
    """After the README's plain install (no lint extra) `mlops lint` must not crash: Argo's kinds are still checked
    against their schemas, and Kubernetes' own kinds are named as unchecked, with the way to check them."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "kubernetes_validate" else real(name, *a))
    assert lint.main(["--schemas", str(schemas_dir)]) == 0
    err = capsys.readouterr().err
    assert "Kubernetes kinds not schema-checked (ConfigMap," in err
    assert "install it with the lint extra: uv pip install -e '.[lint]'" in err
