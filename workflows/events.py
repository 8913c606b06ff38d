"""The retraining loop's Argo resources: the hourly drift CronWorkflow and the retrain Sensor of each model, and
the one webhook EventSource they share (manifests/base). EventSource and Sensor are plain dicts (STYLE.md).

The Sensor maps the webhook body to the training Workflow's parameters exactly as DESIGN.md's table says;
`mlops events serve` reads that mapping back from the rendered Sensor (`sensor_mapping`), never a copy.
"""

from __future__ import annotations

from typing import Any

from steps._core.policy import Policy
from steps._core.values import duration_seconds
from workflows import _common, training

EVENT_SOURCE = "mlops-webhook"
EVENT_NAME = "drift"
WEBHOOK_PORT = "12000"  # a string: the EventSource schema says so
WEBHOOK_ENDPOINT = "/drift"
WEBHOOK_SECRET = "mlops-webhook-token"
WEBHOOK_SECRET_KEY = "token"
# The in-cluster address of the EventSource's Service (Argo Events names it `<eventsource>-eventsource-svc`).
WEBHOOK_URL = f"http://{EVENT_SOURCE}-eventsource-svc:{WEBHOOK_PORT}{WEBHOOK_ENDPOINT}"
SENSOR_SERVICE_ACCOUNT = "mlops-sensor"
# The `app.kubernetes.io/component` of the EventSource's and the Sensors' pods (manifests/base's NetworkPolicies).
EVENT_SOURCE_COMPONENT = "events"
SENSOR_COMPONENT = "sensor"
DRIFT_SERVICE_ACCOUNT = "mlops-drift"
DEPENDENCY = "drift-alert"
SCHEDULE_TRIGGER = "schedule"  # the trigger label of the drift CronWorkflow's runs
REASON = _common.DRIFT_REASON
TOKEN_MOUNT = "/etc/mlops/webhook"
DRIFT_IMAGE_TAG = _common.package_version()
# Body key -> training parameter (DESIGN.md, "Drift and retraining").
BODY_TO_PARAMETER: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("reason", "reason"),
    ("drifted_features", "drifted-features"),
    ("idempotency_key", "idempotency-key"),
    ("production_version", "baseline-version"),
)
# Kept on the Workflow as annotations (DESIGN.md: "kept in the drift report and the Workflow's annotations").
BODY_TO_ANNOTATION: tuple[tuple[str, str], ...] = (
    ("drift_share", f"{_common.ANNOTATION_PREFIX}/drift-share"),
    ("samples", f"{_common.ANNOTATION_PREFIX}/drift-samples"),
    ("window", f"{_common.ANNOTATION_PREFIX}/drift-window"),
)


# The drift CronWorkflow's own failure counter, which Argo's controller exports with its prefix as
# argo_workflows_mlops_drift_check_failed_total{model, phase} (the DriftCheckFailing alert reads it).
DRIFT_FAILED_METRIC = "mlops_drift_check_failed_total"


def cron_name(model: str) -> str:
    return f"{model}-drift"


def sensor_name(model: str) -> str:
    return f"{model}-retrain"


def workflow_name_prefix(model: str) -> str:
    return f"{model}-retrain-"


