"""steps/_canary/argo.py: the Rollout's verdict read from its status as the Argo Rollouts controller writes it,
the patch that points it at a version, and how long the step waits (the rollout step against a fake Kubernetes
API: tests/steps/test_rollout.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from steps._canary import argo
from steps._core.policy import load_policy


def test_the_default_timeout_covers_the_schedule(policy_file: Path) -> None:
    # 30m + 30m + 1h of pauses, two analyses of 3 x 5m, and the margin.
    policy = load_policy(policy_file)
    assert argo.default_timeout(policy) == 2 * 1800 + 3600 + 2 * 3 * 300 + argo.TIMEOUT_MARGIN_SECONDS


def test_rollout_state_reads_phase_abort_and_generation() -> None:
    def obj(**status: Any) -> dict[str, Any]:
        return {"metadata": {"generation": 3}, "status": {"observedGeneration": "3", **status}}

    assert argo.rollout_state(obj(phase="Healthy")) == "healthy"
    assert argo.rollout_state(obj(phase="Healthy", currentPodHash="new", stableRS="old")) == "waiting"
    assert argo.rollout_state(obj(phase="Paused", abort=True)) == "failed"
    assert argo.rollout_state(obj(phase="Degraded")) == "failed"
    assert argo.rollout_state(obj(phase="Progressing")) == "waiting"
    assert argo.rollout_state({"metadata": {"generation": 4}, "status": {"observedGeneration": "3",
                                                                         "phase": "Healthy"}}) == "waiting"
    assert json.dumps(argo.version_patch(7)) == '{"spec": {"template": {"metadata": {"annotations": ' \
                                                '{"model-version": "7"}}}}}'


def test_the_newest_unsuccessful_analysis_run_names_its_failed_metrics() -> None:
    runs = [
        {"metadata": {"name": "r-3"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "r-2"}, "status": {"phase": "Failed", "message": "metric failed", "metricResults": [
            {"name": "latency-p95-ms", "phase": "Failed", "failed": 2,
             "measurements": [{"phase": "Failed", "value": "[300]"}, {"phase": "Failed", "value": "[412.5]"}]},
            {"name": "error-ratio", "phase": "Successful"}]}},
        {"metadata": {"name": "r-1"}, "status": {"phase": "Failed", "metricResults": []}},
    ]
    assert argo.analysis_result(runs) == {
        "run": "r-2", "phase": "Failed", "message": "metric failed",
        "metrics": [{"name": "latency-p95-ms", "phase": "Failed", "message": None, "value": "[412.5]",
                     "failed": 2, "inconclusive": 0}]}
    assert argo.analysis_result(runs[:1]) is None
