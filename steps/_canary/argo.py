"""The rollout step's Kubernetes target: point the model's Argo Rollout at a version (one pod-template annotation)
and watch it until the controller's verdict: Healthy (every canary step and analysis passed), Degraded or aborted
(with the failed AnalysisRun's metrics), or no verdict before the timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from steps._canary.kubernetes import VERSION_ANNOTATION, server_name
from steps._canary.outcome import AnalysisRunRecord, MetricResultRecord, Outcome, RolloutTimeout
from steps._core.policy import Policy
from steps._core.values import duration_seconds

POLL_SECONDS = 10.0
# Beyond the schedule's own pauses and analyses: pods starting, the progress deadline, the controller's resyncs.
TIMEOUT_MARGIN_SECONDS = 1800


class RolloutAPI(Protocol):
    """What the watch needs of the Kubernetes API (steps._canary.kubernetes.KubeClient)."""

    namespace: str

    def get_rollout(self, name: str) -> dict[str, Any]: ...

    def patch_rollout(self, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    def analysis_runs(self, rollout: str) -> list[dict[str, Any]]: ...


def version_patch(version: int) -> dict[str, Any]:
    """The merge patch that points the Rollout at `version`; nothing else in the spec changes."""
    return {"spec": {"template": {"metadata": {"annotations": {VERSION_ANNOTATION: str(version)}}}}}


def default_timeout(policy: Policy) -> float:
    """The schedule's pauses plus each analysis (count x interval), plus a margin."""
    analysis = policy.canary.analysis
    total = 0
    for step in policy.canary.steps:
        total += duration_seconds(step.pause) if step.pause else 0
        total += analysis.count * max(duration_seconds(analysis.interval), 60) if step.analysis else 0
    return float(total + TIMEOUT_MARGIN_SECONDS)


def rollout_state(rollout: dict[str, Any]) -> str:
    """'healthy', 'failed' or 'waiting' for a Rollout object, counting only a status about its current spec."""
    meta, status = rollout.get("metadata") or {}, rollout.get("status") or {}
    generation = meta.get("generation")
    # Argo Rollouts writes observedGeneration as a string; a status about an older spec says nothing about ours.
    if generation is not None and str(status.get("observedGeneration")) != str(generation):
        return "waiting"
    if status.get("abort"):
        return "failed"
    phase = status.get("phase")
    if phase == "Degraded":
        return "failed"
    if phase == "Healthy":
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        return "healthy" if not current or not stable or current == stable else "waiting"
    return "waiting"


def analysis_result(runs: list[dict[str, Any]]) -> AnalysisRunRecord | None:
    """The newest unsuccessful AnalysisRun, with the metrics that did not succeed and their last measurement."""
    for analysis in runs:
        status = analysis.get("status") or {}
        if status.get("phase") in (None, "Successful", "Running", "Pending"):
            continue
        metrics: list[MetricResultRecord] = []
        for result in status.get("metricResults") or []:
            if result.get("phase") in ("Successful", "Running"):
                continue
            measurements = result.get("measurements") or []
            last = measurements[-1] if measurements else {}
            metrics.append({"name": result.get("name"), "phase": result.get("phase"),
                            "message": result.get("message") or last.get("message"), "value": last.get("value"),
                            "failed": result.get("failed", 0), "inconclusive": result.get("inconclusive", 0)})
        return {"run": (analysis.get("metadata") or {}).get("name"), "phase": status.get("phase"),
                "message": status.get("message"), "metrics": metrics}
    return None


def _failure(name: str, status: dict[str, Any], analysis: AnalysisRunRecord | None) -> str:
    """Why the Rollout failed, for a person: the failed metrics of its analysis, else the Rollout's message."""
    why = "aborted" if status.get("abort") else str(status.get("phase"))
    text = status.get("message") or ""
    if analysis:
        failed = "; ".join(f"{m['name']} {m['phase']}" + (f" ({m['message']})" if m.get("message") else "")
                           + (f" value {m['value']}" if m.get("value") is not None else "")
                           for m in analysis["metrics"])
        text = f"analysis {analysis['run']} {analysis['phase']}: {failed or analysis.get('message') or ''}"
    return f"Argo Rollout {name} {why}" + (f": {text}" if text else "")


def watch(client: RolloutAPI, model: str, version: int, timeout: float, poll: float = POLL_SECONDS,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
          say: Callable[[str], object] = print) -> Outcome:
    """Patch the Rollout to `version` and wait for its verdict. Raises RolloutTimeout."""
    name = server_name(model)
    patched = client.patch_rollout(name, version_patch(version))
    say(f"rollout: patched Rollout {client.namespace}/{name}: {VERSION_ANNOTATION}={version} "
        f"(generation {(patched.get('metadata') or {}).get('generation')})")
    deadline = clock() + timeout
    last_phase = None
    while True:
        rollout = client.get_rollout(name)
        status = rollout.get("status") or {}
        state = rollout_state(rollout)
        phase = status.get("phase")
        if phase != last_phase:
            message = f": {status['message']}" if status.get("message") else ""
            say(f"rollout: {name} is {phase or 'unknown'}{message}")
            last_phase = phase
        if state == "healthy":
            return Outcome(True, f"Argo Rollout {name} Healthy: canary steps and analysis passed",
                           {"target": "kubernetes", "rollout": name, "namespace": client.namespace})
        if state == "failed":
            analysis = analysis_result(client.analysis_runs(name))
            return Outcome(False, _failure(name, status, analysis),
                           {"target": "kubernetes", "rollout": name, "namespace": client.namespace,
                            "phase": phase, "abort": bool(status.get("abort")), "message": status.get("message"),
                            "analysis": analysis})
        if clock() >= deadline:
            raise RolloutTimeout(f"Rollout {client.namespace}/{name}: no verdict after {timeout:.0f}s (phase "
                                 f"{phase or 'unknown'}); {model} v{version} stays canary")
        sleep(max(0.0, min(poll, deadline - clock())))
