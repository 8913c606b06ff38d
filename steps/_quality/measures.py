"""The gate's measures of one model on the holdout: accuracy and AUCs, size, recall gap between segments,
latency, peak memory, predictor parity and edge cases; and the stability of two models' feature importances.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from steps._core.errors import UsageError
from steps._core.policy import Gate, Policy
from steps._model import parity as _parity
from steps._model.bundle import Bundle
from steps._quality.edge_cases import EdgeCase, edge_cases

MIB = 1024 * 1024
# Always measured for the baseline too: cheap, and the report compares them.
CHEAP = frozenset({"accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc", "recall_gap", "model_size_mb"})
# Permutation importances: a fixed subsample holding every positive (up to half of it), 3 repeats, log loss
# (it uses every row's probability, so it is less noisy than average precision on a few positives).
# Stability is the Pearson correlation of the two models' importances: it weighs each feature by how much the
# models rely on it. A rank (Spearman) correlation weighs the order of the dozen features worth ~0 as much as the
# order of the few that matter: retrains after a drift that fires the drift check scored 0.71-0.86 on 40k-200k
# rows, so the loop rejected its own retrains. Pearson: 0.96-0.99 for those retrains, ~0 for a model that relies
# on no feature. It is a coarse check: a model whose strongest feature was scrambled scored 0.88-0.93 (its loss
# shows in pr_auc and the data contract, not here).
_IMPORTANCE_ROWS = 1000
_IMPORTANCE_REPEATS = 3


class SegmentRecall(TypedDict):
    """Recall at the threshold within one value of the segment column; `counted` when it has enough positives."""

    segment: str
    rows: int
    positives: int
    recall: float | None
    counted: bool


@dataclass
class Measured:
    """One model's measurements: its holdout scores, a value per measure (None: not measurable) and notes."""

    scores: np.ndarray
    metrics: dict[str, float | None]
    notes: dict[str, str]
    segments: list[SegmentRecall] = field(default_factory=list)
    edge_cases: list[EdgeCase] = field(default_factory=list)


def measure(
    bundle: Bundle,
    X: pd.DataFrame,
    y: np.ndarray,
    holdout: pd.DataFrame,
    policy: Policy,
    gates: dict[str, Gate],
    wanted: Set[str],
) -> Measured:
    """Score the holdout with the bundle's model and take the `wanted` measures (the label and score metrics
    always: precision, recall and F1 of the positive class at the bundle's own threshold)."""
    from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_fscore_support, roc_auc_score

    pipeline = bundle.pipeline
    try:
        scores = pipeline.predict_proba(X)[:, 1]
    except Exception as err:  # any failure to score the holdout means we cannot evaluate: say which model
        raise UsageError(f"bundle {bundle.path}: cannot score the holdout: {type(err).__name__}: {err}") from err
    predicted = scores >= bundle.threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", pos_label=1, zero_division=0)
    m: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
    }
    out = Measured(scores=scores, metrics=m, notes={})
    if "model_size_mb" in wanted:
        m["model_size_mb"] = sum((bundle.path / n).stat().st_size for n in bundle.files if n.startswith("model.")) / MIB
    if "recall_gap" in wanted:
        min_positives = gates["recall_gap"].settings["min_positives"] if "recall_gap" in gates else 1
        m["recall_gap"], out.notes["recall_gap"], out.segments = recall_gap(
            y, predicted, holdout, policy.data.segment, min_positives
        )
    if "latency_p95_ms" in wanted:
        m["latency_p95_ms"] = latency_p95_ms(pipeline, X, gates["latency_p95_ms"].settings["calls"])
        threads = os.environ.get("OMP_NUM_THREADS") or "1"
        out.notes["latency_p95_ms"] = f"single-row predict_proba calls, in-process, OMP_NUM_THREADS={threads}"
    if "peak_memory_mb" in wanted:
        rows = gates["peak_memory_mb"].settings["rows"]
        m["peak_memory_mb"] = peak_memory_mb(pipeline, X, rows, policy.model.seed)
        out.notes["peak_memory_mb"] = f"tracemalloc peak while scoring {rows} rows" + (
            " (sampled with replacement from the holdout)" if rows > len(X) else ""
        )
    if "predictor_parity" in wanted:
        m["predictor_parity"], out.notes["predictor_parity"] = _parity.measure(bundle, X, scores)
    if "edge_cases" in wanted:
        out.edge_cases = edge_cases(pipeline, bundle.features, X)
        m["edge_cases"] = sum(not c["passed"] for c in out.edge_cases)
        out.notes["edge_cases"] = "; ".join(f"{c['name']}: {c['detail']}" for c in out.edge_cases)
    return out