def build_cron_workflow(policy: Policy, image: str = _common.DEFAULT_IMAGE) -> dict[str, Any]:
    """The `<model>-drift` CronWorkflow: the drift step on the policy's schedule, one run at a time."""
    model = policy.model_name
    labels = _common.labels(model, "drift")
    window = duration_seconds(policy.drift.window)
    env: list[dict[str, Any]] = [
        {"name": "MLOPS_ACTOR", "value": "argo:{{workflow.name}}"},
        {"name": "MLOPS_REGISTRY", "valueFrom": {"configMapKeyRef": {"name": _common.CONFIG_MAP, "key": "registry"}}},
        # Drift scores go to a Pushgateway when mlops-config names one (optional key `pushgateway-url`).
        {"name": "MLOPS_PUSHGATEWAY_URL", "valueFrom": {"configMapKeyRef": {
            "name": _common.CONFIG_MAP, "key": "pushgateway-url", "optional": True}}},
        {"name": "AWS_ENDPOINT_URL", "valueFrom": {"configMapKeyRef": {
            "name": _common.CONFIG_MAP, "key": "aws-endpoint-url", "optional": True}}},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
            "name": _common.S3_SECRET, "key": "aws-access-key-id", "optional": True}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
            "name": _common.S3_SECRET, "key": "aws-secret-access-key", "optional": True}}},
    ]
    container = {
        "image": f"{image}:{{{{workflow.parameters.image-tag}}}}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "steps.drift"],
        "args": [
            "--model", "{{workflow.parameters.model}}",
            "--policy", f"{_common.POLICY_MOUNT}/{model}.yaml",
            "--prometheus", "{{workflow.parameters.prometheus-url}}",
            "--report-dir", "/tmp/drift-report",
            "--verdict-out", "/tmp/drift-verdict",
            "--webhook", "{{workflow.parameters.webhook-url}}",
            "--token-file", f"{TOKEN_MOUNT}/{WEBHOOK_SECRET_KEY}",
        ],
        "env": env,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": _common.container_security_context(),
        "volumeMounts": [
            {"name": "policy", "mountPath": _common.POLICY_MOUNT, "readOnly": True},
            {"name": "webhook-token", "mountPath": TOKEN_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    check = {
        "name": "drift-check",
        "container": container,
        # Stored as it is (not a .tgz), so the Argo UI's artifact viewer opens the report's index.html.
        "outputs": {
            "artifacts": [{"name": "drift-report", "path": "/tmp/drift-report", "archive": {"none": {}},
                           # a key ending in `/`: the UI opens a folder only then (training.report_folder)
                           "s3": {"key": f"{_common.REPORT_KEY_PREFIX}/drift-report/"}}],
            # The run's outputs panel: what the check found and did, the report's verdict line.
            "parameters": [{"name": "verdict", "valueFrom": {"path": "/tmp/drift-verdict", "default": "unknown"},
                            "description": "what the check found and did (the drift report's verdict)"}],
        },
        "activeDeadlineSeconds": 900,
        "retryStrategy": {
            "limit": "3",
            "expression": training.RETRY_EXPRESSION,
            "backoff": {"duration": "30s", "factor": "2", "maxDuration": "10m"},
        },
    }
    drift = policy.drift
    title = f"**{model}** · drift check"
    # Lines, not one long string: YAML keeps a multi-line string as a block and never folds it by the name's length.
    description = (f"Scheduled drift check of {model}: {drift.method}, window {drift.window}, schedule "
                   f"`{drift.schedule}`.\n\nCalls the retrain webhook when the policy's rule fires; "
                   "the drift-report artifact is the report.")
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": cron_name(model),
            "labels": labels,
            "annotations": {
                _common.TITLE_ANNOTATION: title,
                "workflows.argoproj.io/description": f"Check {model} for drift ({policy.drift.method}, window "
                f"{policy.drift.window}) and call the retrain webhook when the policy's rule fires.",
                **_common.provenance(policy.path.name, policy.sha256, "workflows/events.py:build_cron_workflow"),
            },
        },
        "spec": {
            "schedules": [policy.drift.schedule],
            "concurrencyPolicy": "Forbid",
            # A check that could not start within its window would read a window that has moved on: skip it.
            "startingDeadlineSeconds": max(60, window // 2),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "workflowSpec": {
                "entrypoint": "drift-check",
                "serviceAccountName": DRIFT_SERVICE_ACCOUNT,
                "arguments": {"parameters": [
                    {"name": "model", "value": model},
                    {"name": "prometheus-url", "value": policy.canary.analysis.prometheus_url},
                    {"name": "webhook-url", "value": WEBHOOK_URL},
                    {"name": "image-tag", "value": _common.package_version()},
                ]},
                "artifactRepositoryRef": {"configMap": _common.ARTIFACT_REPOSITORIES,
                                          "key": _common.ARTIFACT_REPOSITORY_KEY},
                "activeDeadlineSeconds": 1800,
                "podGC": {"strategy": "OnPodSuccess"},
                "ttlStrategy": {"secondsAfterSuccess": 86400, "secondsAfterFailure": 7 * 86400},
                "securityContext": _common.pod_security_context(),
                # Each run's title, description and trigger in the Argo UI and `argo list -l`: the controller
                # applies workflowMetadata when the run starts (updateWorkflowMetadata), as for a training run.
                "workflowMetadata": {
                    "labels": {**labels, _common.TRIGGER_LABEL: SCHEDULE_TRIGGER},
                    "annotations": {_common.TITLE_ANNOTATION: title,
                                    _common.DESCRIPTION_ANNOTATION: description},
                },
                "podMetadata": {"labels": labels},
                "metrics": {"prometheus": [drift_failure_metric(model)]},
                "volumes": [
                    {"name": "policy", "configMap": {"name": _common.policy_configmap_name(model)}},
                    {"name": "webhook-token", "secret": {"secretName": WEBHOOK_SECRET,
                                                          "items": [{"key": WEBHOOK_SECRET_KEY,
                                                                     "path": WEBHOOK_SECRET_KEY}]}},
                    {"name": "tmp", "emptyDir": {}},
                ],
                "templates": [check],
            },
        },
    }


def drift_failure_metric(model: str) -> dict[str, Any]:
    """A Workflow-level counter, +1 each time a drift check ends Failed or Error (after its retries).

    Argo emits Workflow-level metrics once the Workflow is fulfilled, with `workflow.status` set to its final phase
    (Succeeded, Failed or Error); custom metrics keep their name, with the controller's `argo_workflows_` prefix
    and no `_total` added. The help text is the same for every model: Argo refuses a second help for one name.
    """
    return {
        "name": DRIFT_FAILED_METRIC,
        "help": "Drift checks (the <model>-drift CronWorkflow's runs) that ended Failed or Error",
        "labels": [{"key": "model", "value": model}, {"key": "phase", "value": "{{workflow.status}}"}],
        "when": "{{workflow.status}} != Succeeded",
        "counter": {"value": "1"},
    }


def pod_template(labels: dict[str, str], service_account: str | None = None) -> dict[str, Any]:
    """The `spec.template` of an EventSource or Sensor: the pod hardening of every other generated pod, and labels
    that the NetworkPolicies select (Argo Events adds its own, `eventsource-name` / `sensor-name`, beside them).

    No volume for /tmp: both controllers mount an emptyDir `tmp` there themselves (it holds the Sensor's
    workflow file for `argo submit` and the leader election's log), which is what lets the root be read-only;
    a second volume of that name would make the Deployment they create invalid.
    """
    template: dict[str, Any] = {
        "metadata": {"labels": dict(labels)},
        "securityContext": _common.pod_security_context(),
        # The controller copies this onto the pod's only container, `main`.
        "container": {"securityContext": _common.container_security_context()},
    }
    if service_account:
        template["serviceAccountName"] = service_account
    return template


def build_event_source() -> dict[str, Any]:
    """The one webhook EventSource (manifests/base): POST /drift on port 12000, bearer token from a Secret."""
    labels = _common.labels(_common.PART_OF, EVENT_SOURCE_COMPONENT)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": EVENT_SOURCE, "labels": labels},
        "spec": {
            "template": pod_template(labels),
            "service": {"ports": [{"port": int(WEBHOOK_PORT), "targetPort": int(WEBHOOK_PORT)}]},
            "webhook": {EVENT_NAME: {
                "port": WEBHOOK_PORT,
                "endpoint": WEBHOOK_ENDPOINT,
                "method": "POST",
                "authSecret": {"name": WEBHOOK_SECRET, "key": WEBHOOK_SECRET_KEY},
                # The drift report's body is small; anything large is not ours.
                "maxPayloadSize": 65536,
            }},
        },
    }


