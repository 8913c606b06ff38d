"""The gate's threads: scoring the holdout uses the pod's CPUs ($MLOPS_THREADS, the policy's model.threads), and the
report says the same on any count; latency and memory are measured on one thread, as a server process has them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.data import generate
from tests.steps.test_gate import ROWS, Gated, Model, derive_policy, entry, run_gate, train_model

MEASURED = ("latency_p95_ms", "peak_memory_mb")  # a timing, and tracemalloc's peak (it varies by a few KB)


def _without_measured(report: dict[str, Any]) -> dict[str, Any]:
    report = json.loads(json.dumps(report))
    for name in MEASURED:
        report["candidate"].pop(name, None)
        report["baseline"]["metrics"].pop(name, None)
        entry(report, name).pop("value")
    return report


@pytest.fixture(scope="module")
def models(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, Model, Path]:
    folder = tmp_path_factory.mktemp("threads")
    quick = derive_policy(policy_file, folder / "quick", {"latency_p95_ms": {"maximum": 1000, "calls": 50},
                                                          "peak_memory_mb": {"maximum": 256, "rows": 1000}})
    candidate = train_model(generate(ROWS, seed=21), folder / "candidate", quick)
    baseline = train_model(generate(ROWS, seed=22, drift=0.5), folder / "baseline", quick)
    return candidate, baseline, quick


def _gated(models: tuple[Model, Model, Path], out: Path, threads: int | None = None) -> Gated:
    candidate, baseline, policy = models
    if threads is not None:  # the policy's model.threads
        raw = yaml.safe_load(policy.read_text())
        raw["model"]["threads"] = threads
        policy = out / "policy" / policy.name
        policy.parent.mkdir(parents=True)
        policy.write_text(yaml.safe_dump(raw, sort_keys=False))
    gated = run_gate(candidate, out, policy, baseline.bundle)
    assert gated.code == 0, gated.stderr
    return gated


def test_one_and_two_threads_give_the_same_gate_report(
    models: tuple[Model, Model, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_THREADS", "1")
    one = _gated(models, tmp_path / "one")
    monkeypatch.delenv("MLOPS_THREADS")
    two = _gated(models, tmp_path / "two", threads=2)
    assert entry(one.report, "feature_importance_stability")["value"] is not None
    assert any(g["interval"] for g in one.report["gates"])  # the bootstrap ran
    assert _without_measured(one.report) == _without_measured(two.report)


def test_latency_is_measured_on_one_thread_and_the_holdout_scored_on_the_step_s(
    models: tuple[Model, Model, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    from steps._quality import measures

    seen: dict[str, set[int]] = {"latency": set(), "scoring": set()}

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    def latency(*args: Any, **kwargs: Any) -> float:
        seen["latency"] |= openmp_threads()
        return real_latency(*args, **kwargs)

    def scored(*args: Any, **kwargs: Any) -> Any:
        seen["scoring"] |= openmp_threads()
        return real_predict(*args, **kwargs)

    real_latency, real_predict = measures.latency_p95_ms, measures._task.predict
    monkeypatch.setattr(measures, "latency_p95_ms", latency)
    monkeypatch.setattr(measures._task, "predict", scored)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MLOPS_THREADS", "2")
    gated = _gated(models, tmp_path)
    assert seen["latency"] == {1}
    assert 2 in seen["scoring"]
    assert entry(gated.report, "latency_p95_ms")["note"].endswith("OMP_NUM_THREADS=1")


def test_importing_the_gate_leaves_openmp_unloaded_so_main_can_make_its_threads_wait_passively() -> None:
    """Spinning OpenMP threads collapse on shared CPUs; main() asks for passive ones, which OpenMP reads once, when
    scikit-learn loads it: so importing steps.gate must not import scikit-learn."""
    import subprocess
    import sys

    code = "import sys, steps.gate; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
