"""What every generated resource shares (workflows/_common.py): its labels, the provenance annotations that lead a
reader of the cluster back to the policy and the builder, the step image's tag, and the pod hardening every
generated pod must carry (non-root, read-only root file system, no capabilities, the runtime's seccomp profile)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.paths import POLICY, ROOT
from workflows import _common
from workflows.events import build_event_source
from workflows.render import render_documents

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # Kubernetes: at most 63 characters


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """What `mlops compile` renders for the reference policy, by file name."""
    return render_documents(load_policy(POLICY))


def pods(doc: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any], list[tuple[str, Any]]]]:
    """Every pod a document makes, as (path, the object holding the pod's securityContext, its containers): a
    workflow spec (each template's container runs in a pod with the workflow's securityContext) or a pod spec."""
    if isinstance(doc, dict):
        if isinstance(doc.get("templates"), list) and any("container" in t or "script" in t for t in doc["templates"]):
            containers = [(f"{where}.templates[{i}].{kind}", t[kind]) for i, t in enumerate(doc["templates"])
                          for kind in ("container", "script") if kind in t]
            containers += [(f"{where}.templates[{i}].{kind}[{j}]", c) for i, t in enumerate(doc["templates"])
                           for kind in ("initContainers", "sidecars") for j, c in enumerate(t.get(kind, []))]
            yield where, doc, containers
        if isinstance(doc.get("containers"), list):
            yield where, doc, [(f"{where}.{kind}[{j}]", c) for kind in ("initContainers", "containers")
                               for j, c in enumerate(doc.get(kind, []))]
        for key, value in doc.items():
            yield from pods(value, f"{where}.{key}" if where else key)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from pods(item, f"{where}[{i}]")


# --- labels and provenance ---------------------------------------------------------------------------------------


def test_labels_name_the_model_component_and_project() -> None:
    assert _common.labels("fraud-detection", "training") == {
        "app.kubernetes.io/name": "fraud-detection",
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/part-of": "argo-mlops",
    }


def test_every_rendered_resource_carries_the_labels_with_valid_values(rendered: dict[str, dict[str, Any]]) -> None:
    for name, doc in rendered.items():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "argo-mlops", name
        assert labels["app.kubernetes.io/name"].startswith("fraud-detection"), name
        assert labels["app.kubernetes.io/component"], name
        assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values()), (name, labels)


def test_provenance_names_the_generator_source_and_policy() -> None:
    assert _common.provenance("fraud-detection.yaml", "ab" * 32, "workflows/training.py:build_training") == {
        "argo-mlops.io/generator": f"mlops compile (argo-mlops {_common.package_version()})",
        "argo-mlops.io/source": "workflows/training.py:build_training",
        "argo-mlops.io/policy-file": "fraud-detection.yaml",
        "argo-mlops.io/policy-sha256": "ab" * 32,
    }


def test_every_rendered_resource_leads_back_to_its_policy_and_an_existing_builder(
        rendered: dict[str, dict[str, Any]]) -> None:
    policy = load_policy(POLICY)
    for name, doc in rendered.items():
        annotations = doc["metadata"]["annotations"]
        assert annotations["argo-mlops.io/policy-file"] == POLICY.name, name
        assert annotations["argo-mlops.io/policy-sha256"] == policy.sha256, name
        assert annotations["argo-mlops.io/generator"] == f"mlops compile (argo-mlops {_common.package_version()})"
        source, builder = annotations["argo-mlops.io/source"].split(":")
        assert (ROOT / source).is_file(), (name, source)
        module = importlib.import_module(source.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, builder, None)), (name, source, builder)


def test_the_policy_configmap_name_is_the_one_the_pods_mount(rendered: dict[str, dict[str, Any]]) -> None:
    name = _common.policy_configmap_name("fraud-detection")
    assert name == "mlops-policy-fraud-detection"
    assert rendered["policy-configmap.yaml"]["metadata"]["name"] == name
    training = rendered["training-workflowtemplate.yaml"]
    assert {"name": "policy", "configMap": {"name": name}} in training["spec"]["volumes"]


# --- the image tag ------------------------------------------------------------------------------------------------


def test_the_default_image_tag_is_the_package_version(rendered: dict[str, dict[str, Any]]) -> None:
    version = _common.package_version()
    pyproject = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert pyproject is not None and version == pyproject.group(1)
    parameters = {p["name"]: p.get("value") for p in
                  rendered["training-workflowtemplate.yaml"]["spec"]["arguments"]["parameters"]}
    assert parameters["image-tag"] == version
    assert "latest" not in version


# --- pod hardening ------------------------------------------------------------------------------------------------


def test_the_pod_security_context_runs_as_a_numeric_non_root_user_with_runtime_seccomp() -> None:
    context = _common.pod_security_context()
    assert context == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert type(context["runAsUser"]) is int and context["runAsUser"] > 0  # the kubelet proves non-root by number


def test_the_container_security_context_is_locked_down() -> None:
    assert _common.container_security_context() == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_each_call_returns_a_fresh_context() -> None:
    # Builders may adjust one resource's copy; that must not leak into every other resource.
    first = _common.container_security_context()
    first["capabilities"]["drop"].append("NOTHING")
    first["readOnlyRootFilesystem"] = False
    assert _common.container_security_context()["capabilities"] == {"drop": ["ALL"]}
    assert _common.container_security_context()["readOnlyRootFilesystem"] is True
    _common.pod_security_context()["seccompProfile"]["type"] = "Unconfined"
    assert _common.pod_security_context()["seccompProfile"] == {"type": "RuntimeDefault"}


def test_every_generated_pod_carries_the_hardening(rendered: dict[str, dict[str, Any]]) -> None:
    found = {(name, path): (holder, containers) for name, doc in rendered.items()
             for path, holder, containers in pods(doc)}
    # The training workflow's steps, the drift check's and the model server's pods.
    assert {name for name, _ in found} >= {"training-workflowtemplate.yaml", "drift-cronworkflow.yaml",
                                           "server-rollout.yaml"}
    for (name, path), (holder, containers) in found.items():
        assert holder.get("securityContext") == _common.pod_security_context(), (name, path)
        assert containers, (name, path)
        for where, container in containers:
            assert container.get("securityContext") == _common.container_security_context(), (name, where)


def test_every_container_with_a_read_only_root_has_a_writable_tmp(rendered: dict[str, dict[str, Any]]) -> None:
    for name, doc in rendered.items():
        for _, holder, containers in pods(doc):
            empty_dirs = {v["name"] for v in holder.get("volumes", []) if "emptyDir" in v}
            for where, container in containers:
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                assert mounts.get("/tmp") in empty_dirs, (name, where, mounts, empty_dirs)


def test_the_committed_manifests_carry_the_same_hardening() -> None:
    folder = ROOT / "manifests" / "generated" / "fraud-detection"
    docs = {path.name: doc for path in sorted(folder.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") != "Kustomization"}
    found = [(name, path, holder, containers) for name, doc in docs.items() for path, holder, containers in pods(doc)]
    assert len(found) >= 3
    for name, path, holder, containers in found:
        assert holder["securityContext"] == _common.pod_security_context(), (name, path)
        assert all(c["securityContext"] == _common.container_security_context() for _, c in containers), name


def _argo_events_doc(rendered: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """The EventSource (manifests/base) or the reference model's retrain Sensor."""
    return build_event_source() if kind == "EventSource" else next(
        d for d in rendered.values() if d["kind"] == "Sensor")


@pytest.mark.parametrize("kind", ["Sensor", "EventSource"])
def test_the_argo_events_pods_carry_the_pod_hardening(rendered: dict[str, dict[str, Any]], kind: str) -> None:
    doc = _argo_events_doc(rendered, kind)
    assert doc["spec"].get("template", {}).get("securityContext") == _common.pod_security_context()


@pytest.mark.parametrize("kind", ["Sensor", "EventSource"])
def test_the_argo_events_containers_carry_the_container_hardening(rendered: dict[str, dict[str, Any]],
                                                                  kind: str) -> None:
    # Argo Events' controllers copy spec.template.container.securityContext onto the pod's one container.
    template = _argo_events_doc(rendered, kind)["spec"].get("template", {})
    assert template.get("container", {}).get("securityContext") == _common.container_security_context()


@pytest.mark.parametrize("kind", ["Sensor", "EventSource"])
def test_the_argo_events_pods_leave_tmp_to_their_controller(rendered: dict[str, dict[str, Any]], kind: str) -> None:
    """The read-only root works because Argo Events' controllers give every EventSource and Sensor pod an emptyDir
    `tmp` at /tmp; a volume of ours with that name would make the Deployment they create invalid."""
    template = _argo_events_doc(rendered, kind)["spec"]["template"]
    assert "tmp" not in {v["name"] for v in template.get("volumes", [])}
    assert "/tmp" not in {m["mountPath"] for m in template.get("container", {}).get("volumeMounts", [])}


def test_package_version_falls_back_to_the_checkouts_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_common.metadata, "version", not_installed)
    text = (ROOT / "pyproject.toml").read_text()
    expected = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert expected is not None and _common.package_version() == expected.group(1)
    assert Path(_common.__file__).resolve().parent.parent == ROOT
