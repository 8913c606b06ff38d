"""The PrometheusRule `mlops-alerts`: promtool's own rule unit tests (series in, alerts out, with their labels and
rendered annotations) for every alert, firing and quiet, on two policies with different thresholds; the official
PrometheusRule CRD schema; and the drift schedule's period that the staleness alert derives from the cron.

Skips, saying why, without promtool (Debian package prometheus) or ../shared/schemas."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import Policy, load_policy
from tests.support.paths import POLICY
from workflows._schemas import Schemas
from workflows.monitoring.alerts import (
    build_prometheus_rule,
    rule_expressions,
    rule_file,
    runbook_url,
    schedule_period_seconds,
)

PROMTOOL = shutil.which("promtool")
M = "fraud-detection"  # the reference policy: error_ratio 0.01, p95 100 ms, min_requests 100, share 0.3, hourly
M2 = "fraud-detection-eu"  # a name M's selectors must not catch; looser thresholds, a check every 2 hours
ALERTS = {"ModelServerErrorRatio", "ModelServerLatencyP95", "ModelServerNoTraffic", "ModelServerRestarting",
          "ModelDriftShareHigh", "DriftCheckFailing", "DriftCheckStale", "TrainingWorkflowFailing",
          "TrainingCandidateRejected"}


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> list[Policy]:
    raw = yaml.safe_load(POLICY.read_text())
    raw["model_name"] = M2
    raw["canary"]["analysis"].update(error_ratio=0.1, latency_p95_ms=300, min_requests=10)
    raw["drift"].update(drift_share=0.5, schedule="30 */2 * * *")
    folder = tmp_path_factory.mktemp("alert-gates")
    (folder / f"{M2}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return [load_policy(POLICY), load_policy(folder / f"{M2}.yaml")]


@pytest.fixture(scope="module")
def rule(policies: list[Policy]) -> dict[str, Any]:
    return build_prometheus_rule(policies)


def _alert(rule: dict[str, Any], name: str, model: str = M) -> dict[str, Any]:
    group = next(g for g in rule["spec"]["groups"] if g["name"] == f"argo-mlops.{model}")
    found: dict[str, Any] = next(r for r in group["rules"] if r["alert"] == name)
    return found


_VALUE = re.compile(r"\{\{ \$value[^}]*\}\}")
_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
_QUERY = re.compile(r"\{\{ with .*? \| query \}\}.*?\{\{ end \}\}")


def expected(rule: dict[str, Any], name: str, labels: dict[str, str], value: str, queried: str = "",
             model: str = M) -> dict[str, Any]:
    """promtool's exp_alerts entry for the expression's result `labels`: those and the rule's labels, and the
    annotations as Prometheus renders them ($labels are the expression's, never the rule's), `value` standing for
    the formatted $value (written out by each case: what a person reads)."""
    alert = _alert(rule, name, model)

    def render(text: str) -> str:
        return _LABEL.sub(lambda m: labels.get(m.group(1), ""), _QUERY.sub(queried, _VALUE.sub(value, text)))

    return {"exp_labels": {**labels, **alert["labels"]},
            "exp_annotations": {k: render(v) for k, v in alert["annotations"].items()}}


def run_promtool(rule: dict[str, Any], tests: list[dict[str, Any]], folder: Path) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package prometheus; CI installs it)")
    (folder / "rules.yml").write_text(yaml.safe_dump(rule_file(rule), sort_keys=False))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(folder / "rules.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (folder / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                      "tests": tests}, sort_keys=False))
    result = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def case(series: dict[str, str], checks: list[tuple[str, str, list[dict[str, Any]]]],
         interval: str = "1m") -> dict[str, Any]:
    """One promtool test: input series (selector -> values) and (eval_time, alertname, expected alerts) checks."""
    return {"interval": interval, "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks]}


def both(series: dict[str, str]) -> dict[str, str]:
    """The same series for both models."""
    return {**series, **{s.replace(f'model="{M}"', f'model="{M2}"'): v for s, v in series.items()}}


# --- the servers ---------------------------------------------------------------------------------------------------


def test_error_ratio_pages_above_the_policys_bound_with_enough_traffic(rule: dict[str, Any], tmp_path: Path) -> None:
    busy = both({f'model_requests_total{{model="{M}", code="200"}}': "0+95x40",
                 f'model_requests_total{{model="{M}", code="500"}}': "0+5x40"})  # 5% errors, 100 a minute
    quiet = both({f'model_requests_total{{model="{M}", code="200"}}': "0+12x40",
                  f'model_requests_total{{model="{M}", code="500"}}': "0+3x40"})  # 20% errors, 15 a minute
    fired = expected(rule, "ModelServerErrorRatio", {"model": M}, "5%")
    assert fired["exp_annotations"]["summary"] == f"{M}: 5% of requests fail with a server error"
    run_promtool(rule, [
        # 5% > 0.01 pages M (after `for`), not M2 (its bound is 0.1).
        case(busy, [("3m", "ModelServerErrorRatio", []), ("15m", "ModelServerErrorRatio", [fired])]),
        # 75 requests in 5m, under M's min_requests (100): 20% of them is not judged; M2 (min 10) is paged.
        case(quiet, [("15m", "ModelServerErrorRatio",
                      [expected(rule, "ModelServerErrorRatio", {"model": M2}, "20%", model=M2)])]),
    ], tmp_path)


def test_p95_latency_alert_follows_each_policys_bound(rule: dict[str, Any], tmp_path: Path) -> None:
    bucket = f'model_inference_duration_seconds_bucket{{model="{M}", protocol="http", le="%s"}}'
    slow = both({bucket % "0.1": "0+0x40", bucket % "0.25": "0+100x40", bucket % "+Inf": "0+100x40",
                 f'model_requests_total{{model="{M}", code="200"}}': "0+100x40"})  # every request 100-250 ms
    fired = expected(rule, "ModelServerLatencyP95", {"model": M}, "242.5")
    fired["exp_annotations"]["summary"] = f"{M}: p95 latency 242 ms"
    run_promtool(rule, [case(slow, [("15m", "ModelServerLatencyP95", [fired])])], tmp_path)  # M2: 300 ms, quiet


def test_no_traffic_fires_for_a_model_in_use_at_this_hour_yesterday(rule: dict[str, Any], tmp_path: Path) -> None:
    requests = f'model_requests_total{{model="{M}", code="200"}}'
    fired = expected(rule, "ModelServerNoTraffic", {"model": M}, "6000")
    assert fired["exp_annotations"]["summary"] == f"{M}: no requests for 15m"
    run_promtool(rule, [
        # 100 a minute for 26 h, then nothing: silent 15m (+ `for` 5m) and busy at this hour yesterday.
        case({requests: "0+100x1560"}, [("26h12m", "ModelServerNoTraffic", []),
                                         ("26h30m", "ModelServerNoTraffic", [fired])]),
        # Still serving: nothing to say.
        case({requests: "0+100x1620"}, [("26h30m", "ModelServerNoTraffic", [])]),
        # Idle at this hour yesterday (a model used by day, quiet at night): no alarm tonight.
        case({requests: "_x180 0+100x1380"}, [("26h30m", "ModelServerNoTraffic", [])]),
    ], tmp_path)


def test_restarts_of_the_models_server_containers_alert_per_pod(rule: dict[str, Any], tmp_path: Path) -> None:
    restarts = 'kube_pod_container_status_restarts_total{namespace="mlops", pod="%s", container="%s"}'
    pod, other_model = f"{M}-server-5d8f7c9b4-x2x7q", f"{M2}-server-7f6d5c4b3-abcde"
    series = {restarts % (pod, "server"): "0 0 0 1x30",
              restarts % (other_model, "model-loader"): "0 0 0 1x30",  # not the server container
              restarts % (f"{M}-training-x-register-123", "main"): "0 0 0 1x30"}  # not a server pod
    fired = expected(rule, "ModelServerRestarting", {"namespace": "mlops", "pod": pod, "container": "server"}, "1")
    assert fired["exp_annotations"]["summary"] == f"{M}: server pod {pod} restarted"
    run_promtool(rule, [case(series, [("10m", "ModelServerRestarting", [fired]),
                                      ("25m", "ModelServerRestarting", [])])], tmp_path)


# --- drift ---------------------------------------------------------------------------------------------------------


def test_drift_share_alert_uses_the_policys_share_and_min_samples(rule: dict[str, Any], tmp_path: Path) -> None:
    pushed = 'mlops_drift_%s{job="mlops-drift", model="%s", model_version="3"}'
    series = {pushed % ("share", M): "0.4x30", pushed % ("samples", M): "20000x30",
              pushed % ("share", M2): "0.4x30", pushed % ("samples", M2): "20000x30"}
    few = {pushed % ("share", M): "0.9x30", pushed % ("samples", M): "500x30"}
    fired = expected(rule, "ModelDriftShareHigh", {"model": M}, "40%")
    assert fired["exp_annotations"]["summary"] == f"{M}: 40% of the features drifted"
    run_promtool(rule, [case(series, [("5m", "ModelDriftShareHigh", [fired])]),  # M2's share is 0.5
                        case(few, [("5m", "ModelDriftShareHigh", [])])], tmp_path)  # under min_samples 10000


def test_drift_check_stale_after_three_schedule_periods(rule: dict[str, Any], tmp_path: Path) -> None:
    last_run = 'mlops_drift_last_run_timestamp_seconds{job="mlops-drift", model="%s"}'
    stopped = {last_run % M: "0x300", last_run % M2: "0x300"}  # both last completed at t=0
    fired = expected(rule, "DriftCheckStale", {"model": M}, "4h 0m 0s")
    assert fired["exp_annotations"]["summary"] == f"{M}: no drift check completed for 4h 0m 0s"
    run_promtool(rule, [
        # Hourly for M: stale past 3h. Every 2 hours for M2: not before 6h.
        case(stopped, [("2h", "DriftCheckStale", []), ("4h", "DriftCheckStale", [fired])]),
        case({last_run % M: "0+60x300"}, [("4h", "DriftCheckStale", [])]),  # pushed every minute
    ], tmp_path)


def test_a_failed_drift_check_alerts_from_argos_counter(rule: dict[str, Any], tmp_path: Path) -> None:
    counter = f'argo_workflows_mlops_drift_check_failed_total{{model="{M}", phase="%s"}}'
    fired = expected(rule, "DriftCheckFailing", {"model": M}, "1")
    assert fired["exp_annotations"]["summary"] == f"{M}: the drift check failed in the last 1h"
    run_promtool(rule, [
        # Argo creates the counter at its first failure, with the value 1.
        case({counter % "Failed": "_x10 1x120"}, [("5m", "DriftCheckFailing", []),
                                                  ("20m", "DriftCheckFailing", [fired]),
                                                  ("1h15m", "DriftCheckFailing", [])]),
        # A later failure of a series that already existed.
        case({counter % "Error": "1x70 2x60"}, [("1h", "DriftCheckFailing", []),
                                                ("1h20m", "DriftCheckFailing", [fired])]),
    ], tmp_path)


# --- training ------------------------------------------------------------------------------------------------------


def test_a_failed_training_run_alerts_unless_its_candidate_was_rejected(rule: dict[str, Any], tmp_path: Path) -> None:
    triggered = f'argo_workflows_workflowtemplate_triggered_total{{name="{M}-training", namespace="mlops", phase="%s"}}'
    pushed = f'mlops_training_%s{{job="mlops-training", model="{M}"}}'
    failing = expected(rule, "TrainingWorkflowFailing", {"name": f"{M}-training"}, "1")
    assert failing["exp_annotations"]["summary"] == f"{M}: a training run failed in the last 1h"
    rejected = expected(rule, "TrainingCandidateRejected", {"model": M}, "0", queried="7")
    assert rejected["exp_annotations"]["summary"] == f"{M}: the last training's candidate v7 was rejected"
    run_promtool(rule, [
        case({triggered % "Succeeded": "0 1x80", triggered % "Failed": "_x10 1x80"},
             [("5m", "TrainingWorkflowFailing", []), ("20m", "TrainingWorkflowFailing", [failing]),
              ("20m", "TrainingCandidateRejected", []), ("1h20m", "TrainingWorkflowFailing", [])]),
        # The run failed because register recorded a rejected candidate (pushed at t=10m, epoch 600): that is
        # TrainingCandidateRejected's news, for a day.
        case({triggered % "Failed": "_x10 1x80", pushed % "passed": "_x10 0x1500",
              pushed % "last_run_timestamp_seconds": "_x10 600x1500", pushed % "registered_version": "_x10 7x1500"},
             [("20m", "TrainingWorkflowFailing", []), ("20m", "TrainingCandidateRejected", [rejected]),
              ("1d1h", "TrainingCandidateRejected", [])]),
        case({pushed % "passed": "1x30", pushed % "last_run_timestamp_seconds": "0x30"},
             [("10m", "TrainingCandidateRejected", [])]),
    ], tmp_path)


# --- the resource --------------------------------------------------------------------------------------------------


def test_every_model_has_every_alert_with_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    assert [g["name"] for g in rule["spec"]["groups"]] == [f"argo-mlops.{M}", f"argo-mlops.{M2}"]
    for group in rule["spec"]["groups"]:
        assert {r["alert"] for r in group["rules"]} == ALERTS
        for r in group["rules"]:
            assert r["labels"]["severity"] in {"critical", "warning", "info"}
            assert {"summary", "description", "runbook_url"} <= set(r["annotations"])
            assert r["annotations"]["runbook_url"] == runbook_url(r["alert"])
            assert r["annotations"]["runbook_url"].endswith(f"README.md#{r['alert'].lower()}")
    assert len(rule_expressions(rule)) == 2 * len(ALERTS)
    assert all(f'model="{M}"' in e or f'name="{M}-training"' in e or f"pod=~\"{M}-server-" in e
               for e in rule_expressions({"spec": {"groups": rule["spec"]["groups"][:1]}}))


def test_the_prometheusrule_validates_against_the_official_crd(rule: dict[str, Any], schemas_dir: Path) -> None:
    assert Schemas(schemas_dir).validate(rule) == []
    broken = yaml.safe_load(yaml.safe_dump(rule))
    broken["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    issues = Schemas(schemas_dir).validate(broken)
    assert [i.path for i in issues] == ["spec.groups[0].rules[0].for"]


@pytest.mark.parametrize(("schedule", "seconds"), [
    ("0 * * * *", 3600), ("*/15 * * * *", 900), ("* * * * *", 60), ("30 */6 * * *", 6 * 3600),
    ("0 3 * * *", 86400), ("0 3 * * 1", 7 * 86400),
    ("0 9-17 * * 1-5", 86400), ("*/7 * * * *", 86400), ("0 0 1 * *", 86400), ("@hourly", 86400),
], ids=["hourly", "every-15m", "every-minute", "every-6h", "daily", "weekly", "office-hours", "uneven-step",
        "monthly", "macro"])
def test_the_drift_schedules_period_from_simple_crons_else_a_day(schedule: str, seconds: int) -> None:
    assert schedule_period_seconds(schedule) == seconds
