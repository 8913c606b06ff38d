"""The gate's parity check (steps/_model/parity.py): the compiled predictor of a real trained bundle scores as its
skops model does, and a trees file that scores differently, or does not load, fails the check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from steps import gate
from steps._model import bundle as _bundle
from steps._model import parity as _parity
from steps._model import trees as _predictor
from tests.support.models import Trained


@pytest.fixture(scope="module")
def quick_policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference gates with fewer latency calls and scored rows, so the gate runs in seconds."""
    text = trained.policy.read_text()
    text = text.replace("latency_p95_ms: {maximum: 50, calls: 1000}", "latency_p95_ms: {maximum: 500, calls: 20}")
    text = text.replace("peak_memory_mb: {maximum: 256, rows: 10000}", "peak_memory_mb: {maximum: 256, rows: 500}")
    path = tmp_path_factory.mktemp("quick-policy") / "fraud-detection.yaml"
    path.write_text(text)
    assert "predictor_parity" in text
    return path


def test_gate_checks_the_compiled_predictor_against_the_skops_model(trained: Trained, quick_policy: Path,
                                                                   tmp_path: Path) -> None:
    code = gate.main(["--bundle", str(trained.bundle), "--holdout", str(trained.holdout), "--policy",
                      str(quick_policy), "--report-dir", str(tmp_path / "report"), "--passed-out",
                      str(tmp_path / "passed"), "--registry", str(tmp_path / "empty-registry")])
    assert code == 0
    report = json.loads((tmp_path / "report" / "gate.json").read_text())
    parity = next(g for g in report["gates"] if g["name"] == "predictor_parity")
    assert parity["passed"] and parity["bound"] == 1e-5
    assert parity["value"] <= 1e-5
    assert "variants" in parity["note"]


def test_parity_fails_for_a_trees_file_that_scores_differently(trained: Trained, pipeline: Any,
                                                              tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    doc = json.loads((bundle / _predictor.TREES_FILE).read_text())
    tree = doc["trees"][0]
    leaf = tree["leaf"].index(True)
    tree["value"][leaf] += 0.5  # one leaf of 150 trees: a small, real difference
    _predictor.save(doc, bundle / _predictor.TREES_FILE)
    manifest = json.loads((bundle / _bundle.MANIFEST).read_text())
    manifest.pop("files")
    manifest.pop("format_version")
    manifest = _bundle.write_manifest(bundle, manifest)

    holdout = pd.read_parquet(trained.holdout)
    opened = gate.load_bundle(bundle)
    X = holdout[[f.name for f in opened.features]]
    value, note = _parity.measure(opened, X, pipeline.predict_proba(X)[:, 1])
    assert value is not None and value > 1e-5
    assert "max |compiled - skops|" in note

    (bundle / _predictor.TREES_FILE).write_text('{"format": "something else"}')
    value, note = _parity.measure(opened, X, pipeline.predict_proba(X)[:, 1])
    assert value == 1.0 and "does not load" in note
