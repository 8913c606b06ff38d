"""The gate's parity check of the compiled predictor (steps._model.trees) against the skops estimator.

Both predict the holdout, plus variants of some of its rows that the holdout may lack: each feature missing in
turn and each categorical feature set to a value the contract does not know. The gate's value is the largest
difference between the two, compared as each task's predictions are read:

    binary      |compiled - skops| of P(positive)
    multiclass  |compiled - skops| of every class probability
    regression  |compiled - skops| of the predicted values divided by the standard deviation of the holdout's
                target (population, ddof=0): the difference in the target's own spread, so the same `maximum`
                (1e-5) means the same closeness for prices in dollars and for counts. When the caller has no
                target, the standard deviation of the skops predictions on the holdout stands in (the note says
                which); a constant one (0) leaves the values unscaled.

A bundle whose trees file does not load, or loads for another task, gets 1.0 (the largest difference two
probabilities can have; a whole standard deviation for regression), so the gate fails and says why.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from steps._core.policy import Feature
from steps._model import task as _task
from steps._model import trees as _predictor
from steps._model.bundle import Bundle

UNSEEN = "__unseen_category__"  # a category no contract lists (the gate's edge cases use it too)
VARIANT_ROWS = 100  # holdout rows that get the missing and unseen variants
WORST = 1.0
# Encoded rows turned into Python lists at a time: a 2M-row holdout (10M-row data) as one object-typed batch took
# ~1.9 GB and its lists ~1.4 GB more.
CHUNK_ROWS = 20_000


def measure(bundle: Bundle, X: pd.DataFrame, scores: np.ndarray, target: np.ndarray | None = None,
            workers: int = 1, codes: np.ndarray | None = None) -> tuple[float | None, str]:
    """(the largest difference compiled vs skops, a note) over X, whose skops predictions `scores` the gate
    already has (steps._model.task.predict's shape for the bundle's task). `target`: the holdout's target as the
    model learns it; regression scales by its standard deviation (see the module's docstring). `codes`: X as the
    pipeline's contract encoder encoded it for `scores`, which the compiled predictor then reads too (else X is
    encoded here). None when the bundle has no compiled predictor (nothing to compare)."""
    if _predictor.TREES_FILE not in bundle.files:
        return None, f"no {_predictor.TREES_FILE} in the bundle: the server predicts with model.skops"
    task = bundle.task
    classes = bundle.classes
    try:
        predictor = _predictor.load(bundle.path / _predictor.TREES_FILE, [f.name for f in bundle.features], task,
                                    len(classes) if classes is not None else None)
    except _predictor.TreesError as err:
        return WORST, f"{_predictor.TREES_FILE} does not load: {err}"
    pipeline = bundle.pipeline
    extra = variants(X, bundle.features)
    expected = np.asarray(scores, dtype=np.float64)
    if len(extra):
        expected = np.concatenate([expected, _task.predict(pipeline, extra, task)])
    encoder = pipeline[0]
    if codes is None:
        codes = encoder.transform(X)
    got = _compiled(predictor, _chunks(codes, encoder.transform(extra) if len(extra) else None), workers)
    if got.shape != expected.shape:
        return WORST, f"compiled predictions of shape {got.shape} for skops predictions of shape {expected.shape}"
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    rows = (f"over {len(X)} holdout rows and {len(extra)} variants (each feature missing, each category "
            f"unseen) with {predictor.trees} trees")
    if task == "multiclass":
        return diff, f"max |compiled - skops| of every class probability {rows}"
    if task != "regression":
        return diff, f"max |compiled - skops| {rows}"
    scale, by = _scale(target, np.asarray(scores, dtype=np.float64))
    if scale is None:
        return diff, f"max |compiled - skops| of the values {rows}, unscaled: {by}"
    return diff / scale, (f"max |compiled - skops| of the values ({diff:.3g}) / {by} ({scale:.6g}) {rows}")


def _chunks(codes: np.ndarray, extra: np.ndarray | None) -> Iterator[np.ndarray]:
    """The encoded rows of X, CHUNK_ROWS at a time, then the variants' (for the workers: a chunk's Python lists,
    not the holdout's, are what a worker holds)."""
    for start in range(0, len(codes), CHUNK_ROWS):
        yield codes[start:start + CHUNK_ROWS]
    if extra is not None:
        yield extra


def _compiled(predictor: _predictor.CompiledPredictor, chunks: Iterator[np.ndarray], workers: int) -> np.ndarray:
    """The compiled predictor's answers for every chunk of encoded rows, in `workers` forked processes when there
    is more than one: the generated code is pure Python, one core a process. The children inherit the compiled
    function (it does not pickle) and run no OpenMP code."""
    global _running
    _running = predictor
    try:
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                parts = list(pool.imap(_predict_encoded, chunks))
        else:
            parts = [_predict_encoded(rows) for rows in chunks]
    finally:
        _running = None
    return np.concatenate(parts)


_running: _predictor.CompiledPredictor | None = None  # the predictor _compiled's workers call


def _predict_encoded(encoded: Any) -> np.ndarray:
    if _running is None:
        raise RuntimeError("_predict_encoded runs only within _compiled")
    return np.asarray(_running.predict(np.asarray(encoded).tolist()), dtype=np.float64)


def _scale(target: np.ndarray | None, scores: np.ndarray) -> tuple[float | None, str]:
    """The standard deviation regression differences are divided by, and what it is."""
    if target is not None and len(target):
        spread, by = float(np.std(np.asarray(target, dtype=np.float64))), "the holdout target's standard deviation"
    else:
        spread, by = float(np.std(scores)) if len(scores) else 0.0, "the skops predictions' standard deviation"
    if not np.isfinite(spread) or spread <= 0.0:
        return None, f"{by} is {spread:.3g}"
    return spread, by


def variants(X: pd.DataFrame, features: Iterable[Feature]) -> pd.DataFrame:
    """The first VARIANT_ROWS rows of X again for each feature missing in turn, and for each categorical feature
    set to UNSEEN: inputs both predictors must route as scikit-learn does although the holdout may lack them."""
    base = X.head(VARIANT_ROWS).astype(object).reset_index(drop=True)
    if base.empty:
        return base
    parts = []
    for f in features:
        missing = base.copy()
        missing[f.name] = None
        parts.append(missing)
        if f.type == "categorical":
            unseen = base.copy()
            unseen[f.name] = UNSEEN
            parts.append(unseen)
    return pd.concat(parts, ignore_index=True)
