"""The training pipeline end to end, as a user runs it: `mlops run training` in a fresh folder, the real steps,
a local registry. Slow (each run imports Great Expectations and trains a model), so runs are shared where the
story allows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.processes import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def mlops(*args: str, cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workflows.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def versions(registry: Path, cwd: Path) -> list[dict]:
    proc = mlops("registry", "list", "--model", "fraud-detection", "--registry", str(registry), "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["versions"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def dataset(workdir: Path) -> Path:
    from steps._core.data import generate, write_frame

    out = workdir / "transactions.parquet"
    write_frame(generate(40000, seed=11), out)
    return out


@pytest.fixture(scope="module")
def first_run(workdir: Path, dataset: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    registry = workdir / "registry"
    proc = mlops("run", "training", "-p", f"dataset={dataset}", "-p", "git-commit=abc1234", "--registry",
                 str(registry), cwd=workdir)
    return proc, registry


def test_run_training_registers_the_first_version_and_rolls_it_out_to_production(first_run, workdir: Path) -> None:
    proc, registry = first_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for task in ("validate", "train", "gate", "register", "rollout"):
        assert task in out
    assert "v1" in out and "staged" in out
    assert "Rollout: fraud-detection v1 promoted to production" in out
    for gate in ("accuracy", "pr_auc", "roc_auc", "latency_p95_ms", "recall_gap", "edge_cases"):
        assert gate in out, f"the summary does not show the {gate} gate"
    assert "gate.json, index.html" in out, "the summary does not point at the HTML report"
    [record] = versions(registry, workdir)
    # With no production yet, the local rollout promotes the first version once its server is healthy.
    assert record["version"] == 1 and record["status"] == "production"
    assert [h["to"] for h in record["history"]] == ["staged", "canary", "production"]
    assert "health" in record["history"][-1]["why"]
    assert record["git_commit"] == "abc1234"
    html = next(Path(workdir).glob(".mlops/runs/*/pods/*-gate-*/**/gate-report/index.html"))
    assert "<svg role='img'" in html.read_text()


def test_rerun_with_the_same_inputs_creates_no_new_version(first_run, workdir: Path, dataset: Path) -> None:
    _, registry = first_run
    proc = mlops("run", "training", "-p", f"dataset={dataset}", "-p", "git-commit=abc1234", "--registry",
                 str(registry), cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [v["version"] for v in versions(registry, workdir)] == [1]


def test_a_model_that_never_learned_fraud_is_rejected_and_the_run_fails(first_run, workdir: Path,
                                                                         dataset: Path) -> None:
    _, registry = first_run
    frame = pd.read_parquet(dataset)
    frame["is_fraud"] = frame["is_fraud"].sample(frac=1.0, random_state=3).to_numpy()
    shuffled = workdir / "shuffled.parquet"
    frame.to_parquet(shuffled, index=False)
    proc = mlops("run", "training", "-p", f"dataset={shuffled}", "--registry", str(registry), cwd=workdir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pr_auc" in proc.stdout + proc.stderr
    rejected = [v for v in versions(registry, workdir) if v["status"] == "rejected"]
    assert len(rejected) == 1
    assert "pr_auc" in rejected[0]["gate"]["failed"]
    assert "accuracy" not in rejected[0]["gate"]["failed"], "accuracy alone passes such a model: the story breaks"


def test_a_missing_dataset_fails_clearly_and_registers_nothing(workdir: Path) -> None:
    registry = workdir / "empty-registry"
    proc = mlops("run", "training", "-p", "dataset=does/not/exist.csv", "--registry", str(registry), cwd=workdir)
    assert proc.returncode == 1
    assert "does/not/exist.csv: no such file" in proc.stdout + proc.stderr
    assert versions(registry, workdir) == []


def test_a_policy_typo_is_refused_before_anything_runs(workdir: Path, tmp_path: Path) -> None:
    policy = tmp_path / "fraud-detection.yaml"
    text = (ROOT / "gates" / "fraud-detection.yaml").read_text()
    policy.write_text(text.replace("  threshold: 0.5\n", "  treshold: 0.5\n"))
    proc = mlops("run", "training", "--policy", str(policy), cwd=workdir)
    assert proc.returncode == 2
    assert "model.treshold: unknown key" in proc.stderr
    assert str(policy) in proc.stderr


def test_an_unreachable_object_store_is_retried_then_fails(workdir: Path) -> None:
    closed = free_port()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "MLOPS_S3_ATTEMPTS": "1", "MLOPS_S3_CONNECT_TIMEOUT": "1"}
    proc = mlops("run", "training", "-p", "dataset=s3://data/transactions.csv", "--registry",
                 str(workdir / "s3-outage-registry"), "--backoff-scale", "0.01", cwd=workdir, env=env)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "validate(1)" in out, "exit code 3 must be retried (Argo's second attempt is the node validate(1))"
    assert "unreachable" in out
    run_dir = max(Path(workdir).glob(".mlops/runs/*"), key=lambda p: p.stat().st_mtime)
    validate = json.loads((run_dir / "run.json").read_text())["tasks"]["validate"]
    assert validate["attempts"] > 1 and validate["exitCode"] == 3


def test_a_run_killed_mid_way_reruns_to_one_version(workdir: Path, dataset: Path) -> None:
    registry = workdir / "killed-registry"
    args = [sys.executable, "-m", "workflows.cli", "run", "training", "-p", f"dataset={dataset}", "--registry",
            str(registry)]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:  # kill the whole process group as soon as the gate task starts
        if "gate" in line and time.monotonic() < deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert versions(registry, workdir) == [], "a killed run left a half-registered version"
    rerun = mlops("run", "training", "-p", f"dataset={dataset}", "--registry", str(registry), cwd=workdir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert [v["version"] for v in versions(registry, workdir)] == [1]
