"""The PrometheusRule `mlops-alerts` (prometheus-operator): one rule group per model, thresholds from its policy,
for what a person should hear about: a server failing, slow, silent or restarting; drift beyond the policy's share;
a drift check that fails or stopped running; a training run that failed or a candidate the gates rejected.

Every alert carries `severity` and `model` labels, a summary and a description (templated with $labels and
$value; $labels are the expression's own, so where it has no `model` the name is written in) and a runbook_url
at its README section (`#### <AlertName>` under "Operating it"). Metric names: the servers' /metrics, the
Pushgateway's jobs mlops-drift and mlops-training, Argo's controller, kube-state-metrics.
"""

from __future__ import annotations

import re
from typing import Any

from steps._canary.analysis import number
from steps._core.policy import Policy
from workflows import _common
from workflows.events import DRIFT_FAILED_METRIC, cron_name
from workflows.training import template_name

NAME = "mlops-alerts"
SOURCE = "workflows/monitoring/alerts.py:build_prometheus_rule"
RUNBOOK = "https://github.com/argo-mlops/argo-mlops/blob/main/README.md#{anchor}"
CRITICAL, WARNING, INFO = "critical", "warning", "info"

# The servers' alerts judge a 5m rate window, the canary analysis' default interval: long enough for a few
# scrapes (the PodMonitor scrapes every 15s), short enough that a bad rollout is seen within minutes.
RATE_WINDOW = "5m"
# ...and must hold for this long too: a blip of one bad window does not page anyone.
SERVER_FOR = "5m"
# No traffic: "in use at this hour yesterday" (at least min_requests in that hour: a rate at which 15 silent
# minutes are no accident), "nothing in the last 15m". A model used only by day is not silent at night by mistake.
QUIET_WINDOW = "15m"
USUAL_WINDOW, USUAL_OFFSET = "1h", "1d"
# Restarts counted over this window (kube-state-metrics' counter per container).
RESTART_WINDOW = "15m"
# A training run that failed (or a candidate that was rejected) is news for this long; then it resolves.
TRAINING_WINDOW_SECONDS = 3600
REJECTED_NEWS_SECONDS = 86400
# The drift check's schedule period when its cron is not one of the simple forms: a day, so an unusual schedule
# (weekdays only, a list of hours) can be late by its own design without a false alarm.
DEFAULT_PERIOD_SECONDS = 86400
# Stale after this many periods, and never sooner than an hour: one run may take its 30m deadline, and with
# concurrencyPolicy Forbid the runs it overlaps are skipped.
STALE_PERIODS = 3
MIN_STALE_SECONDS = 3600
# The drift check's failure counter, as Argo's controller exports it (its prefix, no `_total` added).
DRIFT_FAILED = f"argo_workflows_{DRIFT_FAILED_METRIC}"
TRAINING_TRIGGERED = "argo_workflows_workflowtemplate_triggered_total"

_STEP = re.compile(r"^\*/([1-9][0-9]*)$")
_NUMBER = re.compile(r"^[0-9]+$")


def build_prometheus_rule(policies: list[Policy]) -> dict[str, Any]:
    """The PrometheusRule with one group `argo-mlops.<model>` per policy, in the policies' order."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": NAME,
            "labels": _common.labels(_common.PART_OF, "monitoring"),
            "annotations": {
                f"{_common.ANNOTATION_PREFIX}/generator": f"mlops compile (argo-mlops {_common.package_version()})",
                f"{_common.ANNOTATION_PREFIX}/source": SOURCE,
                f"{_common.ANNOTATION_PREFIX}/policy-files": ", ".join(sorted(p.path.name for p in policies)),
            },
        },
        "spec": {"groups": [rule_group(policy) for policy in policies]},
    }


def rule_group(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    rules = [
        _error_ratio(policy), _latency(policy), _no_traffic(policy), _restarting(policy),
        _drift_share(policy), _drift_failing(policy), _drift_stale(policy),
        _training_failing(policy), _candidate_rejected(policy),
    ]
    return {"name": f"{_common.PART_OF}.{model}", "rules": rules}


def rule_expressions(rule: dict[str, Any]) -> list[str]:
    """Every alert's expr in the PrometheusRule, group by group."""
    return [str(r["expr"]) for group in rule["spec"]["groups"] for r in group["rules"]]