def recall_gap(
    y: np.ndarray, predicted: np.ndarray, holdout: pd.DataFrame, segment: str | None, min_positives: int
) -> tuple[float | None, str, list[SegmentRecall]]:
    """The largest difference in recall between segments with at least `min_positives` positives, a note, and
    every segment's recall (for the report)."""
    if segment is None:
        return None, "no segment column (data.segment): nothing to compare", []
    if segment not in holdout.columns:
        return None, f"the holdout has no segment column {segment!r}: nothing to compare", []
    groups = holdout[segment].astype(object).where(holdout[segment].notna(), "<missing>").astype(str).to_numpy()
    table: list[SegmentRecall] = []
    for name in sorted(set(groups)):
        in_group = groups == name
        positives = int(y[in_group].sum())
        table.append(
            SegmentRecall(
                segment=name,
                rows=int(in_group.sum()),
                positives=positives,
                recall=float(predicted[in_group & (y == 1)].mean()) if positives else None,
                counted=positives >= min_positives,
            )
        )
    # A counted segment has positives, so its recall is a number.
    counted = [(t["segment"], t["recall"]) for t in table if t["counted"] and t["recall"] is not None]
    if len(counted) < 2:
        shown = ", ".join(f"{t['segment']}: {t['positives']}" for t in table)
        return (
            None,
            f"fewer than 2 segments of {segment!r} with >= {min_positives} positives ({shown}): nothing to compare",
            table,
        )
    worst = min(counted, key=lambda t: t[1])
    best = max(counted, key=lambda t: t[1])
    note = (
        f"{segment}: recall {best[0]} {best[1]:.3f} (highest), "
        f"{worst[0]} {worst[1]:.3f} (lowest) over {len(counted)} segments"
    )
    return best[1] - worst[1], note, table


def latency_p95_ms(pipeline: Any, X: pd.DataFrame, calls: int) -> float:
    """The 95th percentile of single-row predict_proba calls, in milliseconds."""
    rows = [X.iloc[[i % len(X)]] for i in range(calls)]
    for row in rows[:10]:  # warm caches and lazy imports so the first calls do not count
        pipeline.predict_proba(row)
    elapsed = np.empty(calls)
    for i, row in enumerate(rows):
        start = time.perf_counter()
        pipeline.predict_proba(row)
        elapsed[i] = time.perf_counter() - start
    return float(np.percentile(elapsed, 95) * 1000)


def peak_memory_mb(pipeline: Any, X: pd.DataFrame, rows: int, seed: int) -> float:
    """Python's allocations at their peak while scoring `rows` holdout rows at once, in MiB."""
    batch = X.sample(n=rows, replace=rows > len(X), random_state=seed)
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pipeline.predict_proba(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return (peak - before) / MIB


def importance_stability(
    candidate: Any, baseline: Any, X_candidate: pd.DataFrame, X_baseline: pd.DataFrame, y: np.ndarray, seed: int
) -> tuple[float | None, dict[str, tuple[float, float | None]]]:
    """The Pearson correlation of the two models' permutation importances (None when undefined), and each of
    the candidate's features with its importance in both (for the report)."""
    rows = _importance_rows(y, seed)
    cand = _importances(candidate, X_candidate.iloc[rows], y[rows], seed)
    base = _importances(baseline, X_baseline.iloc[rows], y[rows], seed)
    return _correlation(cand, base), {n: (v, base.get(n)) for n, v in cand.items()}


def _importance_rows(y: np.ndarray, seed: int) -> np.ndarray:
    """The holdout rows both importances are measured on: every positive (up to half), then negatives."""
    if len(y) <= _IMPORTANCE_ROWS:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = min(len(positives), _IMPORTANCE_ROWS // 2)
    n_neg = min(len(negatives), _IMPORTANCE_ROWS - n_pos)
    return np.sort(
        np.concatenate([rng.choice(positives, n_pos, replace=False), rng.choice(negatives, n_neg, replace=False)])
    )


def _importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int) -> dict[str, float]:
    """Permutation importances per raw feature: the mean increase in log loss when that column is shuffled."""
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        pipeline, X, y, scoring="neg_log_loss", n_repeats=_IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    return {name: float(v) for name, v in zip(X.columns, result.importances_mean, strict=True)}


def _correlation(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Pearson correlation of two importance vectors over their common features; None when undefined."""
    common = [n for n in a if n in b]
    if len(common) < 2:
        return None
    x = np.array([a[n] for n in common], dtype=float)
    y = np.array([b[n] for n in common], dtype=float)
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((x @ x) * (y @ y)))
    if not np.isfinite(norm) or norm == 0.0:
        return None  # constant importances (a model that uses no feature): no correlation to speak of
    return float(np.clip((x @ y) / norm, -1.0, 1.0))
