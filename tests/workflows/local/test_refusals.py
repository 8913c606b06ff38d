"""The up-front checks (workflows/local/refusals.py): everything that cannot run on one machine is listed at once,
named by template and field, before anything starts; cluster-only fields make one notice, never an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from workflows.local.refusals import Report, check
from workflows.local.templates import Resolver, TemplateStore

ROOT = Path(__file__).parents[3]


def workflow(*templates: dict[str, Any], **spec: Any) -> dict[str, Any]:
    steps = [[{"name": f"s{i}", "template": t["name"]}] for i, t in enumerate(templates)]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "steps": steps}, *templates], **spec}}


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine:3.20", "command": ["sh", "-c", "true"], **fields}}


def refusals(wf: dict[str, Any], **options: Any) -> list[str]:
    return [str(r) for r in run_check(wf, **options).refusals]


def run_check(wf: dict[str, Any], **options: Any) -> Report:
    return check(wf, Resolver(wf, TemplateStore()), **options)


def test_a_runnable_workflow_has_no_refusal_and_one_notice_about_images() -> None:
    report = run_check(workflow(container("hello")))
    assert report.refusals == []
    assert report.notices == ["images are not used: each container runs its command on this machine"]


def test_every_place_is_listed_at_once() -> None:
    wf = workflow(
        {"name": "make-cm", "resource": {"action": "create", "manifest": "kind: ConfigMap"}},
        {"name": "entrypoint", "container": {"image": "argoproj/argosay:v2"}},
        container("clone", command=["no-such-command-on-this-host"]),
        {"name": "fetch", "inputs": {"artifacts": [{"name": "src", "path": "/src", "git": {"repo": "https://x"}}]},
         "container": {"image": "alpine", "command": ["ls"]}},
        container("field-env", env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
    )
    assert refusals(wf) == [
        "template make-cm resource.action: resource template with action 'create' (runs against the cluster; only a "
        "patch of this Workflow's labels and annotations runs here)",
        "template entrypoint container: container without command (image entrypoint): the image's entrypoint is "
        "unknown here; give one with --image-command argoproj/argosay:v2=CMD",
        "template clone container.command: command 'no-such-command-on-this-host' not found on this machine",
        "template fetch inputs.artifacts.src: git artifact: not fetched on this machine",
        "template field-env container.env.POD: env value from fieldRef: no local source (configMapKeyRef and "
        "secretKeyRef run here)",
    ]


def test_env_values_from_config_maps_and_secrets_are_refused_only_when_the_pod_could_not_get_them(monkeypatch) -> None:
    """configMapKeyRef reads the local ConfigMaps, secretKeyRef the same-named variable of this machine; a required
    one that is absent would fail the pod (CreateContainerConfigError): refused up front, naming what to give."""
    monkeypatch.setenv("TOKEN", "from-my-shell")
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.delenv("OPTIONAL_KEY", raising=False)

    def ref(kind: str, name: str, key: str, optional: bool = False) -> dict[str, Any]:
        return {kind: {"name": name, "key": key, **({"optional": True} if optional else {})}}

    env = [{"name": "REGISTRY", "valueFrom": ref("configMapKeyRef", "mlops-config", "registry")},
           {"name": "ENDPOINT", "valueFrom": ref("configMapKeyRef", "mlops-config", "endpoint", optional=True)},
           {"name": "MISSING", "valueFrom": ref("configMapKeyRef", "mlops-config", "nope")},
           {"name": "ELSEWHERE", "valueFrom": ref("configMapKeyRef", "other", "x")},
           {"name": "TOKEN", "valueFrom": ref("secretKeyRef", "s3", "token")},
           {"name": "OPTIONAL_KEY", "valueFrom": ref("secretKeyRef", "s3", "x", optional=True)},
           {"name": "API_KEY", "valueFrom": ref("secretKeyRef", "api", "key")}]
    maps = {"mlops-config": {"kind": "ConfigMap", "metadata": {"name": "mlops-config"}, "data": {"registry": "/r"}}}
    assert refusals(workflow(container("env", env=env)), config_maps=maps) == [
        "template env container.env.MISSING: ConfigMap 'mlops-config' has no key 'nope' (the pod would fail: "
        "CreateContainerConfigError)",
        "template env container.env.ELSEWHERE: ConfigMap 'other' is not among the local ConfigMaps (give it with "
        "--configmaps)",
        "template env container.env.API_KEY: Secret 'api' key 'key': no Secret exists here: set $API_KEY on this "
        "machine",
    ]


def test_only_templates_that_can_run_are_refused() -> None:
    """A resource template nothing calls (in the workflow or in a referenced WorkflowTemplate) never runs."""
    tools = {"kind": "WorkflowTemplate", "metadata": {"name": "tools"}, "spec": {"templates": [
        container("hello"), {"name": "apply", "resource": {"action": "create", "manifest": "kind: ConfigMap"}}]}}
    wf = workflow(container("unused-but-fine"))
    wf["spec"]["templates"][0] = {"name": "main", "steps": [[
        {"name": "s", "templateRef": {"name": "tools", "template": "hello"}, "onExit": "bye"}]]}
    wf["spec"]["templates"] += [{"name": "unused", "resource": {"action": "create", "manifest": "kind: X"}},
                                {"name": "bye", "container": {"image": "argoproj/argosay:v2"}}]
    found = [str(r) for r in check(wf, Resolver(wf, TemplateStore([tools]))).refusals]
    assert found == ["template bye container: container without command (image entrypoint): the image's entrypoint "
                     "is unknown here; give one with --image-command argoproj/argosay:v2=CMD"]


def test_an_image_command_stands_in_for_the_entrypoint() -> None:
    wf = workflow({"name": "say", "container": {"image": "argoproj/argosay:v2", "args": ["echo", "hi"]}})
    assert refusals(wf, image_commands={"argoproj/argosay:v2": ["sh", "-c"]}) == []


def test_env_from_a_secret_is_refused_and_config_map_env_runs() -> None:
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}},
           {"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "url"}}}]
    env_from = [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "s"}}]
    assert refusals(workflow(container("c", env=env, envFrom=env_from))) == [
        "template c container.envFrom[1]: envFrom secretRef: no local source (configMapRef from --configmaps runs)",
    ]


def test_volumes_without_a_local_source_are_refused_and_local_ones_run() -> None:
    wf = workflow(container("c"), volumes=[{"name": "scratch", "emptyDir": {}},
                                           {"name": "token", "secret": {"secretName": "t"}},
                                           {"name": "host", "hostPath": {"path": "/var"}}])
    assert [r.split(":")[0] for r in refusals(wf)] == ["workflow spec.volumes[1] (token)",
                                                       "workflow spec.volumes[2] (host)"]


def test_artifacts_the_executor_cannot_place_or_read_back_are_refused() -> None:
    wf = workflow({**container("c"), "inputs": {"artifacts": [
        {"name": "page", "path": "/in/page", "http": {"url": "https://example.com/x"}},
        {"name": "data", "path": "/in/data", "s3": {"bucket": "b", "key": "k"}}]},
        "outputs": {"artifacts": [{"name": "z", "path": "/out", "archive": {"zip": {}}}]}})
    assert refusals(wf) == [
        "template c inputs.artifacts.page: http artifact: not fetched on this machine",
        "template c inputs.artifacts.data: s3 artifact without a configured object store (set AWS_ENDPOINT_URL)",
        "template c outputs.artifacts.z: zip archive: not read back locally (none and tar are)",
    ]
    assert len(refusals(wf, object_store=True)) == 2  # S3 runs through the project's object store


def test_a_config_map_volume_needs_the_config_map_given_locally() -> None:
    wf = workflow(container("c"), volumes=[{"name": "settings", "configMap": {"name": "settings"}},
                                           {"name": "extra", "configMap": {"name": "extra", "optional": True}}])
    assert refusals(wf, config_maps=["settings"]) == []
    assert refusals(wf, config_maps=[]) == [
        "workflow spec.volumes[0] (settings): ConfigMap 'settings' is not among the local ConfigMaps "
        "(give it with --configmaps)"]


def test_cluster_state_is_refused_database_locks_and_event_values() -> None:
    wf = workflow(
        {**container("locked"), "synchronization": {"mutexes": [{"name": "m", "database": True}]}},
        {"name": "approve", "suspend": {},
         "outputs": {"parameters": [{"name": "p", "valueFrom": {"event": "body.approved"}}]}},
    )
    found = refusals(wf)
    assert "template locked synchronization.mutexes: database mutexes (held in the cluster's database)" in found
    assert "template approve outputs.parameters.p.valueFrom.event: valueFrom.event needs the cluster" in found


def test_an_expression_the_lang_package_does_not_evaluate_is_refused_before_running() -> None:
    wf = workflow(container("c", args=["{{=let x = 1; x + 1}}"]))
    (refusal,) = refusals(wf)
    assert refusal == "template c container.args[0]: not evaluated locally: a 'let' variable declaration"


def test_a_retry_expression_is_checked_with_its_tags_standing_for_values() -> None:
    template = {**container("t"), "inputs": {"parameters": [{"name": "n", "value": "1"}]},
                "retryStrategy": {"limit": "2", "expression": "$env.n == {{inputs.parameters.n}}"}}
    (refusal,) = refusals(workflow(template))
    assert refusal == "template t retryStrategy.expression: not evaluated locally: $env"
    template["retryStrategy"]["expression"] = "asInt(lastRetry.exitCode) == {{inputs.parameters.n}}"
    assert refusals(workflow(template)) == []


def test_what_argo_validation_rejects_is_refused_too() -> None:
    wf = workflow(container("a"))
    wf["spec"]["templates"][0] = {"name": "main", "dag": {"tasks": [
        {"name": "x", "template": "a"}, {"name": "y", "template": "a", "depends": "x"},
        {"name": "z", "template": "a", "dependencies": ["x"]}, {"name": "q", "template": "missing"}]}}
    found = refusals(wf)
    assert "template main dag.tasks.z: cannot use both 'depends' and 'dependencies' in the same DAG template" in found
    assert "template main dag.tasks.q.template: template name 'missing' undefined" in found


def test_cluster_only_fields_are_one_notice() -> None:
    wf = workflow({**container("c", resources={"limits": {"cpu": "1"}}), "nodeSelector": {"a": "b"}},
                  podGC={"strategy": "OnPodSuccess"}, ttlStrategy={"secondsAfterCompletion": 10})
    report = run_check(wf)
    assert report.refusals == []
    assert report.notices[1] == "cluster-only fields ignored: nodeSelector, podGC, resources, ttlStrategy"


def test_mlops_run_from_refuses_with_exit_2_naming_every_place(tmp_path: Path) -> None:
    wf = workflow({"name": "make-cm", "resource": {"action": "create", "manifest": "kind: ConfigMap"}},
                  {"name": "plugin-call", "plugin": {"hello": {}}}, container("fine"))
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(wf))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-P", "-m", "workflows", "run", "--from", "wf.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "cannot run on this machine; nothing was started" in proc.stderr
    assert "template make-cm resource.action: resource template with action 'create'" in proc.stderr
    assert "template plugin-call plugin: plugin template" in proc.stderr
    assert not (tmp_path / ".mlops").exists()
