"""A model's life in a real registry for the registry page's tests: the gates of a real policy (binary
gates/fraud-detection.yaml, multiclass and regression from gates/examples/), gate reports in gate.json's shape
with hand-set numbers, and bundles with their lineage, moved the way the loop moves them.

    v1 manual, passed   -> production (argo:rollout-...), later back again by a rollback
    v2 drift, passed    -> production, then archived by the rollback
    v3 git push, failed -> rejected
    v4 manual, passed   -> canary
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from steps._model.bundle import write_manifest
from steps._storage.registry import Registry
from tests.support.paths import ROOT

POLICIES = {
    "binary": ROOT / "gates" / "fraud-detection.yaml",
    "multiclass": ROOT / "gates" / "examples" / "ticket-triage.yaml",
    "regression": ROOT / "gates" / "examples" / "demand-forecast.yaml",
}
MODELS = {"binary": "fraud-detection", "multiclass": "ticket-triage", "regression": "demand-forecast"}
DRIFTED = ["amount", "hour"]
COMMITS = ["1111111aaaa", "2222222bbbb", "3333333cccc", "4444444dddd"]
# How far each version's numbers sit from the bound, in units of the bound's scale (negative: on the wrong side).
MARGINS = [0.10, 0.20, -0.15, 0.25]


@dataclass
class Scenario:
    task: str
    model: str
    gates: dict[str, dict[str, Any]]  # the policy's quality section
    reports: list[dict[str, Any]]  # each version's gate report, v1 first

    @property
    def numeric_gates(self) -> list[str]:
        return [name for name, rule in self.gates.items() if "minimum" in rule or "maximum" in rule]

    @property
    def failed_gate(self) -> str:
        return self.numeric_gates[0]


def quality(task: str) -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(POLICIES[task].read_text())["quality"])


def gate_report(model: str, gates: dict[str, dict[str, Any]], margin: float, baseline: int | None,
                fail: str | None = None) -> dict[str, Any]:
    """gate.json for one version: every numeric gate `margin` inside its bound (outside for `fail`)."""
    entries = []
    candidate: dict[str, float | None] = {}
    for name, rule in gates.items():
        if "required" in rule:
            entries.append({"name": name, "passed": True, "status": "pass", "value": None, "bound": None,
                            "bound_kind": "required", "comparison": None, "baseline_value": None, "tolerance": None,
                            "note": "every edge case answered"})
            continue
        kind = "minimum" if "minimum" in rule else "maximum"
        bound = float(rule[kind])
        shift = (-margin if name == fail else margin) * max(abs(bound), 1e-6)
        value = bound + shift if kind == "minimum" else bound - shift
        if kind == "minimum" and bound <= 1 and value > 1:
            value = 1 - (1 - bound) * 0.2  # a score stays a score
        passed = name != fail
        candidate[name] = value
        entries.append({"name": name, "passed": passed, "status": "pass" if passed else "fail", "value": value,
                        "bound": bound, "bound_kind": kind, "comparison": rule.get("comparison"),
                        "baseline_value": None, "tolerance": rule.get("tolerance"),
                        "note": f"{name} {value:.4g} {'within' if passed else 'outside'} its {kind} {bound:g}"})
    return {"model": model, "passed": fail is None, "holdout_rows": 20000, "candidate": candidate,
            "baseline": {"version": baseline, "metrics": {}} if baseline else None, "gates": entries,
            "failed": [fail] if fail else []}


def bundle(root: Path, model: str, n: int, reason: str) -> Path:
    folder = root / f"{model}-{n}"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(f"weights of {model} v{n}".encode() * 40)
    write_manifest(folder, {
        "model": model, "fingerprint": f"{model}-fingerprint-{n}", "git_commit": COMMITS[n - 1], "reason": reason,
        "drifted_features": DRIFTED if "drift" in reason else [], "estimator": "hist_gradient_boosting",
        "data": {"uri": f"s3://data/{model}/day-{n}.parquet", "sha256": f"{n}" * 64, "rows": 100000 * n,
                 "format": "parquet"},
    })
    return folder


def build(reg: Registry, root: Path, task: str) -> Scenario:
    """Register and move four versions of the task's model as the loop would; returns what was registered."""
    model, gates = MODELS[task], quality(task)
    scenario = Scenario(task, model, gates, [])
    reasons = ["manual", "automated_drift_detection", "git-push", "manual"]
    baselines = [None, 1, 2, 1]
    for n, (reason, margin, base) in enumerate(zip(reasons, MARGINS, baselines, strict=True), start=1):
        fail = scenario.failed_gate if margin < 0 else None
        report: Any = gate_report(model, gates, abs(margin), base, fail)  # gate.json's shape, typed loosely
        scenario.reports.append(report)
        reg.register(model, bundle(root, model, n, reason), passed=report["passed"], gate_report=report,
                     actor=f"argo:{model}-train-{n}")
        if n == 1:
            reg.promote(model, 1, "production", actor="argo:rollout-v1", reason="canary analysis passed")
        if n == 2:
            reg.promote(model, 2, "production", actor="argo:rollout-v2", reason="canary analysis passed")
            reg.rollback(model, actor="alice@laptop", reason="error rate up after v2")
    reg.promote(model, 4, "canary", actor="argo:rollout-v4", reason="canary at 20%")
    return scenario
