"""The serving builders: the Rollout follows the policy's canary section, the pod is hardened and pins its
version through the annotation, and the AnalysisTemplate's queries and conditions judge only the canary and
leave too little traffic inconclusive (checked on Prometheus' own engine with `promtool test rules`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import Policy, load_policy
from tests.support.argo import VERDICTS, argo_verdict
from tests.support.policies import write_policy
from workflows import render, serving
from workflows._common import package_version
from workflows._schemas import Schemas


@pytest.fixture(scope="module")
def policy(policy_file: Path) -> Policy:
    return load_policy(policy_file)


@pytest.fixture(scope="module")
def rollout(policy: Policy) -> dict[str, Any]:
    return serving.build_rollout(policy)


@pytest.fixture(scope="module")
def analysis(policy: Policy) -> dict[str, Any]:
    return serving.build_analysis_template(policy)


def _pod(rollout: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = rollout["spec"]["template"]["spec"]
    return spec


def _container(rollout: dict[str, Any], name: str) -> dict[str, Any]:
    pod = _pod(rollout)
    return next(c for c in pod["containers"] + pod["initContainers"] if c["name"] == name)


# --- Rollout ------------------------------------------------------------------------------------------


def test_rollout_runs_the_policy_schedule_as_setweight_pause_analysis(rollout):
    template = {"analysis": {"templates": [{"templateName": "fraud-detection-analysis"}]}}
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 10}, {"pause": {"duration": "30m"}}, template,
        {"setWeight": 30}, {"pause": {"duration": "30m"}}, template,
        {"setWeight": 60}, {"pause": {"duration": "1h"}},
        {"setWeight": 100},
    ]
    assert rollout["spec"]["replicas"] == 5


def test_a_changed_policy_changes_the_schedule_replicas_and_server_size(policy_file, tmp_path):
    path = write_policy(tmp_path, policy_file, """
canary:
  replicas: 3
  steps:
    - {set_weight: 50, pause: 2d, analysis: true}
  analysis: {interval: 30s, count: 4, failure_limit: 2, inconclusive_limit: 3, min_requests: 7,
             prometheus_url: "http://prom.example:9090"}
  serving: {workers: 2, cpu_request: 500m, cpu_limit: 1, memory_request: 1Gi, memory_limit: 1Gi,
            model_volume: 500Mi, max_batch_latency_ms: 2.5}
