"""The NetworkPolicies of manifests/, as `kubectl kustomize` renders each overlay: the namespace denies every
connection by default, and each job reaches exactly what its code talks to, by label selectors and ports.

A small evaluator of Kubernetes' NetworkPolicy rules (a connection needs the source's egress and the destination's
ingress) decides every connection between the namespace's pods and the pods and addresses around them. The pods'
labels and ports are read from the rendered Rollout, WorkflowTemplate, CronWorkflow, EventSource and Sensor, and
the drift step's Prometheus and webhook from the addresses the CronWorkflow gives it, so a label or a port that
changes on one side only fails here.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = {"dev": "mlops-dev", "production": "mlops"}  # overlay -> its namespace


@dataclass(frozen=True)
class Port:
    number: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Endpoint:
    """A pod (with a namespace and labels) or an address outside the cluster's pods (namespace None)."""

    name: str
    ip: str
    ports: tuple[Port, ...]
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


# --- the evaluator: Kubernetes' NetworkPolicy semantics ---------------------------------------------------------


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector; `{}` selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if not {"In": key in labels and labels[key] in values,
                "NotIn": key not in labels or labels[key] not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[operator]:
            return False
    return True


def _in_block(block: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address in ipaddress.ip_network(block["cidr"]) and not any(
        address in ipaddress.ip_network(c) for c in block.get("except", []))


def _peer_matches(peer: Mapping[str, Any], namespace: str, other: Endpoint,
                  namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if "ipBlock" in peer:  # pod addresses count too: the stricter reading of a CNI-dependent rule
        return _in_block(peer["ipBlock"], other.ip)
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], namespaces[other.namespace]):
            return False
    elif other.namespace != namespace:
        return False
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[Mapping[str, Any]] | None, port: Port) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != port.protocol:
            continue
        wanted = p.get("port")
        if wanted is None or wanted == port.name or (
                isinstance(wanted, int) and wanted <= port.number <= p.get("endPort", wanted)):
            return True
    return False


def _types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _direction_allows(policies: list[dict[str, Any]], direction: str, pod: Endpoint, other: Endpoint, port: Port,
                      namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether `pod`'s policies of this direction let the connection with `other` through (on `port`)."""
    if pod.namespace is None:
        return True  # not a pod: no NetworkPolicy applies to it
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if p["metadata"].get("namespace") == pod.namespace
                 and direction in _types(p) and _selects(p["spec"].get("podSelector"), pod.labels)]
    if not selecting:
        return True
    return any((not rule.get(peers) or any(_peer_matches(peer, pod.namespace, other, namespaces)
                                           for peer in rule[peers]))
               and _port_matches(rule.get("ports"), port)
               for policy in selecting for rule in policy["spec"].get(key, []))