def rule_file(rule: dict[str, Any]) -> dict[str, Any]:
    """The rules as a plain Prometheus rule file (`rule_files:`, promtool): the PrometheusRule's spec.groups."""
    return {"groups": rule["spec"]["groups"]}


# --- the servers -------------------------------------------------------------------------------------------------


def _requests(model: str, window: str, where: str = "", offset: str = "") -> str:
    shift = f" offset {offset}" if offset else ""
    return f'sum by (model) (increase(model_requests_total{{model="{model}"{where}}}[{window}]{shift}))'


def _enough_traffic(policy: Policy) -> str:
    return f"{_requests(policy.model_name, RATE_WINDOW)} >= {policy.canary.analysis.min_requests}"


def _error_ratio(policy: Policy) -> dict[str, Any]:
    model, bound = policy.model_name, policy.canary.analysis.error_ratio
    errors = _requests(model, RATE_WINDOW, ', code=~"5.."')
    expr = (f"(\n  {errors}\n/ {_requests(model, RATE_WINDOW)}\n) > "
            f"{number(bound)}\nand on (model) ({_enough_traffic(policy)})\n")
    return _alert(
        "ModelServerErrorRatio", policy, expr, SERVER_FOR, CRITICAL,
        "{{ $labels.model }}: {{ $value | humanizePercentage }} of requests fail with a server error",
        f"{{{{ $value | humanizePercentage }}}} of the requests to {{{{ $labels.model }}}} over the last {RATE_WINDOW} "
        f"got a 5xx (gRPC INTERNAL/UNAVAILABLE count as 500/503), above the policy's canary.analysis.error_ratio "
        f"{number(bound)}, for {SERVER_FOR}. Clients see these failures.")


def _latency(policy: Policy) -> dict[str, Any]:
    model, bound = policy.model_name, policy.canary.analysis.latency_p95_ms
    expr = (f"histogram_quantile(0.95, sum by (model, le) (rate(model_inference_duration_seconds_bucket"
            f'{{model="{model}"}}[{RATE_WINDOW}]))) * 1000\n> {number(bound)}\n'
            f"and on (model) ({_enough_traffic(policy)})\n")
    return _alert(
        "ModelServerLatencyP95", policy, expr, SERVER_FOR, WARNING,
        "{{ $labels.model }}: p95 latency {{ $value | printf \"%.0f\" }} ms",
        f"The 95th percentile of {{{{ $labels.model }}}}'s request latency over the last {RATE_WINDOW} is "
        f"{{{{ $value | printf \"%.1f\" }}}} ms, above the policy's canary.analysis.latency_p95_ms {number(bound)} ms, "
        f"for {SERVER_FOR}.")


