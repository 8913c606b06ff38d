"""The training WorkflowTemplate: its golden YAML, the official schemas, and the contract with the steps."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from workflows import _common, render, submit
from workflows._schemas import Schemas
from workflows.lint import lint_document
from workflows.local import api
from workflows.local.engine.metadata import label_value_errors
from workflows.local.run import scale_backoff
from workflows.training import build_policy_configmap, build_training

# The golden YAML is the committed rendering itself: `mlops compile` writes it, `mlops compile --check` (in CI)
# and this test compare against it.
GOLDEN = Path(__file__).resolve().parents[2] / "manifests" / "generated" / "fraud-detection" / \
    "training-workflowtemplate.yaml"
STEPS_DOC = Path(__file__).resolve().parents[2] / "docs" / "steps.md"
TITLE, DESCRIPTION = _common.TITLE_ANNOTATION, _common.DESCRIPTION_ANNOTATION


@pytest.fixture(scope="module")
def template(policy_file: Path) -> dict[str, Any]:
    return build_training(load_policy(policy_file)).to_dict()


def _templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_training_template_matches_the_golden_yaml(template, policy_file):
    """Regenerate on purpose only, with `mlops compile` or UPDATE_GOLDEN=1 (refused where CI is set, as Hera's
    tests refuse it: CI must compare, never rewrite)."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        if os.environ.get("CI"):
            pytest.fail("UPDATE_GOLDEN=1 with CI set: the golden YAML is regenerated on purpose, never in CI")
        rendered = render.render_model(load_policy(policy_file))[GOLDEN.name]
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert yaml.safe_load(GOLDEN.read_text(encoding="utf-8")) == template


def test_every_rendered_document_validates_against_the_official_schemas(policy_file, schemas_dir):
    schemas = Schemas(schemas_dir)
    for name, doc in render.render_documents(load_policy(policy_file)).items():
        assert schemas.validate(doc) == [], name


def test_rendered_documents_pass_the_semantic_lint(policy_file, schemas_dir):
    for name, doc in render.render_documents(load_policy(policy_file)).items():
        assert lint_document(doc, name, 1, Schemas(schemas_dir)) == []


def test_dag_is_validate_train_gate_register_with_register_after_any_verdict(template):
    tasks = {t["name"]: t for t in _templates(template)["training"]["dag"]["tasks"]}
    assert list(tasks) == ["validate", "train", "gate", "register", "rollout"]
    assert "depends" not in tasks["validate"]
    assert tasks["train"]["depends"] == "validate"
    assert tasks["gate"]["depends"] == "train"
    # Not `gate.Succeeded && passed == true`: a rejected candidate is registered too (as rejected).
    assert tasks["register"]["depends"] == "train && gate"
    assert "when" not in tasks["register"]
    # Only a version that passed the gates is deployed.
    assert tasks["rollout"]["depends"] == "register.Succeeded"
    assert tasks["rollout"]["when"] == "{{tasks.gate.outputs.parameters.passed}} == true"
    assert template["spec"]["entrypoint"] == "training"


def test_each_step_runs_its_module_with_the_documented_flags(template):
    """The flags in the template are exactly the command lines of docs/steps.md."""
    documented = STEPS_DOC.read_text(encoding="utf-8")
    for name in ("validate", "train", "gate", "register"):
        container = _templates(template)[name]["container"]
        assert container["command"] == ["python", "-m", f"steps.{name}"]
        block = re.search(rf"```\npython -m steps\.{name} (.*?)```", documented, re.DOTALL)
        assert block, name
        known = set(re.findall(r"--[a-z-]+", block.group(1)))
        used = [a for a in container["args"] if a.startswith("--")]
        assert set(used) <= known, (name, set(used) - known)


def test_every_path_argument_is_an_argo_path_variable(template):
    for name in ("validate", "train", "gate", "register"):
        args = _templates(template)[name]["container"]["args"]
        for flag, value in zip(args[::2], args[1::2], strict=True):
            if flag in ("--dataset", "--policy"):
                assert value.startswith("{{inputs.parameters."), (name, flag)
            elif flag in ("--data", "--bundle", "--holdout", "--out", "--report", "--report-dir", "--gate-report",
                          "--fingerprint-out", "--passed-out", "--version-out"):
                assert re.match(r"\{\{(inputs|outputs)\.(artifacts|parameters)\.[a-z-]+\.path\}\}", value), (name, flag)


