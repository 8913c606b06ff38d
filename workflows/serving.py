"""The serving side of one model as plain dicts: the Argo Rollout of the model server, its Services, the
AnalysisTemplate that judges a canary from Prometheus, and the optional nginx Ingress for traffic routing.

Everything comes from the policy's `canary` section. Names (the rollout step and the server rely on them):

| resource | name | note |
| --- | --- | --- |
| Rollout | `<model>-server` | the rollout step patches the pod-template annotation `model-version` |
| Service | `<model>-server` | what clients call: every server pod, so the replica count splits the traffic |
| Service | `<model>-server-stable`, `<model>-server-canary` | Argo Rollouts pins them to the stable/canary pods |
| AnalysisTemplate | `<model>-analysis` | the canary pods' p95 latency, error ratio, optional prediction shift |
| Ingress | `<model>-server` | only with the traffic-routing component (nginx canary) |
"""

from __future__ import annotations

from typing import Any

# The analysis' queries and conditions live in steps/_canary/analysis.py: the local rollout runs the same ones.
from steps._canary.analysis import (  # noqa: F401 (re-exported: the builders of the AnalysisTemplate's parts)
    ERROR_METRIC,
    LATENCY_METRIC,
    MIN_WINDOW_SECONDS,
    QUERY_TIMEOUT_SECONDS,
    ROLE_LABEL,
    SHIFT_METRIC,
    canary_selector,
    conditions,
    error_ratio_query,
    latency_query,
    prediction_shift_query,
    traffic_condition,
    window,
)
from steps._canary.analysis import number as _number
from steps._canary.kubernetes import VERSION_ANNOTATION, server_name
from steps._core.policy import HTTP_PORT, Policy, PolicyError
from steps._core.values import duration_seconds
from workflows import _common

SERVE_IMAGE = "ghcr.io/argo-mlops/serve"
PORT_NAME = "http"
PORT = HTTP_PORT
GRPC_PORT_NAME = "grpc"  # the name service meshes read as the protocol (Istio: a `grpc` prefix)
MODEL_MOUNT = "/models"
MODEL_PATH = "/models/current"
# VERSION_ANNOTATION, the pod-template annotation that pins the served version, is deliberately absent from the
# generated Rollout: see `build_rollout`.
COMPONENT = "server"
SERVICE_ACCOUNT = "mlops-server"  # manifests/base: no API access, no token mounted
INGRESS_CLASS = "nginx"
PROGRESS_DEADLINE_SECONDS = 900


def stable_service_name(model: str) -> str:
    return f"{model}-server-stable"


def canary_service_name(model: str) -> str:
    return f"{model}-server-canary"


def analysis_template_name(model: str) -> str:
    return f"{model}-analysis"


def server_labels(model: str) -> dict[str, str]:
    """The server's labels. Its `name` is `<model>-server`, not the model: the training pods carry
    `app.kubernetes.io/name: <model>`, and selectors use the name alone."""
    return _common.labels(server_name(model), COMPONENT)