def _no_traffic(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    usual = _requests(model, USUAL_WINDOW, offset=USUAL_OFFSET)
    expr = (f"{usual} >= {policy.canary.analysis.min_requests}\n"
            f"unless on (model) ({_requests(model, QUIET_WINDOW)} > 0)\n")
    # `for`: right after a Prometheus restart the 15m window holds too few samples to show the traffic.
    return _alert(
        "ModelServerNoTraffic", policy, expr, "5m", WARNING,
        "{{ $labels.model }}: no requests for " + QUIET_WINDOW,
        f"{{{{ $labels.model }}}} served no request in the last {QUIET_WINDOW}, but {{{{ $value | printf \"%.0f\" }}}} "
        f"in the same hour yesterday. Its clients, its Service or all of its server pods may be down.")


def _restarting(policy: Policy) -> dict[str, Any]:
    pods = f'container="server", pod=~"{policy.model_name}-server-[a-z0-9]+-[a-z0-9]+"'
    expr = (f"max by (namespace, pod, container) (increase(kube_pod_container_status_restarts_total{{{pods}}}"
            f"[{RESTART_WINDOW}])) > 0\n")
    return _alert(
        "ModelServerRestarting", policy, expr, "0m", WARNING,
        f"{policy.model_name}: server pod {{{{ $labels.pod }}}} restarted",
        f"The server container of {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} restarted "
        f"{{{{ $value | printf \"%.0f\" }}}} time(s) in the last {RESTART_WINDOW} (kube-state-metrics): out of "
        "memory, a failed liveness probe, or a crash at start (a model it cannot load).")


# --- drift -------------------------------------------------------------------------------------------------------


def _drift_share(policy: Policy) -> dict[str, Any]:
    model, drift = policy.model_name, policy.drift
    expr = (f'max by (model) (mlops_drift_share{{model="{model}"}}) > {number(drift.drift_share)}\n'
            f'and on (model) max by (model) (mlops_drift_samples{{model="{model}"}}) >= {drift.min_samples}\n')
    return _alert(
        "ModelDriftShareHigh", policy, expr, "0m", WARNING,
        "{{ $labels.model }}: {{ $value | humanizePercentage }} of the features drifted",
        f"The last drift check of {{{{ $labels.model }}}} found {{{{ $value | humanizePercentage }}}} of its features "
        f"drifted ({drift.method} above {number(drift.threshold)}), above the policy's drift.drift_share "
        f"{number(drift.drift_share)}, on at least drift.min_samples {drift.min_samples} samples. The check asks for "
        f"a retraining (cooldown {drift.cooldown}); this says the live data moved.")


def schedule_period_seconds(schedule: str) -> int:
    """The time between two runs of a simple 5-field cron: `*/N * * * *` (N minutes), `M * * * *` (an hour),
    `M */N * * *` (N hours), `M H * * *` (a day), `M H * * D` (a week); anything else DEFAULT_PERIOD_SECONDS."""
    fields = schedule.split()
    if len(fields) != 5:
        return DEFAULT_PERIOD_SECONDS
    minute, hour, day, month, weekday = fields
    if (day, month) != ("*", "*"):
        return DEFAULT_PERIOD_SECONDS
    minute_step = 1 if minute == "*" else int(m.group(1)) if (m := _STEP.match(minute)) else None
    if minute_step is not None:
        return minute_step * 60 if (hour, weekday) == ("*", "*") and 60 % minute_step == 0 else DEFAULT_PERIOD_SECONDS
    if not _NUMBER.match(minute):
        return DEFAULT_PERIOD_SECONDS
    if weekday != "*":
        return 7 * 86400 if _NUMBER.match(hour) and _NUMBER.match(weekday) else DEFAULT_PERIOD_SECONDS
    if hour == "*":
        return 3600
    if (m := _STEP.match(hour)) and 24 % int(m.group(1)) == 0:
        return int(m.group(1)) * 3600
    return 86400 if _NUMBER.match(hour) else DEFAULT_PERIOD_SECONDS


def stale_after_seconds(policy: Policy) -> int:
    return max(STALE_PERIODS * schedule_period_seconds(policy.drift.schedule), MIN_STALE_SECONDS)


def _counter_increased(selector: str, by: str, window: str) -> str:
    """Non-empty when the counter grew within `window`, including when its series first appeared within it (Argo
    creates a counter at its first increment, with the value 1: increase() alone cannot see that one)."""
    return (f"sum by ({by}) (increase({selector}[{window}])) > 0\n"
            f"or sum by ({by}) ({selector} unless {selector} offset {window})\n")


def _drift_failing(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    # One period: about until the next check, which resolves it by succeeding (or keeps it by failing again).
    window = duration(max(schedule_period_seconds(policy.drift.schedule), 3600))
    expr = _counter_increased(f'{DRIFT_FAILED}{{model="{model}"}}', "model", window)
    return _alert(
        "DriftCheckFailing", policy, expr, "0m", WARNING,
        f"{{{{ $labels.model }}}}: the drift check failed in the last {window}",
        f"The CronWorkflow {cron_name(model)} ended Failed or Error {{{{ $value | printf \"%.0f\" }}}} time(s) in "
        f"the last {window} (after its retries): no drift was measured, so no retraining can start.")


def _drift_stale(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    stale = stale_after_seconds(policy)
    expr = f'time() - max by (model) (mlops_drift_last_run_timestamp_seconds{{model="{model}"}}) > {stale}\n'
    return _alert(
        "DriftCheckStale", policy, expr, "0m", WARNING,
        "{{ $labels.model }}: no drift check completed for {{ $value | humanizeDuration }}",
        f"The last completed drift check of {{{{ $labels.model }}}} pushed its result "
        f"{{{{ $value | humanizeDuration }}}} ago, more than {duration(stale)} ({STALE_PERIODS} periods of its "
        f"schedule {policy.drift.schedule!r}, at least an hour). Drift goes unnoticed until a check completes again.")


# --- training ----------------------------------------------------------------------------------------------------


def _recent_training(model: str, seconds: int) -> str:
    return f'time() - max by (model) (mlops_training_last_run_timestamp_seconds{{model="{model}"}}) < {seconds}'


def _training_failing(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    window = duration(TRAINING_WINDOW_SECONDS)
    selector = f'{TRAINING_TRIGGERED}{{name="{template_name(policy)}", phase=~"Failed|Error"}}'
    # A rejected candidate fails the Workflow too (register exits 1): TrainingCandidateRejected says that one.
    rejected = (f'(max by (model) (mlops_training_passed{{model="{model}"}}) == 0\n'
                f" and on (model) {_recent_training(model, TRAINING_WINDOW_SECONDS)})")
    expr = f"(\n{_counter_increased(selector, 'name', window)})\nunless on () {rejected}\n"
    return _alert(
        "TrainingWorkflowFailing", policy, expr, "0m", WARNING,
        f"{model}: a training run failed in the last {window}",
        f"A Workflow from the WorkflowTemplate {{{{ $labels.name }}}} ended Failed or Error in the last {window}, and "
        "not because the gates rejected its candidate: the model was not retrained (a drift retrain is not retried "
        "until the drift cooldown ends).")


def _candidate_rejected(policy: Policy) -> dict[str, Any]:
    model = policy.model_name
    expr = (f'max by (model) (mlops_training_passed{{model="{model}"}}) == 0\n'
            f"and on (model) {_recent_training(model, REJECTED_NEWS_SECONDS)}\n")
    version = ('{{ with printf "max(mlops_training_registered_version{model=%q})" $labels.model | query }}'
               '{{ . | first | value | printf "%.0f" }}{{ end }}')
    return _alert(
        "TrainingCandidateRejected", policy, expr, "0m", INFO,
        f"{{{{ $labels.model }}}}: the last training's candidate v{version} was rejected",
        f"The quality gates rejected candidate v{version} of {{{{ $labels.model }}}} (registered as rejected); "
        "production keeps serving the current version. `mlops registry show` and the gate report say which gates "
        "failed.")


# --- plumbing ----------------------------------------------------------------------------------------------------


def duration(seconds: int) -> str:
    """Seconds as a Prometheus duration: 3600 -> '1h', 86400 -> '1d', 90 -> '90s'."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def runbook_url(alert: str) -> str:
    return RUNBOOK.format(anchor=alert.lower())


def _alert(name: str, policy: Policy, expr: str, for_: str, severity: str, summary: str,
           description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "model": policy.model_name},
        "annotations": {"summary": summary, "description": description, "runbook_url": runbook_url(name)},
    }