def allowed(policies: list[dict[str, Any]], source: Endpoint, destination: Endpoint, port: Port,
            namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    return (_direction_allows(policies, "Egress", source, destination, port, namespaces)
            and _direction_allows(policies, "Ingress", destination, source, port, namespaces))


# --- the pods and addresses, from the rendered manifests ---------------------------------------------------------


def kustomize(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl, "kustomize", str(folder)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {folder}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` renders the overlays (no cluster needed)")
    return path


@dataclass
class Cluster:
    namespace: str
    policies: list[dict[str, Any]]
    endpoints: dict[str, Endpoint]
    namespaces: dict[str, dict[str, str]]

    def reaches(self, source: str) -> set[tuple[str, int, str]]:
        """Every (destination, port, protocol) that `source` can open a connection to."""
        src = self.endpoints[source]
        return {(name, port.number, port.protocol) for name, dst in self.endpoints.items() for port in dst.ports
                if (src.namespace == self.namespace or dst.namespace == self.namespace)
                and allowed(self.policies, src, dst, port, self.namespaces)}

    def reached_by(self, destination: str) -> set[tuple[str, int, str]]:
        """Every (source, port, protocol) that can open a connection to `destination`."""
        return {(name, dst_port, protocol) for name in self.endpoints
                for dst, dst_port, protocol in self.reaches(name) if dst == destination}


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert found, f"the overlay renders no {kind}"
    return found[0]


def _parameters(cron: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in cron["spec"]["workflowSpec"]["arguments"]["parameters"]}


def cluster(docs: list[dict[str, Any]], namespace: str) -> Cluster:
    rollout, training = _one(docs, "Rollout"), _one(docs, "WorkflowTemplate")
    cron, source, sensor = _one(docs, "CronWorkflow"), _one(docs, "EventSource"), _one(docs, "Sensor")
    prometheus_url = urlsplit(_parameters(cron)["prometheus-url"])
    host = prometheus_url.hostname or ""
    assert host.count(".") >= 2, f"prometheus-url {host!r}: the policies expect <service>.<namespace>.svc"
    prometheus_namespace = host.split(".")[1]
    server_port, = rollout["spec"]["template"]["spec"]["containers"][0]["ports"]
    webhook, = source["spec"]["webhook"].values()
    ours = [
        Endpoint("training", "10.244.1.10", (), namespace, training["spec"]["podMetadata"]["labels"]),
        Endpoint("drift", "10.244.1.11", (), namespace, cron["spec"]["workflowSpec"]["podMetadata"]["labels"]),
        # Argo Rollouts adds the role label (canary or stable) to the server pods.
        Endpoint("server", "10.244.1.12", (Port(server_port["containerPort"], server_port["name"]),), namespace,
                 {**rollout["spec"]["template"]["metadata"]["labels"], "role": "canary"}),
        # Argo Events' controllers add their own labels to the pods beside spec.template.metadata.labels.
        Endpoint("eventsource", "10.244.1.13", (Port(int(webhook["port"])), Port(7777, "metrics")), namespace,
                 {**source["spec"]["template"]["metadata"]["labels"], "controller": "eventsource-controller",
                  "eventsource-name": source["metadata"]["name"], "owner-name": source["metadata"]["name"]}),
        Endpoint("sensor", "10.244.1.14", (Port(7777, "metrics"),), namespace,
                 {**sensor["spec"]["template"]["metadata"]["labels"], "controller": "sensor-controller",
                  "sensor-name": sensor["metadata"]["name"], "owner-name": sensor["metadata"]["name"]}),
        # The EventBus named `default` (Argo Events' JetStream or NATS StatefulSet), which the user applies.
        Endpoint("eventbus", "10.244.1.15",
                 (Port(4222, "client"), Port(6222, "cluster"), Port(8222, "monitor"), Port(7777, "metrics")),
                 namespace, {"controller": "eventbus-controller", "eventbus-name": "default", "owner-name": "default"}),
        # Some other workload in the namespace: the default deny must hold it too.
        Endpoint("neighbour", "10.244.1.16", (Port(8080, "http"), Port(443, "https")), namespace, {"app": "notebook"}),
    ]
    around = [
        Endpoint("prometheus", "10.244.2.10", (Port(prometheus_url.port or 80, "web"),), prometheus_namespace,
                 {"app.kubernetes.io/name": "prometheus"}),
        Endpoint("pushgateway", "10.244.2.11", (Port(9091, "http"),), "monitoring",
                 {"app.kubernetes.io/name": "prometheus-pushgateway"}),
        Endpoint("grafana", "10.244.2.12", (Port(3000, "http"),), "monitoring", {"app.kubernetes.io/name": "grafana"}),
        Endpoint("kube-dns", "10.244.0.10", (Port(53, "dns", "UDP"), Port(53, "dns-tcp")), "kube-system",
                 {"k8s-app": "kube-dns"}),
        Endpoint("shop", "10.244.3.10", (Port(8080, "http"),), "shop", {"app": "shop"}),
        Endpoint("ingress-nginx", "10.244.4.10", (Port(443, "https"),), "ingress-nginx",
                 {"app.kubernetes.io/name": "ingress-nginx"}),
        # An HTTPS service inside the cluster that is not the object store (say, a vault).
        Endpoint("internal-https", "10.244.5.10", (Port(443, "https"),), "vault", {"app": "vault"}),
        Endpoint("object-store", "52.216.8.10", (Port(443),)),  # S3's public endpoint
        # The API server's endpoint: 443 on managed clusters, 6443 on kubeadm-style ones.
        Endpoint("kube-apiserver", "172.18.0.2", (Port(443), Port(6443))),
        Endpoint("cloud-metadata", "169.254.169.254", (Port(80),)),
    ]
    endpoints = {e.name: e for e in ours + around}
    namespaces = {ns: {"kubernetes.io/metadata.name": ns} for ns in {e.namespace for e in endpoints.values()} if ns}
    return Cluster(namespace, [d for d in docs if d["kind"] == "NetworkPolicy"], endpoints, namespaces)


@pytest.fixture(scope="module", params=list(OVERLAYS))
def rendered(request: pytest.FixtureRequest, kubectl: str) -> Cluster:
    overlay = request.param
    return cluster(kustomize(kubectl, MANIFESTS / "overlays" / overlay), OVERLAYS[overlay])


DNS = {("kube-dns", 53, "UDP"), ("kube-dns", 53, "TCP")}
# The API server is not a pod: no selector names it, so its rule is by port (manifests/base's kube-api policy says
# how to narrow it to the control plane's address); whatever else listens on those ports matches it too.
KUBE_API = {("kube-apiserver", 443, "TCP"), ("kube-apiserver", 6443, "TCP"), ("object-store", 443, "TCP"),
            ("internal-https", 443, "TCP"), ("ingress-nginx", 443, "TCP")}
OBJECT_STORE = {("object-store", 443, "TCP")}

# Who talks to what (the code that does it): every connection a pod of the namespace may open.
EXPECTED_EGRESS = {
    # steps.validate/train/gate/register read and write the registry, Argo's executor the artifact repository
    # and, through the API, the task results; steps.rollout patches and watches the Rollout; steps.register pushes
    # the run's outcome to the Pushgateway.
    "training": DNS | OBJECT_STORE | KUBE_API | {("pushgateway", 9091, "TCP")},
    # steps.drift: Prometheus' live bins, the Pushgateway, the webhook; the registry; Argo's executor.
    "drift": DNS | OBJECT_STORE | KUBE_API | {("prometheus", 9090, "TCP"), ("pushgateway", 9091, "TCP"),
                                              ("eventsource", 12000, "TCP")},
    # The init container fetches the model from the registry; the server itself calls nobody.
    "server": DNS | OBJECT_STORE,
    # The webhook publishes each accepted alert on the EventBus.
    "eventsource": DNS | {("eventbus", 4222, "TCP")},
    # The Sensor reads the EventBus and submits a Workflow through the API (`argo submit`).
    "sensor": DNS | KUBE_API | {("eventbus", 4222, "TCP")},
    # The EventBus' replicas route among themselves.
    "eventbus": DNS | {("eventbus", 6222, "TCP")},
    "neighbour": DNS,
}


def test_each_pod_of_the_namespace_reaches_exactly_what_its_code_talks_to(rendered: Cluster) -> None:
    for source, expected in EXPECTED_EGRESS.items():
        assert rendered.reaches(source) == expected, source


def test_each_pod_of_the_namespace_is_reached_only_by_its_callers(rendered: Cluster) -> None:
    assert rendered.reached_by("server") == {("prometheus", 8080, "TCP")}
    assert rendered.reached_by("eventsource") == {("drift", 12000, "TCP")}
    assert rendered.reached_by("eventbus") == {("eventsource", 4222, "TCP"), ("sensor", 4222, "TCP"),
                                               ("eventbus", 6222, "TCP")}
    for pod in ("training", "drift", "sensor", "neighbour"):
        assert rendered.reached_by(pod) == set(), pod


def test_the_servers_reach_the_object_store_and_nothing_inside_the_cluster(rendered: Cluster) -> None:
    reached = {dst for dst, _, _ in rendered.reaches("server")}
    assert reached == {"kube-dns", "object-store"}
    assert not {"kube-apiserver", "cloud-metadata", "internal-https", "neighbour"} & reached


def test_no_pod_of_the_namespace_reaches_the_cloud_metadata_endpoint(rendered: Cluster) -> None:
    for source in EXPECTED_EGRESS:
        assert "cloud-metadata" not in {dst for dst, _, _ in rendered.reaches(source)}, source


def test_the_namespace_denies_by_default_in_both_directions(rendered: Cluster) -> None:
    deny = [p for p in rendered.policies if p["spec"]["podSelector"] in ({}, None)
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert [p["spec"].get("policyTypes") for p in deny] == [["Ingress", "Egress"]]
    assert all(p["metadata"]["namespace"] == rendered.namespace for p in rendered.policies)


def test_the_traffic_routing_component_lets_ingress_nginx_reach_the_servers_only(kubectl: str,
                                                                                tmp_path: Path) -> None:
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    overlay = tmp_path / "manifests" / "overlays" / "canary-ingress"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "mlops",
        "resources": ["../../base", "../../generated"], "components": ["../../components/traffic-routing"]}))
    routed = cluster(kustomize(kubectl, overlay), "mlops")
    assert routed.reached_by("server") == {("prometheus", 8080, "TCP"), ("ingress-nginx", 8080, "TCP")}
    assert routed.reached_by("eventsource") == {("drift", 12000, "TCP")}


def test_the_documented_object_store_patch_swaps_public_https_for_the_in_cluster_store(kubectl: str,
                                                                                      tmp_path: Path) -> None:
    text = (MANIFESTS / "README.md").read_text()
    block = re.search(r"<!-- object-store-patch:.*?-->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert block, "manifests/README.md documents the patch for an in-cluster object store"
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    overlay = tmp_path / "manifests" / "overlays" / "minio"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "mlops",
        "resources": ["../../base", "../../generated"], **yaml.safe_load(block.group(1))}))
    patched = cluster(kustomize(kubectl, overlay), "mlops")
    minio = Endpoint("minio", "10.244.6.10", (Port(9000, "api"),), "minio", {"app": "minio"})
    patched.endpoints["minio"] = minio
    patched.namespaces["minio"] = {"kubernetes.io/metadata.name": "minio"}
    for job in ("training", "drift", "server"):
        assert ("minio", 9000, "TCP") in patched.reaches(job), job
    # The servers lose the public HTTPS rule with it (the API's rule keeps 443 open to the others).
    assert patched.reaches("server") == DNS | {("minio", 9000, "TCP")}
    assert ("minio", 9000, "TCP") not in patched.reaches("eventsource")
