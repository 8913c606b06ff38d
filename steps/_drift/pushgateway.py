"""The drift check's metrics on a Prometheus Pushgateway, for dashboards and alerts: each feature's score, the
share of drifted features, the samples and whether retraining was due; the model's outputs' own scores
(mlops_prediction_drift_score, mlops_target_drift_score) and whether each drifted (..._detected); and when the
check last completed (mlops_drift_last_run_timestamp_seconds: the DriftCheckStale alert reads it)."""

from __future__ import annotations

import time

from steps._core.pushgateway import Gauges, push
from steps._drift.rule import DriftResult

JOB = "mlops-drift"


def drift_gauges(version: int, result: DriftResult, now: float | None = None) -> Gauges:
    """The gauges of one completed check of the production version `version`."""
    gauges = Gauges()
    for f in result.features:
        gauges.add("mlops_drift_score", f.score, feature=f.name, method=f.method, model_version=version)
    gauges.add("mlops_drift_share", result.share, model_version=version)
    gauges.add("mlops_drift_samples", result.samples, model_version=version)
    gauges.add("mlops_drift_retrain", 1 if result.retrain else 0, model_version=version)
    # The model's outputs under their own names: dashboards and alerts tell them from the features, and a
    # prediction that moves alone can alert a person without touching the retrain rule.
    for output in (result.prediction, result.target):
        if output is None:
            continue
        name = f"mlops_{output.name}_drift"
        gauges.add(f"{name}_score", output.score, method=output.method, model_version=version)
        gauges.add(f"{name}_detected", 1 if output.drifted else 0, model_version=version)
    # No model_version: the alert asks when this model was last checked, whichever version was in production.
    gauges.add("mlops_drift_last_run_timestamp_seconds", time.time() if now is None else now)
    return gauges


def push_metrics(url: str, model: str, version: int, result: DriftResult, timeout: float = 10.0) -> None:
    """Replace this model's drift metrics on a Prometheus Pushgateway (job mlops-drift, grouped by model)."""
    push(url, JOB, {"model": model}, drift_gauges(version, result), timeout=timeout)