def test_artifacts_pass_between_tasks_through_the_artifact_repository(template):
    assert template["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "mlops"}
    tasks = {t["name"]: t for t in _templates(template)["training"]["dag"]["tasks"]}
    froms = {(t, a["name"]): a["from"]
             for t, task in tasks.items() for a in task.get("arguments", {}).get("artifacts", [])}
    assert froms == {
        ("train", "data"): "{{tasks.validate.outputs.artifacts.validated}}",
        ("gate", "bundle"): "{{tasks.train.outputs.artifacts.bundle}}",
        ("gate", "holdout"): "{{tasks.train.outputs.artifacts.holdout}}",
        ("register", "bundle"): "{{tasks.train.outputs.artifacts.bundle}}",
        ("register", "gate-report"): "{{tasks.gate.outputs.artifacts.gate-report}}",
    }
    outputs = {n: [p["name"] for p in t.get("outputs", {}).get("parameters", [])]
               for n, t in _templates(template).items()}
    assert outputs["train"] == ["fingerprint"] and outputs["register"] == ["version"]
    assert outputs["gate"] == ["passed", "failed-gates"]


def test_only_the_transient_exit_code_is_retried(template):
    for name in ("validate", "train", "gate", "register"):
        retry = _templates(template)[name]["retryStrategy"]
        assert retry["expression"] == "asInt(lastRetry.exitCode) == 3"
        assert int(retry["limit"]) >= 1 and retry["backoff"]["duration"]


def test_parameters_and_their_defaults_come_from_the_policy(template, policy_file):
    policy = load_policy(policy_file)
    params = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert params == {
        "dataset": policy.data.source, "model": policy.model_name,
        "policy": f"/etc/mlops/policy/{policy.model_name}.yaml", "git-commit": "unknown", "reason": "manual",
        "drifted-features": "[]", "baseline-version": "", "idempotency-key": "", "image-tag": params["image-tag"],
        "rollout-target": "kubernetes", "rollout-time-scale": "1",
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", params["image-tag"])


def test_pods_are_hardened_and_sized(template):
    pod = template["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and isinstance(pod["runAsUser"], int)
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert volumes["policy"]["configMap"]["name"] == "mlops-policy-fraud-detection"
    for name in ("validate", "train", "gate", "register"):
        container = _templates(template)[name]["container"]
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["image"] == "ghcr.io/argo-mlops/steps:{{workflow.parameters.image-tag}}"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts == {"/tmp": "tmp", "/etc/mlops/policy": "policy"}
        assert _templates(template)[name]["activeDeadlineSeconds"]


def test_workflow_settings_survive_hera(template):
    """Hera's models drop what they do not know without a word: check what we set is in the output."""
    spec = template["spec"]
    assert spec["serviceAccountName"] == "mlops-workflow"
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert set(spec["ttlStrategy"]) == {"secondsAfterSuccess", "secondsAfterFailure"}
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["workflowMetadata"]["labels"] == template["metadata"]["labels"]
    assert spec["podMetadata"]["labels"] == template["metadata"]["labels"]


def test_registry_and_credentials_come_from_the_config_map_and_secret(template):
    env = {e["name"]: e for e in _templates(template)["register"]["container"]["env"]}
    assert env["MLOPS_REGISTRY"]["valueFrom"] == {"configMapKeyRef": {"name": "mlops-config", "key": "registry"}}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlops-s3"
        assert env[key]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["MLOPS_ACTOR"]["value"] == "argo:{{workflow.name}}"


def test_labels_and_provenance_annotations(template, policy_file):
    meta = template["metadata"]
    assert meta["name"] == "fraud-detection-training"
    assert meta["labels"] == {"app.kubernetes.io/name": "fraud-detection", "app.kubernetes.io/component": "training",
                              "app.kubernetes.io/part-of": "argo-mlops"}
    assert meta["annotations"]["argo-mlops.io/policy-sha256"] == load_policy(policy_file).sha256
    assert meta["annotations"]["argo-mlops.io/source"] == "workflows/training.py:build_training"


def test_policy_config_map_carries_the_policy_file_verbatim(policy_file):
    cm = build_policy_configmap(load_policy(policy_file))
    assert cm["metadata"]["name"] == "mlops-policy-fraud-detection"
    assert cm["data"] == {"fraud-detection.yaml": policy_file.read_text(encoding="utf-8")}


def test_nothing_is_hard_wired_to_one_model(tmp_path, policy_file):
    gates = tmp_path / "gates"
    gates.mkdir()
    text = policy_file.read_text().replace("model_name: fraud-detection", "model_name: churn")
    text = text.replace("generate:fraud-detection?rows=200000&seed=42", "s3://lake/churn/transactions.parquet")
    (gates / "churn.yaml").write_text(text)
    doc = build_training(load_policy(gates / "churn.yaml")).to_dict()
    assert "fraud" not in yaml.safe_dump(doc)
    assert doc["metadata"]["name"] == "churn-training"


def run_as_argo_starts_it(workflow: dict[str, Any], parameters: dict[str, str], tmp_path: Path,
                          policy_configmap: dict[str, Any] | None = None) -> api.Result:
    """Run a submitted Workflow here on the local engine as Argo's controller runs it: merged with the committed
    WorkflowTemplate, its workflowMetadata applied after global substitution, the exit handler after the DAG.
    Callers pass a dataset that does not exist, so validate stops it within seconds: the metadata is set before.
    (Argo waits a retry's backoff before it reads the retry expression: the backoffs are scaled down here.)"""
    generated = GOLDEN.parent
    template = yaml.safe_load(GOLDEN.read_text(encoding="utf-8"))
    scale_backoff(template["spec"], 0.001)
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template), encoding="utf-8")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlops-config"},
              "data": {"registry": str(tmp_path / "registry")}}
    prepared = api.prepare(workflow, parameters, templates=[tmp_path / "template.yaml"],
                           configmaps=[policy_configmap or generated / "policy-configmap.yaml", config])
    assert [str(r) for r in prepared.report.refusals] == []
    return api.execute(prepared, tmp_path / "run")


