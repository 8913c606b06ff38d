"""A training run's outcome on a Prometheus Pushgateway (job mlops-training, grouped by model), pushed by the
register step: when it ran, whether the candidate passed, the version it became, and each gate's verdict and
measured value. Dashboards show the gate history from it; the TrainingCandidateRejected alert reads
mlops_training_passed."""

from __future__ import annotations

import time

from steps._core.documents import GateReport, VersionRecord
from steps._core.pushgateway import Gauges, push

JOB = "mlops-training"


def training_gauges(record: VersionRecord, report: GateReport, now: float | None = None) -> Gauges:
    """mlops_training_last_run_timestamp_seconds, mlops_training_passed (1 staged, 0 rejected),
    mlops_training_registered_version, and per gate mlops_gate_passed (1 pass, 0 fail) or, for a gate that could
    not be evaluated, mlops_gate_skipped 1 instead; mlops_gate_value when the gate measured a number."""
    gauges = Gauges()
    gauges.add("mlops_training_last_run_timestamp_seconds", time.time() if now is None else now)
    gauges.add("mlops_training_passed", 1 if record["gate"]["passed"] else 0)
    gauges.add("mlops_training_registered_version", record["version"])
    skipped = set(report.get("skipped", []))
    for gate in report.get("gates", []):
        name = gate["name"]
        # Reports written before gates had a status: a gate listed in `skipped` was skipped, else passed says.
        status = gate.get("status") or ("skipped" if name in skipped else "pass" if gate["passed"] else "fail")
        if status == "skipped":
            gauges.add("mlops_gate_skipped", 1, gate=name)
        else:
            gauges.add("mlops_gate_passed", 1 if status == "pass" else 0, gate=name)
        value = gate.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            gauges.add("mlops_gate_value", value, gate=name)
    return gauges


def push_training(url: str, model: str, record: VersionRecord, report: GateReport, timeout: float = 10.0) -> None:
    """Replace this model's training metrics on the Pushgateway at `url`."""
    push(url, JOB, {"model": model}, training_gauges(record, report), timeout=timeout)