def selector(model: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": server_name(model)}


# --- Rollout ------------------------------------------------------------------------------------------


def build_rollout(policy: Policy, image: str = SERVE_IMAGE) -> dict[str, Any]:
    """The `<model>-server` Rollout: a replica-based canary with the policy's steps, an init container that
    fetches the pinned version from the registry, and the hardened pod of STYLE.md.

    The pod template carries no `model-version` annotation: the rollout step owns that field (it patches it
    to the version being rolled out). A generated value would be re-applied by every `kubectl apply -k` or
    GitOps sync and silently roll the model back; a field that the applied manifest never set is left alone
    by client-side and server-side apply. Until the first rollout, the init container gets an empty version
    (`<model>@`) and fails saying that no version is pinned.
    """
    model = _kubernetes_model_name(policy)
    canary, serving = policy.canary, policy.canary.serving
    tag = _common.package_version()
    version_env = {"name": "MODEL_VERSION",
                   "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{VERSION_ANNOTATION}']"}}}
    security = _common.container_security_context()
    loader = {
        "name": "model-loader",
        "image": f"{image}:{tag}",
        "imagePullPolicy": "IfNotPresent",
        # The image's entrypoint is `python -m steps.serve`; `fetch` verifies every file's sha256 first.
        "args": ["fetch", "--model", f"{model}@$(MODEL_VERSION)", "--registry", "$(MLOPS_REGISTRY)",
                 "--out", MODEL_PATH],
        "env": [
            version_env,
            {"name": "MLOPS_REGISTRY", "valueFrom": {"configMapKeyRef": {
                "name": _common.CONFIG_MAP, "key": "registry"}}},
            {"name": "AWS_ENDPOINT_URL", "valueFrom": {"configMapKeyRef": {
                "name": _common.CONFIG_MAP, "key": "aws-endpoint-url", "optional": True}}},
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
                "name": _common.S3_SECRET, "key": "aws-access-key-id", "optional": True}}},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
                "name": _common.S3_SECRET, "key": "aws-secret-access-key", "optional": True}}},
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        "securityContext": security,
        "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    grpc = serving.grpc_port
    server: dict[str, Any] = {
        "name": COMPONENT,
        "image": f"{image}:{tag}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": [
            {"name": "MODEL_PATH", "value": MODEL_PATH},
            {"name": "MAX_BATCH_SIZE", "value": str(serving.max_batch_size)},
            {"name": "MAX_BATCH_LATENCY_MS", "value": _number(serving.max_batch_latency_ms)},
            {"name": "WORKERS", "value": str(serving.workers)},
            version_env,
        ],
        "resources": {
            "requests": {"cpu": serving.cpu_request, "memory": serving.memory_request},
            "limits": {"cpu": serving.cpu_limit, "memory": serving.memory_limit},
        },
        # Loading and the warm-up prediction may take a while: the startup probe holds the liveness probe off.
        "startupProbe": _probe("/v1/health/live", period=5, failures=36),
        "livenessProbe": _probe("/v1/health/live", period=10, failures=3),
        "readinessProbe": _probe("/v1/health/ready", period=5, failures=2),
        "securityContext": security,
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if grpc is not None:  # the KServe V2 gRPC API beside HTTP; the probes stay on HTTP
        server["ports"].append({"name": GRPC_PORT_NAME, "containerPort": grpc, "protocol": "TCP"})
        server["env"].insert(4, {"name": "GRPC_PORT", "value": str(grpc)})
    labels = server_labels(model)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": server_name(model),
            "labels": labels,
            "annotations": _provenance(policy, "build_rollout"),
        },
        "spec": {
            "replicas": canary.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(model)},
            # A canary whose pods never become ready (a version that will not load) aborts instead of waiting.
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "progressDeadlineAbort": True,
            "strategy": {"canary": {
                "stableService": stable_service_name(model),
                "canaryService": canary_service_name(model),
                "canaryMetadata": {"labels": {ROLE_LABEL: "canary"}},
                "stableMetadata": {"labels": {ROLE_LABEL: "stable"}},
                # Full capacity throughout: canary pods come on top, none of the stable ones go first.
                "maxSurge": "25%",
                "maxUnavailable": 0,
                "steps": canary_steps(policy),
            }},
            "template": {
                "metadata": {
                    "labels": labels,
                    # For plain Prometheus setups that discover pods by annotation (manifests/README.md).
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "securityContext": _common.pod_security_context(),
                    "terminationGracePeriodSeconds": 30,
                    "initContainers": [loader],
                    "containers": [server],
                    "volumes": [
                        {"name": "model", "emptyDir": {"sizeLimit": serving.model_volume}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }


def canary_steps(policy: Policy) -> list[dict[str, Any]]:
    """Each policy step as setWeight, then pause{duration} when it has one, then the analysis when asked."""
    steps: list[dict[str, Any]] = []
    analysis = {"templates": [{"templateName": analysis_template_name(policy.model_name)}]}
    for step in policy.canary.steps:
        steps.append({"setWeight": step.set_weight})
        if step.pause:
            steps.append({"pause": {"duration": go_duration(step.pause)}})
        if step.analysis:
            steps.append({"analysis": analysis})
    return steps


def go_duration(text: str) -> str:
    """A policy duration as Go's time.ParseDuration reads it (Argo Rollouts does): '2d' -> '48h'."""
    seconds = duration_seconds(text)
    return f"{seconds // 3600}h" if text.endswith("d") else text


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": failures}


# --- Services -----------------------------------------------------------------------------------------


def build_service(policy: Policy) -> dict[str, Any]:
    """`<model>-server`: every server pod. With a replica-based canary this is the Service clients call:
    the stable and canary Services each select one ReplicaSet, so calling either would never split traffic."""
    return _service(policy, server_name(policy.model_name), "build_service")


def build_stable_service(policy: Policy) -> dict[str, Any]:
    """`<model>-server-stable`: Argo Rollouts adds the stable ReplicaSet's pod-template hash to its selector."""
    return _service(policy, stable_service_name(policy.model_name), "build_stable_service")


def build_canary_service(policy: Policy) -> dict[str, Any]:
    """`<model>-server-canary`: Argo Rollouts adds the canary ReplicaSet's pod-template hash to its selector."""
    return _service(policy, canary_service_name(policy.model_name), "build_canary_service")


def _service(policy: Policy, name: str, builder: str) -> dict[str, Any]:
    model = _kubernetes_model_name(policy)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": server_labels(model), "annotations": _provenance(policy, builder)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(model),
            "ports": _service_ports(policy),
        },
    }


def _service_ports(policy: Policy) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]
    grpc = policy.canary.serving.grpc_port
    if grpc is not None:
        # kubernetes.io/h2c: Kubernetes' own appProtocol for HTTP/2 without TLS, which gRPC is here.
        ports.append({"name": GRPC_PORT_NAME, "port": grpc, "targetPort": GRPC_PORT_NAME, "protocol": "TCP",
                      "appProtocol": "kubernetes.io/h2c"})
    return ports