def assert_valid_labels(labels: dict[str, str]) -> None:
    """What Kubernetes accepts as label values (a patch with another value is refused, the label never set)."""
    assert {key: label_value_errors(value) for key, value in labels.items() if label_value_errors(value)} == {}


def test_report_artifacts_are_stored_unarchived_so_the_argo_ui_can_show_them(template):
    """Argo's artifact viewer shows only artifacts stored with `archive: none` (a .tgz cannot be opened); the data
    and the bundle are stored so too (Parquet and a zipped model do not compress: a tar.gz costs CPU for nothing)."""
    templates = _templates(template)
    outputs = {(name, a["name"]): a for name, t in templates.items()
               for a in (t.get("outputs") or {}).get("artifacts") or []}
    reports = {("validate", "validation-report"), ("gate", "gate-report"), ("register", "registry-report")}
    assert reports <= set(outputs)
    for key in reports:
        assert outputs[key]["archive"] == {"none": {}}, key
    # A folder is previewed (and drawn in the DAG) only when its key ends in `/` (ui artifact-panel.tsx); through the
    # repository's keyFormat it would be `<keyFormat>/gate-report`, so the folders give their key, key-only.
    for step, name in reports - {("validate", "validation-report")}:
        assert outputs[(step, name)]["s3"] == {
            "key": f"{{{{workflow.namespace}}}}/{{{{workflow.name}}}}/{{{{pod.name}}}}/{name}/"}, name
    assert "s3" not in outputs[("validate", "validation-report")]  # a file: its key ends in .json already
    for key in set(outputs) - reports:  # the bundle, holdout and validated data too: they do not compress
        assert outputs[key]["archive"] == {"none": {}}, key
    # The registry page is best effort: a missing folder must not fail the register step.
    assert outputs[("register", "registry-report")]["optional"] is True
    register = templates["register"]["container"]["args"]
    assert register[register.index("--registry-report-out") + 1] == "{{outputs.artifacts.registry-report.path}}"


def test_the_run_s_outputs_are_the_version_the_verdict_and_the_rollout_outcome(template):
    """The entrypoint DAG's outputs are what the Argo UI shows for the run; each has a default for a task that was
    skipped or wrote nothing (Argo fails the DAG's output otherwise), and each step's value is a global output too."""
    dag_outputs = {p["name"]: p["valueFrom"] for p in _templates(template)["training"]["outputs"]["parameters"]}
    assert dag_outputs == {
        "version": {"parameter": "{{tasks.register.outputs.parameters.version}}", "default": "none"},
        "passed": {"parameter": "{{tasks.gate.outputs.parameters.passed}}", "default": "unknown"},
        "failed-gates": {"parameter": "{{tasks.gate.outputs.parameters.failed-gates}}", "default": "unknown"},
        "outcome": {"parameter": "{{tasks.rollout.outputs.parameters.outcome}}", "default": "unknown"},
    }
    steps = {(name, p["name"]): p for name, t in _templates(template).items()
             for p in (t.get("outputs") or {}).get("parameters") or []}
    assert steps[("register", "version")]["globalName"] == "version"
    assert steps[("gate", "passed")]["globalName"] == "passed"
    gate = _templates(template)["gate"]["container"]["args"]
    assert gate[gate.index("--failed-out") + 1] == "{{outputs.parameters.failed-gates.path}}"
    assert steps[("rollout", "outcome")] == {"name": "outcome", "globalName": "outcome",
                                             "valueFrom": {"path": "/tmp/outcome", "default": "unknown"}}
    rollout = _templates(template)["rollout"]["container"]["args"]
    assert rollout[rollout.index("--outcome-out") + 1] == "{{outputs.parameters.outcome.path}}"


