"""Training at scale: the same model on any number of threads, and model.max_training_rows' stratified sample with
the whole holdout kept for the gates."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._drift import ecdf as _drift
from steps._model import bundle as _bundle
from tests.steps.test_train import _policy_with, run_train, write_validated

ROOT = Path(__file__).resolve().parents[2]


def skops_content(path: Path) -> Any:
    """model.skops' schema with each array file replaced by its bytes' hash and object ids left out: the file's
    content, which is the same for the same model although its member names (object ids) are not."""
    archive = zipfile.ZipFile(path)
    arrays = {i.filename: hashlib.sha256(archive.read(i)).hexdigest() for i in archive.infolist()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: arrays.get(v, v) if k == "file" else walk(v) for k, v in node.items() if k != "__id__"}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(json.loads(archive.read("schema.json")))


@pytest.fixture(scope="module")
def data_and_policy(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("scale")
    return (write_validated(generate(6000, seed=4), work / "data"),
            _policy_with(policy_file, work, "max_iter: 150", "max_iter: 15"))


def test_the_model_is_the_same_on_one_thread_and_on_two(data_and_policy, tmp_path):
    """HistGradientBoosting sums each histogram on one thread: the thread count changes the speed, not the model;
    and the bundle does not record the machine's count."""
    data, policy = data_and_policy
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"threads-{n}"
        env = {**os.environ, "MLOPS_THREADS": str(n)}
        proc = subprocess.run([sys.executable, "-m", "steps.train", "--data", str(data), "--policy", str(policy),
                               "--bundle", str(out / "bundle"), "--holdout", str(out / "holdout.parquet"),
                               "--git-commit", "abc"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert f"({n} thread" in proc.stdout
        runs[n] = out
    one, two = runs[1], runs[2]
    assert skops_content(one / "bundle" / "model.skops") == skops_content(two / "bundle" / "model.skops")
    for name in ("model.trees.json", "profile.json", _drift.ECDF_FILE):
        assert (one / "bundle" / name).read_bytes() == (two / "bundle" / name).read_bytes(), name
    assert (one / "holdout.parquet").read_bytes() == (two / "holdout.parquet").read_bytes()
    metrics = [_bundle.read_manifest(r / "bundle")["metrics"] for r in (one, two)]
    assert [{k: v for k, v in m.items() if k != "fit_seconds"} for m in metrics] == [
        {k: v for k, v in metrics[0].items() if k != "fit_seconds"}] * 2


def test_max_training_rows_fits_a_stratified_sample_and_keeps_the_whole_holdout(data_and_policy, tmp_path):
    data, policy = data_and_policy
    capped = _policy_with(policy, tmp_path, "  seed: 42", "  seed: 42\n  max_training_rows: 1500")
    full, sample = run_train(data, tmp_path / "full", policy), run_train(data, tmp_path / "sample", capped)
    assert full.code == sample.code == 0
    m_full, m_sample = (_bundle.read_manifest(r.bundle)["metrics"] for r in (full, sample))
    assert m_sample["train_rows"] == 1500 and m_sample["sampled_from_rows"] == m_full["train_rows"] == 4800
    assert "sampled_from_rows" not in m_full
    # The gates judge the same holdout rows whether or not training sampled.
    assert m_sample["holdout_rows"] == m_full["holdout_rows"] == 1200
    assert (full.holdout).read_bytes() == (sample.holdout).read_bytes()
    # Stratified: the sample's positive rate is the training share's, to the row.
    assert m_sample["train_positive_rate"] == pytest.approx(m_full["train_positive_rate"], abs=1 / 1500)
    profile = json.loads((sample.bundle / "profile.json").read_text())
    assert profile["rows"] == 1500 and profile["features"]["amount"]["count"] == 1500
    assert _drift.load_ecdfs((sample.bundle / _drift.ECDF_FILE).read_bytes())["amount"].size == 1500


def test_a_sample_larger_than_the_training_share_trains_on_every_row(data_and_policy, tmp_path):
    data, policy = data_and_policy
    capped = _policy_with(policy, tmp_path, "  seed: 42", "  seed: 42\n  max_training_rows: 100000")
    trained = run_train(data, tmp_path / "out", capped)
    assert trained.code == 0
    metrics = _bundle.read_manifest(trained.bundle)["metrics"]
    assert metrics["train_rows"] == 4800 and "sampled_from_rows" not in metrics


def test_thinning_a_reference_ecdf_whose_ranks_round_past_its_size_keeps_its_last_value():
    """783617 / 10000 * 10000 rounds above 783617: the last rank must still name the last value (this size crashed
    training on 1M generated rows)."""
    size, distinct = 783_617, 50_000
    counts = np.full(distinct, size // distinct)
    counts[: size - counts.sum()] += 1
    e = _drift.Ecdf(np.arange(distinct, dtype=np.float64), np.cumsum(counts))
    thinned = _drift.thin(e, 20_000)
    assert thinned.size == size and thinned.values[-1] == distinct - 1
    assert len(thinned.values) <= 20_000


def test_holdout_rows_keep_the_validated_files_types(data_and_policy, tmp_path):
    data, policy = data_and_policy
    trained = run_train(data, tmp_path / "out", policy)
    holdout, validated = pd.read_parquet(trained.holdout), pd.read_parquet(data / "data.parquet")
    assert holdout.dtypes.to_dict() == validated.dtypes.to_dict()
    assert holdout["channel"].map(type).eq(str).all()
