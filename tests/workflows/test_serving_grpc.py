"""The policy's canary.serving.grpc_port: off by default; when set, the server pods get a container port named grpc
and GRPC_PORT, every Service a grpc port (HTTP/2 without TLS), the probes stay on HTTP, and everything still
validates against the Kubernetes and Argo Rollouts schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from steps._core.policy import PolicyError, load_policy
from tests.support.policies import write_policy
from workflows import serving
from workflows._schemas import Schemas
from workflows.render import render_documents

CANARY = "canary:\n  serving:\n    grpc_port: {port}\n"


def _server(rollout: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = next(c for c in rollout["spec"]["template"]["spec"]["containers"]
                                     if c["name"] == serving.COMPONENT)
    return container


def test_grpc_is_off_unless_the_policy_sets_it(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    assert policy.canary.serving.grpc_port is None
    server = _server(serving.build_rollout(policy))
    assert [p["name"] for p in server["ports"]] == ["http"]
    assert "GRPC_PORT" not in {e["name"] for e in server["env"]}
    assert [p["name"] for p in serving.build_service(policy)["spec"]["ports"]] == ["http"]


def test_a_grpc_port_renders_the_container_port_the_env_and_the_service_ports(tmp_path: Path, policy_file: Path,
                                                                              schemas_dir: Path) -> None:
    policy = load_policy(write_policy(tmp_path, policy_file, CANARY.format(port=9000)))
    server = _server(serving.build_rollout(policy))
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                               {"name": "grpc", "containerPort": 9000, "protocol": "TCP"}]
    assert {"name": "GRPC_PORT", "value": "9000"} in server["env"]
    assert all(server[probe]["httpGet"]["port"] == "http"
               for probe in ("startupProbe", "livenessProbe", "readinessProbe"))
    for build in (serving.build_service, serving.build_stable_service, serving.build_canary_service):
        assert build(policy)["spec"]["ports"][1] == {"name": "grpc", "port": 9000, "targetPort": "grpc",
                                                     "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"}
    rendered = render_documents(policy)
    schemas = Schemas(schemas_dir)
    assert {name: schemas.validate(doc) for name, doc in rendered.items()} == dict.fromkeys(rendered, [])


@pytest.mark.parametrize(("value", "said"), [
    ("8080", "must differ from the server's HTTP port 8080"), ("0", "must be at least 1"),
    ("70000", "must be at most 65535"), ('"9000"', "integer"),
], ids=["http-port", "zero", "too-big", "text"])
def test_a_bad_grpc_port_is_refused_naming_the_key(tmp_path: Path, policy_file: Path, value: str, said: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(tmp_path, policy_file, CANARY.format(port=value)))
    assert "grpc_port" in str(caught.value) and said in str(caught.value), str(caught.value)
