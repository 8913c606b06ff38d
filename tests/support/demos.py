"""`mlops demo --task regression|multiclass`, run as a user runs it from a folder with no checkout, and what its
output and registry must show: the same loop as the fraud demo (tests/workflows/demo/test_demo.py) on the reference
model of that task and its generated data. Each task's test is a file of its own (test_demo_regression.py,
test_demo_multiclass.py), so the suite's two processes run the two demos side by side."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from steps._storage.registry import Registry
from workflows.demo import workspace

# task -> (model, features, a gate of the naive baseline that the shuffled-target v3 fails)
TASKS = {"regression": ("demand-forecast", 15, "rmse_vs_mean"),
         "multiclass": ("ticket-triage", 20, "log_loss_vs_prior")}


def demo(folder: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workflows", "demo", *args], cwd=folder, capture_output=True,
                          text=True, timeout=timeout, check=False)


def check_task_demo(task: str, tmp_path: Path) -> None:
    model, features, baseline_gate = TASKS[task]
    done = demo(tmp_path, "--task", task)
    out = done.stdout
    assert done.returncode == 0, out[-5000:] + done.stderr[-3000:]
    assert f"examples/{model}.yaml ({task})" in out
    # Round 1: v1 in production, its drift found in the served traffic, the Sensor's retrain canaried to production.
    assert "v1 is in production" in out
    assert re.search(rf"drift: {model} v1: \d+ of {features} features drifted .*trigger sent", out), out[-5000:]
    assert "rollout: step 1: canary v2 at weight 10" in out and "weight 60" in out
    assert "v2 passed its gates and the canary, and is in production" in out
    if task == "multiclass":  # its policy sets the prediction-shift guard: the same teams for the same traffic
        shifts = [float(x) for x in re.findall(r"prediction shift \(PSI\) ([\d.]+)", out)]
        assert shifts and max(shifts) <= 0.1, shifts
    # Round 2: the shuffled-target candidate fails the gate against the naive baseline; v2 serves without an error.
    assert re.search(rf"v3 was rejected: .*{baseline_gate}", out), out[-3000:]
    assert re.search(r"v2 kept serving throughout: [1-9]\d* answers, 0 errors during round 2", out)
    registry = Registry.open(str(tmp_path / workspace.DEFAULT_DIR / "registry"))
    assert {v["version"]: v["status"] for v in registry.versions(model)} == {
        1: "archived", 2: "production", 3: "rejected"}