def test_a_git_push_run_says_so_in_the_argo_ui(template, tmp_path):
    """The Workflow `mlops submit` (and `argo submit --from workflowtemplate/...`) creates from CI's push, as Argo
    starts it: its title names the commit, its trigger label is git-push."""
    workflow = submit.workflow_from(template, {"reason": "git-push", "git-commit": "abc1234"}, "argo")
    result = run_as_argo_starts_it(workflow, {"dataset": "/nonexistent/data.csv"}, tmp_path)
    assert result.phase == "Failed"  # the dataset does not exist
    assert result.annotations[TITLE] == "**fraud-detection** · git push abc1234"
    assert result.annotations[DESCRIPTION].startswith("Trigger: **git push** of commit abc1234\n\n"
                                                      "Baseline: the production version · commit `abc1234`")
    assert result.labels[_common.TRIGGER_LABEL] == "git-push"
    # The exit handler labelled it once validate had failed: no version, result failed (no global output existed).
    assert result.labels[_common.VERSION_LABEL] == "none"
    assert result.labels[_common.RESULT_LABEL] == "failed"
    assert_valid_labels(result.labels)


@pytest.mark.parametrize(("reason", "title"), [
    ("manual", "**fraud-detection** · manual training"),
    ("Q3 refresh: new merchants", "**fraud-detection** · manual training: Q3 refresh: new merchants"),
], ids=["default", "free-text-reason"])
def test_a_manual_run_says_so_and_any_reason_is_a_valid_trigger_label(template, tmp_path, reason, title):
    """A reason that is no label value (spaces, a colon) must not make Argo error the Workflow: it is `manual`."""
    workflow = submit.workflow_from(template, {"reason": reason} if reason != "manual" else {}, "argo")
    result = run_as_argo_starts_it(workflow, {"dataset": "/nonexistent/data.csv"}, tmp_path)
    assert result.annotations[TITLE] == title
    assert f"Trigger: **manual** (reason: {reason})" in result.annotations[DESCRIPTION]
    assert result.labels[_common.TRIGGER_LABEL] == "manual"
    assert_valid_labels(result.labels)


def test_the_exit_handler_labels_the_run_with_a_merge_patch_of_itself(template):
    """Argo sets no label from outputs: the exit handler patches the Workflow's own labels (kubectl patch --type
    merge)."""
    spec = template["spec"]
    handler = _templates(template)[spec["onExit"]]
    assert handler["resource"]["action"] == "patch" and handler["resource"]["mergeStrategy"] == "merge"
    patch = yaml.safe_load(handler["resource"]["manifest"])
    assert patch == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                     "metadata": {"name": "{{workflow.name}}", "labels": {
                         _common.VERSION_LABEL: "{{inputs.parameters.version}}",
                         _common.RESULT_LABEL: "{{inputs.parameters.result}}"}}}
    # Its own identity: the steps' ServiceAccount (mlops-workflow) may not patch Workflows.
    role = yaml.safe_load((GOLDEN.parents[2] / "base" / "mlops-run-labels-role.yaml").read_text(encoding="utf-8"))
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["patch"]} in role["rules"]
    assert handler["serviceAccountName"] == role["metadata"]["name"] != spec["serviceAccountName"]


def test_a_rejected_candidate_is_labelled_rejected_with_its_version(template, tmp_path, policy_file):
    """A real run whose gate rejects the candidate (the policy caps the model at 0.001 MB): register records it and
    exits 1, the DAG fails (so Argo gives the entrypoint no outputs), and the exit handler still labels the run
    with the version and `rejected` from the steps' global outputs, its inputs showing the same on its node."""
    text = policy_file.read_text(encoding="utf-8").replace("model_size_mb: {maximum: 500}",
                                                            "model_size_mb: {maximum: 0.001}")
    assert "0.001}" in text
    (tmp_path / "gates").mkdir()
    (tmp_path / "gates" / "fraud-detection.yaml").write_text(text, encoding="utf-8")
    configmap = build_policy_configmap(load_policy(tmp_path / "gates" / "fraud-detection.yaml"))
    workflow = submit.workflow_from(template, {}, "argo")
    result = run_as_argo_starts_it(workflow, {"dataset": "generate:fraud-detection?rows=3000&seed=1"}, tmp_path,
                                   policy_configmap=configmap)
    assert result.phase == "Failed"
    assert result.nodes["register"].phase == "Failed" and result.nodes["rollout"].phase == "Omitted"
    assert result.labels[_common.VERSION_LABEL] == "1"
    assert result.labels[_common.RESULT_LABEL] == "rejected"
    assert result.labels[_common.TRIGGER_LABEL] == "manual"
    [exit_node] = [n for name, n in result.nodes.items() if name.endswith(".onExit")]
    assert exit_node.phase == "Succeeded"
    assert exit_node.inputs["parameters"] == {"version": "1", "result": "rejected", "failed-gates": "model_size_mb"}
    assert result.nodes["gate"].outputs["parameters"]["failed-gates"] == "model_size_mb"
    assert_valid_labels(result.labels)
