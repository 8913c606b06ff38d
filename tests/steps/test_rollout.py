"""The rollout step, Kubernetes target (steps/rollout.py): a real local registry, the Rollout that `mlops compile`
generates for a second model, served by a fake Kubernetes API on 127.0.0.1 (tests/support/kube.py) that moves
the Rollout's status as the Argo Rollouts controller would. Every patch the step sends is applied to the generated
Rollout and validated against the Rollout CRD's openAPIV3Schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from steps import rollout as step
from steps._canary import argo
from steps._canary.kubernetes import merge_patch
from steps._core.policy import Policy, load_policy
from steps._model.bundle import write_manifest
from steps._storage.registry import Registry
from tests.support.kube import ABORT_MESSAGE, NAMESPACE, TOKEN, FakeKubeAPI, analysis_run

MODEL = "churn-model"  # not the reference model: nothing here may depend on it
PASSED = {"model": MODEL, "passed": True, "candidate": {"accuracy": 0.95}, "gates": [], "failed": []}
HEALTHY = {"phase": "Healthy", "currentPodHash": "abc", "stableRS": "abc"}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Policy:
    text = policy_file.read_text().replace("model_name: fraud-detection", f"model_name: {MODEL}")
    out = tmp_path_factory.mktemp("gates") / f"{MODEL}.yaml"
    out.write_text(text)
    return load_policy(out)


@pytest.fixture(scope="module")
def generated_rollout(policy: Policy) -> dict[str, Any]:
    from workflows.serving import build_rollout

    return build_rollout(policy)


@pytest.fixture(scope="module")
def rollout_schema(schemas_dir: Path) -> jsonschema.protocols.Validator:
    """The CRD's openAPIV3Schema, checked once (jsonschema.validate would re-check the big schema every call)."""
    crd = yaml.safe_load((schemas_dir / "rollout-crd.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = version["schema"]["openAPIV3Schema"]
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.open(str(tmp_path / "registry"))


def add_version(registry: Registry, root: Path, fingerprint: str) -> int:
    folder = root / f"bundle-{fingerprint}"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(fingerprint.encode() * 100)
    write_manifest(folder, {"model": MODEL, "fingerprint": fingerprint})
    return int(registry.register(MODEL, folder, passed=True, gate_report=PASSED)["version"])


@pytest.fixture
def kube_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MLOPS_KUBE_TOKEN", TOKEN)
    monkeypatch.setenv("MLOPS_NAMESPACE", NAMESPACE)
    yield


def serve_api(monkeypatch: pytest.MonkeyPatch, rollout: dict[str, Any], script: list[dict[str, Any]],
              runs: list[dict[str, Any]] | None = None) -> FakeKubeAPI:
    api = FakeKubeAPI(rollout, script, runs)
    monkeypatch.setenv("MLOPS_KUBE_API", api.url)
    return api


def validate_patches(api: FakeKubeAPI, generated: dict[str, Any], schema: jsonschema.protocols.Validator) -> None:
    assert api.patches, "the step sent no patch"
    for patch in api.patches:
        schema.validate(merge_patch(generated, patch))


def test_a_healthy_rollout_promotes_the_version_and_archives_the_previous_production(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path, policy: Policy,
        generated_rollout: dict[str, Any], rollout_schema: jsonschema.protocols.Validator) -> None:
    old = add_version(registry, tmp_path, "aaa")
    registry.promote(MODEL, old, "production")
    new = add_version(registry, tmp_path, "bbb")
    script = [{"phase": "Progressing"}, {"phase": "Paused", "message": "CanaryPauseStep"}, HEALTHY]
    with serve_api(monkeypatch, generated_rollout, script) as api:
        outcome = step.rollout(MODEL, new, "kubernetes", registry, policy, timeout=30, poll=0.01)
    assert outcome.promoted
    assert api.patches == [{"spec": {"template": {"metadata": {"annotations": {"model-version": str(new)}}}}}]
    validate_patches(api, generated_rollout, rollout_schema)
    assert api.rollout["spec"]["template"]["metadata"]["annotations"]["model-version"] == str(new)
    record = registry.get(MODEL, new)
    assert record["status"] == "production"
    assert [h["to"] for h in record["history"]] == ["staged", "canary", "production"]
    assert "Healthy" in record["history"][-1]["why"]
    assert registry.get(MODEL, old)["status"] == "archived"


def test_an_aborted_rollout_rejects_the_version_with_the_failed_analysis(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path, policy: Policy,
        generated_rollout: dict[str, Any], rollout_schema: jsonschema.protocols.Validator) -> None:
    old = add_version(registry, tmp_path, "aaa")
    registry.promote(MODEL, old, "production")
    new = add_version(registry, tmp_path, "bbb")
    failed_metric = {"name": "latency-p95-ms", "phase": "Failed", "failed": 2,
                     "message": "", "measurements": [{"phase": "Failed", "value": "[412.5]"}]}
    runs = [analysis_run("churn-model-server-7c9-2-2", "churn-model-server", "2026-01-02T00:00:00Z", "Failed",
                         [failed_metric, {"name": "error-ratio", "phase": "Successful"}])]
    script = [{"phase": "Progressing"}, {"phase": "Degraded", "abort": True, "message": ABORT_MESSAGE}]
    with serve_api(monkeypatch, generated_rollout, script, runs) as api:
        outcome = step.rollout(MODEL, new, "kubernetes", registry, policy, timeout=30, poll=0.01)
    validate_patches(api, generated_rollout, rollout_schema)
    assert not outcome.promoted
    record = registry.get(MODEL, new)
    assert record["status"] == "rejected"
    last = record["history"][-1]
    assert "aborted" in last["why"] and "latency-p95-ms Failed" in last["why"] and "412.5" in last["why"]
    assert last["details"]["analysis"]["metrics"][0]["name"] == "latency-p95-ms"
    assert registry.get(MODEL, old)["status"] == "production", "the stable version must keep production"


def test_a_status_about_the_previous_spec_is_not_taken_as_the_verdict(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path, policy: Policy,
        generated_rollout: dict[str, Any]) -> None:
    version = add_version(registry, tmp_path, "aaa")
    # The controller has not observed the patch yet (Healthy about generation 1), then goes Degraded.
    stale = {"phase": "Healthy", "observedGeneration": "1"}
    with serve_api(monkeypatch, generated_rollout, [stale, stale, {"phase": "Degraded", "message": "boom"}]):
        outcome = step.rollout(MODEL, version, "kubernetes", registry, policy, timeout=30, poll=0.01)
    assert not outcome.promoted
    assert registry.get(MODEL, version)["status"] == "rejected"


def test_no_verdict_before_the_timeout_leaves_the_version_canary(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path,
        generated_rollout: dict[str, Any], policy: Policy, capsys: pytest.CaptureFixture[str]) -> None:
    version = add_version(registry, tmp_path, "aaa")
    with serve_api(monkeypatch, generated_rollout, [{"phase": "Paused", "message": "inconclusive"}]):
        code = step.main(["--model", MODEL, "--version", str(version), "--registry", registry.location,
                          "--policy", str(policy.path), "--target", "kubernetes", "--timeout", "0.3",
                          "--outcome-out", str(tmp_path / "outcome")])
    assert code == 1
    assert "no verdict after" in capsys.readouterr().err
    assert registry.get(MODEL, version)["status"] == "canary"
    assert (tmp_path / "outcome").read_text() == "timed-out"  # the Workflow's `outcome` output


def test_the_command_line_exits_1_and_says_why_when_rejected(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path, policy: Policy,
        generated_rollout: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    version = add_version(registry, tmp_path, "aaa")
    monkeypatch.setattr(argo, "POLL_SECONDS", 0.01)
    with serve_api(monkeypatch, generated_rollout, [{"phase": "Degraded", "abort": True, "message": ABORT_MESSAGE}]):
        code = step.main(["--model", MODEL, "--version", "latest", "--registry", registry.location,
                          "--policy", str(policy.path), "--target", "kubernetes", "--timeout", "5",
                          "--outcome-out", str(tmp_path / "outcome")])
    assert code == 1
    assert f"{MODEL} v{version}: rejected" in capsys.readouterr().out
    assert (tmp_path / "outcome").read_text() == "aborted"


def test_the_command_line_writes_promoted_for_the_workflow_outputs(
        monkeypatch: pytest.MonkeyPatch, kube_env: None, registry: Registry, tmp_path: Path, policy: Policy,
        generated_rollout: dict[str, Any]) -> None:
    version = add_version(registry, tmp_path, "aaa")
    monkeypatch.setattr(argo, "POLL_SECONDS", 0.01)
    with serve_api(monkeypatch, generated_rollout, [{"phase": "Progressing"}, HEALTHY]):
        code = step.main(["--model", MODEL, "--version", str(version), "--registry", registry.location,
                          "--policy", str(policy.path), "--target", "kubernetes", "--timeout", "5",
                          "--outcome-out", str(tmp_path / "outcome")])
    assert code == 0
    assert (tmp_path / "outcome").read_text() == "promoted"
    assert registry.get(MODEL, version)["status"] == "production"


def test_bad_usage_writes_no_outcome(registry: Registry, tmp_path: Path, policy: Policy) -> None:
    version = add_version(registry, tmp_path, "aaa")
    code = step.main(["--model", MODEL, "--version", str(version), "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "kubernetes", "--timeout", "-1",
                      "--outcome-out", str(tmp_path / "outcome")])
    assert code == 2
    assert not (tmp_path / "outcome").exists(), "the template's default (unknown) must show, not a guess"


def test_the_schema_check_catches_a_patch_the_crd_would_refuse(
        generated_rollout: dict[str, Any], rollout_schema: jsonschema.protocols.Validator) -> None:
    bad = {"spec": {"template": {"metadata": {"annotations": {"model-version": 3}}}}}  # annotations are strings
    with pytest.raises(jsonschema.ValidationError):
        rollout_schema.validate(merge_patch(generated_rollout, bad))
    rollout_schema.validate(merge_patch(generated_rollout, argo.version_patch(3)))


def test_a_policy_of_another_model_is_refused(registry: Registry, tmp_path: Path, policy_file: Path) -> None:
    version = add_version(registry, tmp_path, "aaa")
    with pytest.raises(step.UsageError, match="not --model 'churn-model'"):
        step.rollout(MODEL, version, "kubernetes", registry, load_policy(policy_file))
    assert registry.get(MODEL, version)["status"] == "staged", "nothing may change on bad usage"


def test_the_kubernetes_target_ignores_prometheus_url_in_the_environment() -> None:
    # A pod may carry PROMETHEUS_URL for other tools; Argo Rollouts runs the cluster's analysis, not the step.
    assert step._prometheus_url(None, "kubernetes", "http://prom:9090") is None
    assert step._prometheus_url(None, "local", "http://prom:9090") == "http://prom:9090"