def build_sensor(policy: Policy) -> dict[str, Any]:
    """The `<model>-retrain` Sensor: a drift alert for this model submits its training WorkflowTemplate."""
    model = policy.model_name
    parameters = [{"name": param, "value": ""} for _, param in BODY_TO_PARAMETER]
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            # Replaced by `<model>-retrain-<idempotency_key>`: a second submit of one episode is AlreadyExists.
            "name": f"{workflow_name_prefix(model)}unnamed",
            # The template's workflowMetadata gives it its title, description and outputs, and labels it
            # trigger=drift from its reason too; labelled here as well, so it is found by label from its creation.
            "labels": {**_common.labels(model, "training"), _common.TRIGGER_LABEL: "drift"},
            "annotations": {key: "" for _, key in BODY_TO_ANNOTATION},
        },
        "spec": {
            "workflowTemplateRef": {"name": training.template_name(policy)},
            "arguments": {"parameters": parameters},
        },
    }
    mapping = [
        {"src": {"dependencyName": DEPENDENCY, "dataKey": f"body.{key}"},
         "dest": f"spec.arguments.parameters.{i}.value"}
        for i, (key, _) in enumerate(BODY_TO_PARAMETER)
    ]
    mapping.append({"src": {"dependencyName": DEPENDENCY,
                            "dataTemplate": f"{workflow_name_prefix(model)}{{{{ .Input.body.idempotency_key }}}}"},
                    "dest": "metadata.name"})
    mapping += [
        {"src": {"dependencyName": DEPENDENCY, "dataKey": f"body.{key}"},
         "dest": "metadata.annotations." + annotation.replace(".", "\\.")}
        for key, annotation in BODY_TO_ANNOTATION
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Sensor",
        "metadata": {
            "name": sensor_name(model),
            "labels": _common.labels(model, SENSOR_COMPONENT),
            "annotations": _common.provenance(policy.path.name, policy.sha256, "workflows/events.py:build_sensor"),
        },
        "spec": {
            "template": pod_template(_common.labels(model, SENSOR_COMPONENT), SENSOR_SERVICE_ACCOUNT),
            "dependencies": [{
                "name": DEPENDENCY,
                "eventSourceName": EVENT_SOURCE,
                "eventName": EVENT_NAME,
                "filters": {"data": [
                    # String filters are regular expressions that may match anywhere: anchor them, or
                    # `fraud-detection` would also take the alerts of `fraud-detection-eu`.
                    {"path": "body.reason", "type": "string", "value": [f"^{REASON}$"]},
                    {"path": "body.model", "type": "string", "value": [f"^{model}$"]},
                ]},
            }],
            "triggers": [{
                "template": {
                    "name": "submit-training",
                    "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": workflow},
                        "parameters": mapping,
                    },
                },
                # The cooldown already makes one episode one alert; this bounds a misbehaving sender.
                "rateLimit": {"unit": "Hour", "requestsPerUnit": 6},
                "retryStrategy": {"steps": 3, "duration": "10s", "factor": 2},
            }],
        },
    }
