"""The retraining loop's resources (workflows/events.py): the drift CronWorkflow, the webhook EventSource and the
retrain Sensor, as rendered for each model (`mlops events serve` is tests/workflows/local/test_events.py)."""

from __future__ import annotations

import yaml

from steps._core.policy import load_policy
from tests.support.paths import ROOT
from tests.workflows.test_training import assert_valid_labels, run_as_argo_starts_it
from workflows import _common, events, render
from workflows._schemas import Schemas
from workflows.local.sensors import Sensors


def test_rendered_cron_event_source_and_sensor_validate_against_the_schemas(policy, other_policy, schemas_dir):
    schemas = Schemas(schemas_dir)
    for p in (policy, load_policy(other_policy)):
        for doc in (events.build_cron_workflow(p), events.build_sensor(p)):
            assert schemas.validate(doc) == [], doc["kind"]
    assert schemas.validate(events.build_event_source()) == []


def test_cron_workflow_runs_the_drift_step_on_the_policy_schedule_one_at_a_time(other_policy):
    cron = events.build_cron_workflow(load_policy(other_policy))
    spec = cron["spec"]
    assert cron["metadata"]["name"] == "churn-drift"
    assert spec["schedules"] == ["*/30 * * * *"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600  # half the 2h window
    wf = spec["workflowSpec"]
    assert wf["serviceAccountName"] == "mlops-drift"
    c = wf["templates"][0]["container"]
    assert c["command"] == ["python", "-m", "steps.drift"]
    args = dict(zip(c["args"][::2], c["args"][1::2], strict=True))
    assert args["--policy"] == "/etc/mlops/policy/churn.yaml"
    # The token is a mounted file from the Secret, never a value on the command line.
    assert args["--token-file"] == "/etc/mlops/webhook/token"
    secret = next(v for v in wf["volumes"] if v["name"] == "webhook-token")["secret"]
    assert secret["secretName"] == "mlops-webhook-token" and secret["items"][0]["key"] == "token"
    env = {e["name"]: e for e in c["env"]}
    assert env["MLOPS_REGISTRY"]["valueFrom"]["configMapKeyRef"] == {"name": "mlops-config", "key": "registry"}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "mlops-s3"
    assert wf["templates"][0]["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 3"


def test_event_source_is_the_authenticated_webhook_and_base_ships_it():
    source = events.build_event_source()
    hook = source["spec"]["webhook"]["drift"]
    assert hook["port"] == "12000" and hook["endpoint"] == "/drift" and hook["method"] == "POST"
    assert hook["authSecret"] == {"name": "mlops-webhook-token", "key": "token"}
    shipped = ROOT / "manifests" / "base" / "mlops-webhook-eventsource.yaml"
    assert yaml.safe_load(shipped.read_text()) == source, "base/ is stale: regenerate it from build_event_source"
    base = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    assert shipped.name in base["resources"]


def test_sensor_filters_on_the_body_and_maps_it_to_the_training_parameters_as_designed(other_policy):
    sensor = events.build_sensor(load_policy(other_policy))
    assert sensor["metadata"]["name"] == "churn-retrain"
    assert sensor["spec"]["template"]["serviceAccountName"] == "mlops-sensor"
    dependency = sensor["spec"]["dependencies"][0]
    assert dependency["eventSourceName"] == "mlops-webhook" and dependency["eventName"] == "drift"
    filters = {f["path"]: f["value"] for f in dependency["filters"]["data"]}
    assert filters == {"body.reason": ["^automated_drift_detection$"], "body.model": ["^churn$"]}
    trigger = sensor["spec"]["triggers"][0]
    assert trigger["rateLimit"]["requestsPerUnit"] >= 1
    argo = trigger["template"]["argoWorkflow"]
    assert argo["operation"] == "submit"
    resource = argo["source"]["resource"]
    assert resource["kind"] == "Workflow"
    assert resource["spec"]["workflowTemplateRef"] == {"name": "churn-training"}
    # Each body key lands in the parameter of DESIGN.md's table, and the name comes from the idempotency key.
    params = [p["name"] for p in resource["spec"]["arguments"]["parameters"]]
    mapped = {}
    for parameter in argo["parameters"]:
        src, dest = parameter["src"], parameter["dest"]
        if dest.startswith("spec.arguments.parameters."):
            mapped[src["dataKey"]] = params[int(dest.split(".")[3])]
        if dest == "metadata.name":
            assert src["dataTemplate"] == "churn-retrain-{{ .Input.body.idempotency_key }}"
    assert mapped == {"body.model": "model", "body.reason": "reason", "body.drifted_features": "drifted-features",
                      "body.idempotency_key": "idempotency-key", "body.production_version": "baseline-version"}
    # Every mapped parameter is one the training template declares.
    from workflows.training import workflow_parameters

    assert set(params) <= {p.name for p in workflow_parameters(load_policy(other_policy))}


def test_render_adds_cron_and_sensor_to_each_model(policy):
    docs = render.render_documents(policy)
    assert docs["drift-cronworkflow.yaml"]["kind"] == "CronWorkflow"
    assert docs["retrain-sensor.yaml"]["kind"] == "Sensor"


def test_a_drift_retrain_reads_as_one_in_the_argo_ui(policy, tmp_path):
    """The Workflow the Sensor submits for a drift alert (its parameters mapped from the webhook body as Argo Events
    maps them), as Argo starts it from the training template: the title names the drifted features, the description
    the baseline, the trigger label is drift; the Sensor's own annotations stay."""
    body = {"model": "fraud-detection", "reason": events.REASON, "drifted_features": ["amount", "merchant_category"],
            "idempotency_key": "7f3a9c", "production_version": 3, "drift_share": 0.4, "samples": 12000,
            "window": "1h"}
    decision = Sensors([events.build_sensor(policy)]).handle({"body": body})
    assert decision.status == "submitted" and decision.workflow is not None
    result = run_as_argo_starts_it(decision.workflow, {"dataset": "/nonexistent/data.csv"}, tmp_path)
    assert result.annotations[_common.TITLE_ANNOTATION] == \
        "**fraud-detection** · retrain on drift in amount, merchant_category"
    description = result.annotations[_common.DESCRIPTION_ANNOTATION]
    assert description.startswith("Trigger: **drift**, the features amount, merchant_category drifted\n\n"
                                  "Baseline: version 3 · ")
    assert result.annotations["argo-mlops.io/drift-share"] == "0.4"
    assert result.labels[_common.TRIGGER_LABEL] == "drift"
    assert result.labels["app.kubernetes.io/name"] == "fraud-detection"
    assert_valid_labels(result.labels)


def test_drift_checks_have_a_title_a_schedule_trigger_and_an_unarchived_report(other_policy):
    cron = events.build_cron_workflow(load_policy(other_policy))
    metadata = cron["spec"]["workflowSpec"]["workflowMetadata"]
    assert metadata["labels"][_common.TRIGGER_LABEL] == events.SCHEDULE_TRIGGER == "schedule"
    assert metadata["annotations"][_common.TITLE_ANNOTATION] == "**churn** · drift check"
    assert "`*/30 * * * *`" in metadata["annotations"][_common.DESCRIPTION_ANNOTATION]
    assert "window 2h" in metadata["annotations"][_common.DESCRIPTION_ANNOTATION]
    assert cron["metadata"]["annotations"][_common.TITLE_ANNOTATION] == "**churn** · drift check"  # the cron list
    assert_valid_labels(metadata["labels"])
    [check] = cron["spec"]["workflowSpec"]["templates"]
    # Stored as it is under a key ending in `/`: the Argo UI previews a folder (its index.html) only then.
    assert check["outputs"]["artifacts"] == [{
        "name": "drift-report", "path": "/tmp/drift-report", "archive": {"none": {}},
        "s3": {"key": "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}/drift-report/"}}]
    # The run's outputs panel says what the check found and did: the report's verdict line, from the step's file.
    [verdict] = check["outputs"]["parameters"]
    assert verdict["name"] == "verdict" and verdict["valueFrom"] == {"path": "/tmp/drift-verdict", "default": "unknown"}
    args = check["container"]["args"]
    assert args[args.index("--verdict-out") + 1] == verdict["valueFrom"]["path"]