""")
    policy = load_policy(path)
    rollout = serving.build_rollout(policy)
    assert rollout["metadata"]["name"] == "churn-server"
    assert rollout["spec"]["replicas"] == 3
    # Argo Rollouts parses durations with Go's time.ParseDuration, which has no `d`.
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 50}, {"pause": {"duration": "48h"}},
        {"analysis": {"templates": [{"templateName": "churn-analysis"}]}},
    ]
    server = _container(rollout, "server")
    assert server["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}}
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert (env["WORKERS"], env["MAX_BATCH_SIZE"], env["MAX_BATCH_LATENCY_MS"]) == ("2", "32", "2.5")
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in _pod(rollout)["volumes"]}["model"] == "500Mi"
    metrics = serving.build_analysis_template(policy)["spec"]["metrics"]
    for metric in metrics:
        assert (metric["interval"], metric["count"], metric["failureLimit"], metric["inconclusiveLimit"]) == (
            "30s", 4, 2, 3)
        assert metric["provider"]["prometheus"]["address"] == "http://prom.example:9090"
        # A 30s interval still measures over 1m: a rate needs a few scrapes.
        assert "[1m]" in metric["provider"]["prometheus"]["query"]
        assert ">= 7)" in metric["provider"]["prometheus"]["query"]


def test_server_pod_uses_the_seed_defaults_and_the_hardened_context(rollout):
    pod = _pod(rollout)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "mlops-server"
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["image"] == f"ghcr.io/argo-mlops/serve:{package_version()}"
    server = _container(rollout, "server")
    assert server["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                   "limits": {"cpu": "4", "memory": "6Gi"}}
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v1/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v1/health/live", "port": "http"}
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MODEL_PATH"] == "/models/current"
    assert (env["MAX_BATCH_SIZE"], env["MAX_BATCH_LATENCY_MS"], env["WORKERS"]) == ("32", "5", "4")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "2Gi"} and "emptyDir" in volumes["tmp"]


def test_init_container_fetches_the_version_pinned_by_the_pod_annotation(rollout):
    loader = _container(rollout, "model-loader")
    assert "command" not in loader  # the image's entrypoint: python -m steps.serve
    assert loader["args"] == ["fetch", "--model", "fraud-detection@$(MODEL_VERSION)", "--registry",
                              "$(MLOPS_REGISTRY)", "--out", "/models/current"]
    env = {e["name"]: e["valueFrom"] for e in loader["env"]}
    assert env["MODEL_VERSION"] == {"fieldRef": {"fieldPath": "metadata.annotations['model-version']"}}
    assert env["MLOPS_REGISTRY"] == {"configMapKeyRef": {"name": "mlops-config", "key": "registry"}}
    assert env["AWS_ENDPOINT_URL"]["configMapKeyRef"]["optional"] is True
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "mlops-s3", "key": "aws-access-key-id",
                                                         "optional": True}}
    # $(MODEL_VERSION) must be declared before the args use it, in the same container.
    assert [e["name"] for e in loader["env"]].index("MODEL_VERSION") == 0
    assert {"name": "model", "mountPath": "/models"} in loader["volumeMounts"]


def test_generated_rollout_leaves_the_version_annotation_to_the_rollout_step(rollout):
    """A generated value would be re-applied by every `kubectl apply -k` and roll the model back."""
    annotations = rollout["spec"]["template"]["metadata"].get("annotations", {})
    assert "model-version" not in annotations
    # Nor anything that changes with the policy file's text alone (a comment edit must not start a canary).
    assert not any(key.startswith("argo-mlops.io/") for key in annotations)


def test_canary_and_stable_pods_carry_the_role_label_and_their_own_services(rollout):
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["canaryMetadata"] == {"labels": {"role": "canary"}}
    assert canary["stableMetadata"] == {"labels": {"role": "stable"}}
    assert (canary["stableService"], canary["canaryService"]) == ("fraud-detection-server-stable",
                                                                  "fraud-detection-server-canary")


def test_services_select_the_server_pods_by_name_only_and_never_the_training_pods(policy, rollout):
    pod_labels = rollout["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app.kubernetes.io/name": "fraud-detection-server",
                          "app.kubernetes.io/component": "server", "app.kubernetes.io/part-of": "argo-mlops"}
    assert rollout["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "fraud-detection-server"}}
    training = render.render_documents(policy)["training-workflowtemplate.yaml"]
    training_pod_labels = training["spec"]["podMetadata"]["labels"]
    services = [serving.build_service(policy), serving.build_stable_service(policy),
                serving.build_canary_service(policy)]
    assert [s["metadata"]["name"] for s in services] == ["fraud-detection-server", "fraud-detection-server-stable",
                                                         "fraud-detection-server-canary"]
    for service in services:
        selector = service["spec"]["selector"]
        assert selector == {"app.kubernetes.io/name": "fraud-detection-server"}
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= training_pod_labels.items()
        assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]


def test_serving_documents_validate_against_the_crds_and_kubernetes(policy, schemas_dir):
    schemas = Schemas(schemas_dir)
    for doc in (serving.build_rollout(policy), serving.build_analysis_template(policy),
                serving.build_service(policy), serving.build_ingress(policy)):
        assert schemas.validate(doc) == [], doc["kind"]


def test_a_model_name_that_cannot_name_a_service_is_refused_at_compile(policy_file, tmp_path, capsys):
    path = write_policy(tmp_path, policy_file, "canary: {replicas: 2}", model="3d-fraud")
    assert render.main(["--policy", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model_name" in err and "start with a letter" in err and "3d-fraud" in err
    assert not (tmp_path / "out").exists()


# --- the analysis: queries and conditions --------------------------------------------------------------


def test_each_query_selects_the_models_canary_pods_and_requires_minimum_traffic(analysis):
    metrics = {m["name"]: m for m in analysis["spec"]["metrics"]}
    assert set(metrics) == {"latency-p95-ms", "error-ratio"}
    for metric in metrics.values():
        query = metric["provider"]["prometheus"]["query"]
        selectors = re.findall(r"\w+\{([^}]*)\}", query)
        assert selectors and all(s == 'model="fraud-detection", role="canary"' for s in selectors), query
        traffic = 'sum(increase(model_requests_total{model="fraud-detection", role="canary"}[5m])) >= 100'
        assert query.endswith(f"\nand on() ({traffic})\n"), query
        assert metric["provider"]["prometheus"]["address"] == "http://prometheus-operated.monitoring.svc:9090"
        assert (metric["interval"], metric["count"], metric["failureLimit"], metric["inconclusiveLimit"]) == (
            "5m", 3, 1, 1)
    latency = metrics["latency-p95-ms"]["provider"]["prometheus"]["query"]
    assert latency.startswith("histogram_quantile(0.95, sum by (le) (rate(model_inference_duration_seconds_bucket{")
    errors = metrics["error-ratio"]["provider"]["prometheus"]["query"]
    # A ratio of the two counters over the same window, not a bare rate of errors.
    numerator, denominator = errors.split("\n/ ", 1)
    assert "model_inference_errors_total" in numerator and "increase(" in numerator
    assert denominator.startswith("sum(increase(model_requests_total{")


@pytest.mark.parametrize(("metric", "result", "verdict"), VERDICTS,
                         ids=[f"{m}-{r or 'empty'}" for m, r, _ in VERDICTS])
def test_conditions_pass_fail_or_leave_a_measurement_inconclusive(analysis, metric, result, verdict):
    metrics = {m["name"]: m for m in analysis["spec"]["metrics"]}
    assert argo_verdict(metrics[metric], result) == verdict


# --- the queries on Prometheus' engine (promtool) ---------------------------------------------------------

C = {"model": "fraud-detection", "role": "canary", "code": "200"}
S = {"model": "fraud-detection", "role": "stable", "code": "200"}


def _series(name: str, labels: dict[str, str], values: str, le: str | None = None) -> dict[str, str]:
    labels = {k: v for k, v in labels.items() if not (k == "code" and not name.endswith("requests_total"))}
    if le is not None:
        labels["le"] = le
    return {"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def _histogram(labels: dict[str, str], per_scrape: int, upper: str) -> list[dict[str, str]]:
    """Every request of the pods takes between the bucket below `upper` and `upper` seconds."""
    out = []
    for le in ("0.05", "0.1", "0.25", "+Inf"):
        filled = le == "+Inf" or float(le) >= float(upper)
        out.append(_series("model_inference_duration_seconds_bucket", labels,
                           f"0+{per_scrape}x80" if filled else "0x80", le))
    return out


# name -> (input series, expected p95 ms or None for no result, expected error ratio or None)
SCENARIOS: dict[str, tuple[list[dict[str, str]], float | None, float | None]] = {
    # 40 requests/min on the canary, none failed (the server exports no error counter yet); the stable
    # pods are slow and failing, which must not count.
    "healthy-canary-beside-a-bad-stable": (
        [_series("model_requests_total", C, "0+10x80"), *_histogram(C, 10, "0.05"),
         _series("model_requests_total", S, "0+50x80"), *_histogram(S, 50, "+Inf"),
         _series("model_inference_errors_total", S, "0+25x80")],
        47.5, 0.0),
    "slow-failing-canary": (
        [_series("model_requests_total", C, "0+10x80"), *_histogram(C, 10, "0.25"),
         _series("model_inference_errors_total", C, "0+1x80")],
        242.5, 0.1),
    # 4 requests/min: 20 in the 5m window, fewer than min_requests (100).
    "idle-canary": (
        [_series("model_requests_total", C, "0+1x80"), *_histogram(C, 1, "0.25"),
         _series("model_inference_errors_total", C, "0+1x80")],
        None, None),
    "no-canary-yet": (
        [_series("model_requests_total", S, "0+50x80"), *_histogram(S, 50, "0.05")],
        None, None),
}
EXPECTED_VERDICTS = {
    "healthy-canary-beside-a-bad-stable": ("Successful", "Successful"),
    "slow-failing-canary": ("Failed", "Failed"),
    "idle-canary": ("Inconclusive", "Inconclusive"),
    "no-canary-yet": ("Inconclusive", "Inconclusive"),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`): PromQL checks skipped")
    return path


def test_queries_measure_only_the_canary_and_return_nothing_at_low_traffic(analysis, promtool, tmp_path):
    """The rendered queries on Prometheus' own engine (promtool's rule unit tests), then the rendered
    conditions on their results: what Argo Rollouts would decide in each scenario."""
    metrics = {m["name"]: m for m in analysis["spec"]["metrics"]}
    tests = []
    for series, p95, ratio in SCENARIOS.values():
        checks = []
        for metric, expected in (("latency-p95-ms", p95), ("error-ratio", ratio)):
            # Rounded to 1e-3: PromQL's float arithmetic (47.500000000000001) is exact-compared by promtool.
            expr = f"round(({metrics[metric]['provider']['prometheus']['query']}), 0.001)"
            samples = [] if expected is None else [{"labels": "{}", "value": expected}]
            checks.append({"expr": expr, "eval_time": "15m", "exp_samples": samples})
        tests.append({"interval": "15s", "input_series": series, "promql_expr_test": checks})
    path = tmp_path / "analysis-test.yaml"
    path.write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, (_, p95, ratio) in SCENARIOS.items():
        verdicts = tuple(argo_verdict(metrics[m], [] if v is None else [v])
                         for m, v in (("latency-p95-ms", p95), ("error-ratio", ratio)))
        assert verdicts == EXPECTED_VERDICTS[name], name


def test_a_policy_without_canary_steps_gets_the_seeds_schedule(policy_file, tmp_path):
    path = write_policy(tmp_path, policy_file, "canary: {replicas: 4}")
    steps = serving.build_rollout(load_policy(path))["spec"]["strategy"]["canary"]["steps"]
    assert [s.get("setWeight") or next(iter(s)) for s in steps] == [
        10, "pause", "analysis", 30, "pause", "analysis", 60, "pause", 100]