# --- AnalysisTemplate ---------------------------------------------------------------------------------


def build_analysis_template(policy: Policy) -> dict[str, Any]:
    """`<model>-analysis`: the canary's p95 latency and error ratio against the policy's thresholds, and, when the
    policy sets canary.analysis.prediction_shift, the PSI between the canary's and the stable's served predictions.

    Each query returns nothing when the canary served fewer than `min_requests` requests in the window, and
    each condition needs a non-empty, non-NaN result: an idle or starting canary is Inconclusive (never an
    error from `result[0]` on an empty result, never a pass), and `inconclusiveLimit` decides when that
    pauses the Rollout for a person.
    """
    model = _kubernetes_model_name(policy)
    analysis = policy.canary.analysis
    latency_ok, latency_bad = conditions(analysis.latency_p95_ms)
    errors_ok, errors_bad = conditions(analysis.error_ratio)
    common = {
        "interval": go_duration(analysis.interval),
        "count": analysis.count,
        "failureLimit": analysis.failure_limit,
        "inconclusiveLimit": analysis.inconclusive_limit,
    }

    def prometheus(query: str) -> dict[str, Any]:
        return {"prometheus": {"address": analysis.prometheus_url, "query": query,
                               "timeout": QUERY_TIMEOUT_SECONDS}}

    metrics = [
        {"name": LATENCY_METRIC, **common, "successCondition": latency_ok, "failureCondition": latency_bad,
         "provider": prometheus(latency_query(policy))},
        {"name": ERROR_METRIC, **common, "successCondition": errors_ok, "failureCondition": errors_bad,
         "provider": prometheus(error_ratio_query(policy))},
    ]
    if analysis.prediction_shift is not None:  # the optional guard: canary vs stable served predictions (PSI)
        shift_ok, shift_bad = conditions(analysis.prediction_shift)
        metrics.append({"name": SHIFT_METRIC, **common, "successCondition": shift_ok, "failureCondition": shift_bad,
                        "provider": prometheus(prediction_shift_query(policy))})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": analysis_template_name(model),
            "labels": _common.labels(model, "canary-analysis"),
            "annotations": _provenance(policy, "build_analysis_template"),
        },
        "spec": {"metrics": metrics},
    }


# --- traffic routing (optional component) ---------------------------------------------------------------


def build_ingress(policy: Policy) -> dict[str, Any]:
    """`<model>-server`: the stable Ingress of an nginx canary. Argo Rollouts clones it into a canary Ingress
    (nginx.ingress.kubernetes.io/canary-weight) that sends the step's weight to `<model>-server-canary`."""
    model = _kubernetes_model_name(policy)
    backend = {"service": {"name": stable_service_name(model), "port": {"name": PORT_NAME}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": server_name(model),
            "labels": server_labels(model),
            "annotations": _provenance(policy, "build_ingress"),
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "rules": [{"http": {"paths": [
                # `/v1/models/<model>:predict` is not a path element below `/v1/models/<model>`, so Prefix would
                # not match it; ingress-nginx reads ImplementationSpecific as a plain string prefix.
                {"path": f"/v1/models/{model}", "pathType": "ImplementationSpecific", "backend": backend},
                {"path": f"/v2/models/{model}", "pathType": "Prefix", "backend": backend},
            ]}}],
        },
    }


def traffic_routing_patch(policy: Policy) -> list[dict[str, Any]]:
    """JSON patch turning the Rollout into an nginx canary: the weights move traffic, not only replicas."""
    return [{"op": "add", "path": "/spec/strategy/canary/trafficRouting",
             "value": {"nginx": {"stableIngress": server_name(policy.model_name)}}}]


# --- helpers --------------------------------------------------------------------------------------------


def _kubernetes_model_name(policy: Policy) -> str:
    model = policy.model_name
    if not model[0].isalpha():
        raise PolicyError(f"{policy.path}: model_name: a served model's Service names are DNS-1035 labels, "
                          f"so the name must start with a letter (got {model!r})")
    return model


def _provenance(policy: Policy, builder: str) -> dict[str, str]:
    return _common.provenance(policy.path.name, policy.sha256, f"workflows/serving.py:{builder}")
