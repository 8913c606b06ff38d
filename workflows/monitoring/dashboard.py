"""The Grafana dashboard of the model servers and the loop, built with grafana-foundation-sdk: one dashboard for
every model (a `model` variable), shipped as a ConfigMap that kube-prometheus-stack's Grafana sidecar loads.

Rows, top to bottom: traffic and errors by version, role and protocol; latency quantiles and batch sizes; the canary
analysis (the AnalysisTemplate's own PromQL); drift (the drift check's Pushgateway metrics); the last training run's
gate verdicts (Pushgateway) and the training workflows (Argo's metrics); the server pods. A policy's bound (canary
p95 and error ratio, prediction shift, drift threshold and share) is a dashed series on its panel, drawn only while
that policy's model is selected; when every policy agrees, the panel's Grafana thresholds carry the value too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from steps._canary import analysis
from steps._core.policy import Policy
from workflows import _common, events

UID = "argo-mlops"
TITLE = "argo-mlops: model servers and the loop"
CONFIGMAP = "mlops-grafana-dashboard"
DATA_KEY = "argo-mlops.json"
SIDECAR_LABEL = "grafana_dashboard"  # kube-prometheus-stack's default sidecar.dashboards.label
SOURCE = "workflows/monitoring/dashboard.py:build_dashboard_configmap"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# A plain Prometheus has no Grafana: what dashboard_queries puts in place of $__rate_interval by default.
DEFAULT_RATE_INTERVAL = "1m"
M = 'model="$model"'
_BOUND_COLOR = "red"
_Builder = cogbuilder.Builder[model.Panel]


# --- PromQL ------------------------------------------------------------------------------------------------------


def _selected(name: str) -> str:
    """Non-empty only while the dashboard's `model` is `name`: a policy's own queries and bounds hide otherwise."""
    return (f'label_replace(vector(1), "model", "$model", "", "") '
            f'and on(model) label_replace(vector(1), "model", "{name}", "", "")')


def _for_model(expr: str, name: str) -> str:
    return f"({expr.strip()})\nand on() ({_selected(name)})"


def _rate(metric: str, by: str, where: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{M}{where}}}[{RATE}]))"


def _quantile(q: float, metric: str, by: str, scale: str = "") -> str:
    return f"histogram_quantile({q}, {_rate(metric + '_bucket', 'le, ' + by)}){scale}"


# --- panels ------------------------------------------------------------------------------------------------------

Bound = Callable[[Policy], float | None]


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           table_format: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).legend_format(legend or "__auto")
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _refs() -> Iterator[str]:
    return iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _graph(title: str, description: str, unit: str, queries: list[tuple[str, str]], width: int = 12,
           height: int = 8, policies: list[Policy] | None = None, bound: Bound | None = None,
           bound_label: str = "bound {value}") -> timeseries.Panel:
    """A time series panel: each (expr, legend) a target; with `bound`, each policy's value as a dashed red series
    shown only while its model is selected, named by `bound_label` ({value}: the value)."""
    refs = _refs()
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .span(width).height(height).fill_opacity(10).line_width(1)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True)))
    for expr, legend in queries:
        panel = panel.with_target(_query(expr, legend, next(refs)))
    if bound is None or policies is None:
        return panel
    values = {p.model_name: bound(p) for p in policies}
    for name, value in sorted(values.items()):
        if value is None:
            continue
        ref = next(refs)
        shown = analysis.number(value)
        legend = f"{bound_label.format(value=shown)} ({name} policy)"
        panel = (panel.with_target(_query(_for_model(f"vector({shown})", name), legend, ref))
                 .override_by_query(ref, _bound_style()))
    agreed = {v for v in values.values() if v is not None}
    if len(agreed) == 1:  # one policy (or all alike): the bound is the panel's threshold too
        panel = panel.thresholds(_thresholds(agreed.pop()))
    return panel


def _bound_style() -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": _BOUND_COLOR}),
            model.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            model.DynamicConfigValue("custom.fillOpacity", 0)]


def _thresholds(value: float) -> db.ThresholdsConfig:
    return (db.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="green"), model.Threshold(value=value, color="red")]))


def _stat(title: str, description: str, expr: str, unit: str = units.Short, width: int = 4,
          mapping: dict[str, tuple[str, str]] | None = None, red_from: float | None = None) -> stat.Panel:
    """A single value (the latest), optionally mapped to words and colours ({"1": ("staged", "green")}) or red
    from `red_from` on."""
    coloured = bool(mapping) or red_from is not None
    panel = (stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .span(width).height(4).graph_mode(common.BigValueGraphMode.NONE)
             .color_mode(common.BigValueColorMode.BACKGROUND if coloured else common.BigValueColorMode.NONE)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
             .with_target(_query(expr, instant=True)))
    if mapping:
        panel = panel.mappings([_value_map(mapping)])
    if red_from is not None:
        panel = panel.thresholds(_thresholds(red_from))
    return panel


def _value_map(mapping: dict[str, tuple[str, str]]) -> model.ValueMap:
    return model.ValueMap(options={value: model.ValueMappingResult(text=text, color=color, index=i)
                                   for i, (value, (text, color)) in enumerate(mapping.items())})


# --- rows --------------------------------------------------------------------------------------------------------


def _traffic(policies: list[Policy]) -> list[_Builder]:
    by = "model_version, role, protocol"
    legend = "v{{model_version}} {{role}} {{protocol}}"
    errors = f"sum by (model_version, role) (rate(model_inference_errors_total{{{M}}}[{RATE}]))"
    requests = _rate("model_requests_total", "model_version, role")
    return [
        _graph("Requests/s by version, role and protocol",
               "Every predict or infer request (HTTP and gRPC), whatever its answer.", units.RequestsPerSecond,
               [(_rate("model_requests_total", by), legend)]),
        _graph("Refused and failed requests/s by status",
               "4xx: the client's mistake (the contract names the field); 5xx: the server's failures. gRPC "
               "statuses count as HTTP codes (INVALID_ARGUMENT 400, INTERNAL 500).", units.RequestsPerSecond,
               [(_rate("model_requests_total", by + ", code", ', code=~"[45].."'), legend + " {{code}}")]),
        _graph("Error ratio (server errors / requests)",
               "model_inference_errors_total over model_requests_total, by version and role; the dashed line is "
               "the policy's canary.analysis.error_ratio.", units.PercentUnit,
               [(f"({errors} or {requests} * 0)\n/ {requests}", "v{{model_version}} {{role}}")],
               policies=policies, bound=lambda p: p.canary.analysis.error_ratio, bound_label="bound {value}"),
        _graph("Rows scored/s", "model_inference_rows_total: rows through the model (a request may carry many).",
               units.RowsPerSecond, [(_rate("model_inference_rows_total", "model_version, role"),
                                      "v{{model_version}} {{role}}")]),
    ]


def _latency(policies: list[Policy]) -> list[_Builder]:
    by = "model_version, role"
    latency = [(_quantile(q, "model_inference_duration_seconds", by, " * 1000"), f"p{round(q * 100)} "
                "v{{model_version}} {{role}}") for q in (0.5, 0.95, 0.99)]
    batches = [(_quantile(q, "model_batch_size", by), f"p{round(q * 100)} v{{{{model_version}}}} {{{{role}}}}")
               for q in (0.5, 0.95)]
    mean = (f"{_rate('model_batch_size_sum', by)}\n/ {_rate('model_batch_size_count', by)}",
            "mean v{{model_version}} {{role}}")
    return [
        _graph("Latency p50 / p95 / p99", "model_inference_duration_seconds, from a request's last byte to its "
               "answer; the dashed line is the policy's canary p95 bound (canary.analysis.latency_p95_ms).",
               units.Milliseconds, latency, width=16, policies=policies,
               bound=lambda p: p.canary.analysis.latency_p95_ms, bound_label="p95 bound {value} ms"),
        _graph("Batch size (rows per model call)", "model_batch_size after micro-batching (MAX_BATCH_SIZE, "
               "MAX_BATCH_LATENCY_MS): 1 at low load, larger under concurrency.", units.Short,
               [*batches, mean], width=8),
    ]


def _canary(policies: list[Policy]) -> list[_Builder]:
    """The AnalysisTemplate's three queries, verbatim per policy (its window, its selectors), each shown only
    while its model is selected: what Argo Rollouts judges the canary on, as it judges it."""
    def per_policy(query: Callable[[Policy], str], what: str) -> list[tuple[str, str]]:
        return [(_for_model(query(p), p.model_name), f"{what} over {analysis.window(p)} (AnalysisTemplate)")
                for p in policies]

    note = (" Empty while the canary served fewer than canary.analysis.min_requests requests in the window: "
            "the analysis then counts the measurement as inconclusive.")
    return [
        _graph("Canary p95 latency (analysis)", "The canary pods' p95, as the AnalysisTemplate measures it." + note,
               units.Milliseconds, per_policy(analysis.latency_query, "canary p95"), width=8, policies=policies,
               bound=lambda p: p.canary.analysis.latency_p95_ms, bound_label="bound {value} ms"),
        _graph("Canary error ratio (analysis)", "The canary pods' server errors / requests." + note,
               units.PercentUnit, per_policy(analysis.error_ratio_query, "canary error ratio"), width=8,
               policies=policies, bound=lambda p: p.canary.analysis.error_ratio, bound_label="bound {value}"),
        _graph("Prediction shift, canary vs stable (PSI)",
               "The PSI between the canary's and the stable's predictions on bins both versions share; a bound "
               "only when the policy sets canary.analysis.prediction_shift (the guard)." + note, units.Short,
               per_policy(analysis.prediction_shift_query, "PSI"), width=8, policies=policies,
               bound=lambda p: p.canary.analysis.prediction_shift, bound_label="guard {value}"),
    ]


def _drift(policies: list[Policy]) -> list[_Builder]:
    pushed = "Pushed by the drift check (job mlops-drift) after each completed check."
    yes_no = {"1": ("yes", "red"), "0": ("no", "green")}
    return [
        _graph("Feature drift score by feature", f"mlops_drift_score of each feature. {pushed} The dashed line is "
               "the policy's drift.threshold: a feature above it counts as drifted.", units.Short,
               [(f"max by (feature, method) (mlops_drift_score{{{M}}})", "{{feature}}")], policies=policies,
               bound=lambda p: p.drift.threshold, bound_label="drifted above {value}"),
        _graph("Share of drifted features", f"mlops_drift_share. {pushed} Above the policy's drift.drift_share "
               "(dashed), with enough samples, the check asks for a retrain.", units.PercentUnit,
               [(f"max by (model_version) (mlops_drift_share{{{M}}})", "share (v{{model_version}})")], width=6,
               policies=policies, bound=lambda p: p.drift.drift_share, bound_label="retrain above {value}"),
        _graph("Prediction and target drift", f"The model's outputs' own drift scores. {pushed}", units.Short,
               [(f"max by (method) (mlops_prediction_drift_score{{{M}}})", "prediction ({{method}})"),
                (f"max by (method) (mlops_target_drift_score{{{M}}})", "target ({{method}})")], width=6),
        _stat("Since the last drift check", "Age of mlops_drift_last_run_timestamp_seconds: a stale check means "
              "the drift CronWorkflow stopped completing.",
              f"time() - max(mlops_drift_last_run_timestamp_seconds{{{M}}})", units.Seconds, width=5),
        _stat("Samples in the last check", "mlops_drift_samples: the check waits for drift.min_samples.",
              f"max(mlops_drift_samples{{{M}}})", width=5),
        _stat("Retrain due", "mlops_drift_retrain: the last check asked for a retrain.",
              f"max(mlops_drift_retrain{{{M}}})", width=4, mapping=yes_no),
        _stat("Prediction drift detected", "mlops_prediction_drift_detected of the last check.",
              f"max(mlops_prediction_drift_detected{{{M}}})", width=5, mapping=yes_no),
        _stat("Drift checks failed (24h)", "Runs of the drift CronWorkflow that ended Failed or Error (Argo's "
              f"argo_workflows_{events.DRIFT_FAILED_METRIC}, counted from a run's first failure: none is 0).",
              f"sum(increase(argo_workflows_{events.DRIFT_FAILED_METRIC}{{{M}}}[24h])) or vector(0)", width=5,
              red_from=1),
    ]


def _training() -> list[_Builder]:
    pushed = "Pushed by the register step (job mlops-training) after each training run."
    gates = (table.Panel().title("Gate verdicts of the last training run")
             .description(f"mlops_gate_passed (pass/fail), mlops_gate_value (the measured value) and "
                          f"mlops_gate_skipped, by gate. {pushed}")
             .datasource(DATASOURCE).span(12).height(8).align(common.FieldTextAlignment.AUTO).inspect(False)
             .with_target(_query(f"max by (gate) (mlops_gate_passed{{{M}}})", ref="A", instant=True,
                                 table_format=True))
             .with_target(_query(f"max by (gate) (mlops_gate_value{{{M}}})", ref="B", instant=True,
                                 table_format=True))
             .with_target(_query(f"max by (gate) (mlops_gate_skipped{{{M}}})", ref="C", instant=True,
                                 table_format=True))
             .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(model.DataTransformerConfig(id_val="organize", options={
                 "excludeByName": {"Time": True},
                 "renameByName": {"Value #A": "verdict", "Value #B": "value", "Value #C": "skipped"}}))
             .override_by_name("verdict", [
                 model.DynamicConfigValue("mappings", [_value_map({"1": ("pass", "green"), "0": ("fail", "red")})
                                                       .to_json()]),
                 model.DynamicConfigValue("custom.cellOptions", {"type": "color-background"})])
             .override_by_name("skipped", [
                 model.DynamicConfigValue("mappings", [_value_map({"1": ("skipped", "text")}).to_json()])]))
    runs = 'argo_workflows_workflowtemplate_triggered_total{name="${model}-training"}'
    return [
        _stat("Last candidate", f"mlops_training_passed: staged (every gate passed) or rejected. {pushed}",
              f"max(mlops_training_passed{{{M}}})", width=8,
              mapping={"1": ("staged", "green"), "0": ("rejected", "red")}),
        _stat("Registered version", f"mlops_training_registered_version. {pushed}",
              f"max(mlops_training_registered_version{{{M}}})", units.NoUnit, width=8),
        _stat("Since the last training run", f"Age of mlops_training_last_run_timestamp_seconds. {pushed}",
              f"time() - max(mlops_training_last_run_timestamp_seconds{{{M}}})", units.Seconds, width=8),
        gates,
        _graph("Training runs by phase (24h)", "Argo's argo_workflows_workflowtemplate_triggered_total for "
               "<model>-training: runs submitted from the template in the last 24 h, by phase (Failed and Error "
               "are failures).", units.Short, [(f"sum by (phase) (increase({runs}[24h]))", "{{phase}}")]),
    ]


def _pods() -> list[_Builder]:
    pods = 'pod=~"${model}-server-.+", container="server"'
    return [
        _graph("Server pods by version and role", "Model server pods scraped, by the version each serves and its "
               "canary role (stable/canary).", units.Short,
               [(f"count by (model_version, role) (model_inference_rows_total{{{M}}})",
                 "v{{model_version}} {{role}}")]),
        _graph("Server container restarts (1h)", "kube_pod_container_status_restarts_total (kube-state-metrics) "
               "of the model server containers: restarts in the last hour, by pod.", units.Short,
               [(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{pods}}}[1h]))", "{{pod}}")]),
    ]


# --- the dashboard -----------------------------------------------------------------------------------------------


def _variables(policies: list[Policy]) -> list[cogbuilder.Builder[model.VariableModel]]:
    first = min(p.model_name for p in policies)
    return [
        db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        .current(model.VariableOption(text="default", value="default")),
        db.QueryVariable("model").label("Model").datasource(DATASOURCE)
        .query({"query": "label_values(model_requests_total, model)", "refId": "model"})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(text=first, value=first)),
    ]


def build_dashboard(policies: list[Policy]) -> dict[str, Any]:
    """The dashboard's JSON model (what Grafana imports) for these policies' models."""
    if not policies:
        raise ValueError("build_dashboard: no policy given (the dashboard's bounds come from the policies)")
    policies = sorted(policies, key=lambda p: p.model_name)
    rows: list[tuple[str, list[_Builder]]] = [
        ("Traffic and errors", _traffic(policies)),
        ("Latency and batching", _latency(policies)),
        ("Canary analysis (the AnalysisTemplate's queries)", _canary(policies)),
        ("Drift (the drift check, from the Pushgateway)", _drift(policies)),
        ("Training (the last run, from the Pushgateway; runs from Argo Workflows)", _training()),
        ("Server pods", _pods()),
    ]
    builder = (db.Dashboard(TITLE).uid(UID).tags(["argo-mlops", "mlops", "model-serving"])
               .description("The model servers (requests, errors, latency, batches by version and canary role) "
                            "and the loop (canary analysis, drift, training gates). Generated by `mlops compile` "
                            "from the policies; edit the policies or workflows/monitoring/dashboard.py, not this "
                            "JSON.")
               .editable().time("now-6h", "now").refresh("1m").timezone(common.TimeZoneBrowser)
               .tooltip(model.DashboardCursorSync.CROSSHAIR)
               .variables(_variables(policies)))
    next_id = 1
    for title, panels in rows:
        builder = builder.with_row(db.Row(title).id(next_id))
        next_id += 1
        for panel in panels:
            builder = builder.with_panel(panel.id(next_id))  # type: ignore[attr-defined]
            next_id += 1
    doc: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    return doc


def dashboard_json(dashboard: dict[str, Any]) -> str:
    """The ConfigMap's text: keys sorted, one key a line with one space of indent (readable diffs, small)."""
    return json.dumps(dashboard, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def build_dashboard_configmap(policies: list[Policy]) -> dict[str, Any]:
    """The ConfigMap `mlops-grafana-dashboard` holding argo-mlops.json, labelled for the Grafana sidecar."""
    labels = _common.labels(_common.PART_OF, "monitoring")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP,
            "labels": {**labels, SIDECAR_LABEL: "1"},
            "annotations": {
                f"{_common.ANNOTATION_PREFIX}/generator": f"mlops compile (argo-mlops {_common.package_version()})",
                f"{_common.ANNOTATION_PREFIX}/source": SOURCE,
                f"{_common.ANNOTATION_PREFIX}/policy-files": ", ".join(
                    sorted(p.path.name for p in policies)),
            },
        },
        "data": {DATA_KEY: dashboard_json(build_dashboard(policies))},
    }


# --- the queries, for a plain Prometheus -------------------------------------------------------------------------


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the rows (those nested in a collapsed row too), in the dashboard's order."""
    found = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def raw_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every target's expr as Grafana runs it (template variables in place)."""
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    """`$name` and `${name}` replaced by values[name]; an unknown variable is an error naming it."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"dashboard query: no value for the variable ${name} (known: {sorted(values)}) in "
                             f"{expr!r}")
        return values[name]
    return _VARIABLE.sub(one, expr)


def dashboard_queries(dashboard: dict[str, Any], model_name: str | None = None,
                      rate_interval: str = DEFAULT_RATE_INTERVAL) -> list[str]:
    """Every target's expr ready for a plain Prometheus: $model is `model_name` (default: the variable's current
    value, the first policy's model) and $__rate_interval `rate_interval`."""
    if model_name is None:
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        model_name = str(variables["model"]["current"]["value"])
    values = {"model": model_name, "__rate_interval": rate_interval}
    return [substitute(expr, values) for expr in raw_queries(dashboard)]
