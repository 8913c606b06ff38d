"""The gate's parity check (steps/_model/parity.py): the compiled predictor of a real trained bundle of every task
predicts as its skops model does, regression differences count in the target's standard deviations, and a trees
file that predicts differently, does not load, or is of another task, fails the check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps import gate
from steps._model import bundle as _bundle
from steps._model import parity as _parity
from steps._model import task as _task
from steps._model import trees as _predictor
from steps._model.bundle import Bundle
from tests.support.models import Trained
from tests.support.tasks import trained_task_bundle


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


def _opened(trained: Trained) -> tuple[Bundle, pd.DataFrame, np.ndarray, np.ndarray]:
    """The bundle, its holdout's features, the skops predictions and the target as the model learns it."""
    opened = Bundle.open(trained.bundle)
    holdout = pd.read_parquet(trained.holdout)
    X = holdout[[f.name for f in opened.features]]
    contract = opened.manifest["contract"]
    return opened, X, _task.predict(opened.pipeline, X, opened.task), _task.encode_target(
        holdout[contract["target"]], contract)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_compiled_predictor_of_every_task_matches_its_skops_model(task: str,
                                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    opened, X, predictions, y = _opened(trained_task_bundle(tmp_path_factory, task))
    assert _predictor.TREES_FILE in opened.files
    value, note = _parity.measure(opened, X, predictions, y)
    assert value is not None and value <= 1e-12
    variants = len(opened.features) + sum(f.type == "categorical" for f in opened.features)
    assert f"over {len(X)} holdout rows and {variants * _parity.VARIANT_ROWS} variants" in note
    if task == "multiclass":
        assert note.startswith("max |compiled - skops| of every class probability")
    else:
        assert "/ the holdout target's standard deviation" in note


def test_regression_differences_are_measured_in_target_standard_deviations(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    trained = trained_task_bundle(tmp_path_factory, "regression")
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    doc = json.loads((bundle / _predictor.TREES_FILE).read_text())
    doc["baseline"][0] += 0.25  # every prediction 0.25 higher, in the target's units
    _predictor.save(doc, bundle / _predictor.TREES_FILE)
    manifest = json.loads((bundle / _bundle.MANIFEST).read_text())
    _bundle.write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format_version")})

    opened, X, predictions, y = _opened(Trained(bundle, trained.holdout, trained.policy))
    value, note = _parity.measure(opened, X, predictions, y)
    assert value == pytest.approx(0.25 / float(np.std(y)), rel=1e-9)
    assert value is not None and value > 1e-5  # fails the reference bound
    assert "max |compiled - skops| of the values (0.25) / the holdout target's standard deviation" in note
    # Without the target, the spread of the skops predictions stands in, and the note says so.
    value, note = _parity.measure(opened, X, predictions)
    assert value == pytest.approx(0.25 / float(np.std(predictions)), rel=1e-9)
    assert "/ the skops predictions' standard deviation" in note


def test_a_trees_file_of_another_task_than_the_bundle_fails_parity(tmp_path_factory: pytest.TempPathFactory,
                                                                   tmp_path: Path) -> None:
    trained = trained_task_bundle(tmp_path_factory, "multiclass")
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    doc = json.loads((bundle / _predictor.TREES_FILE).read_text())
    k = doc["classes"]
    # Class 0's trees alone, as a regression model: a well-formed file, for the wrong task.
    doc.update(task="regression", classes=None, link="identity", baseline=doc["baseline"][:1], trees=doc["trees"][::k])
    _predictor.save(doc, bundle / _predictor.TREES_FILE)
    manifest = json.loads((bundle / _bundle.MANIFEST).read_text())
    _bundle.write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format_version")})

    opened, X, predictions, y = _opened(Trained(bundle, trained.holdout, trained.policy))
    value, note = _parity.measure(opened, X, predictions, y)
    assert value == _parity.WORST
    assert "does not load" in note
    assert "task: the trees predict regression, the bundle's contract says multiclass" in note


@pytest.mark.parametrize("workers", [1, 2])
def test_parity_in_chunks_and_workers_predicts_as_the_whole_batch(trained: Trained, workers: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's parity predicts the encoded holdout and its variants a chunk at a time (in forked workers on a
    pod with several CPUs), so a 2M-row holdout is never one batch of Python lists: the answers are the whole
    batch's, row for row, the variants' missing and unseen values included."""
    opened, X, _, _ = _opened(trained)
    X = X.iloc[:40]
    extra = _parity.variants(X, opened.features)
    assert len(extra)
    predictor = _predictor.load(opened.path / _predictor.TREES_FILE, [f.name for f in opened.features], opened.task,
                                len(opened.classes) if opened.classes is not None else None)
    encoder = opened.pipeline[0]
    whole = np.asarray(predictor.predict(encoder.transform(pd.concat([X, extra], ignore_index=True)).tolist()),
                       dtype=np.float64)
    monkeypatch.setattr(_parity, "CHUNK_ROWS", 7)
    chunked = _parity._compiled(predictor, _parity._chunks(encoder.transform(X), encoder.transform(extra)), workers)
    assert np.array_equal(chunked, whole, equal_nan=True)


def test_parity_reads_the_codes_the_skops_scores_came_from(trained: Trained) -> None:
    """The gate encodes the holdout once: the skops model scores those codes and the compiled predictor reads the
    same ones; the value is the one the parity gets encoding the holdout itself."""
    opened, X, _, _ = _opened(trained)
    codes = opened.pipeline[0].transform(X)
    scores = _task.predict(opened.pipeline[1:], codes, opened.task)
    assert np.array_equal(scores, _task.predict(opened.pipeline, X, opened.task))
    assert _parity.measure(opened, X, scores, codes=codes) == _parity.measure(opened, X, scores)
