"""The gate's edge cases: awkward batches a server will meet, each of which must be scored or clearly refused.
Scored means sound predictions for the task: binary scores finite in [0, 1]; multiclass probabilities finite, in
[0, 1] and summing to 1 in every row; regression finite values."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from steps._core.policy import Feature
from steps._model import task as _task
from steps._model.parity import UNSEEN

HUGE = 1e12
SUM_TOLERANCE = 1e-6  # how far from 1 a row of multiclass probabilities may sum (float rounding only)


class EdgeCase(TypedDict):
    """One batch's outcome: `scores` (sound predictions), `error` (a clear refusal) or `crash`."""

    name: str
    rows: int
    outcome: str  # scores | error | crash
    passed: bool
    detail: str


def edge_cases(pipeline: Any, features: Sequence[Feature], X: pd.DataFrame, task: str = "binary") -> list[EdgeCase]:
    """Score awkward batches: each must give sound predictions for the task (see the module's docstring) or a
    clear ValueError/TypeError."""
    # Object columns take any value without pandas upcasting, like a batch built from JSON requests.
    base = X.iloc[[0]].astype(object).reset_index(drop=True)

    def variants(changes: list[tuple[str, Any]]) -> pd.DataFrame:
        rows = []
        for name, value in changes:
            row = base.copy()
            row.at[0, name] = value
            rows.append(row)
        return pd.concat(rows, ignore_index=True) if rows else base.iloc[:0]

    numeric = [f for f in features if f.type != "categorical"]
    categorical = [f for f in features if f.type == "categorical"]
    bounds = [(f.name, b) for f in numeric for b in (f.min, f.max) if b is not None]
    missing = base.copy()
    for f in features:
        missing.at[0, f.name] = None
    cases = {
        "empty_batch": base.iloc[:0],
        "contract_bounds": variants(bounds),
        "huge_values": variants([(f.name, v) for f in numeric for v in (HUGE, -HUGE)]),
        "missing_each_feature": pd.concat(
            [variants([(f.name, None) for f in features]), missing], ignore_index=True
        ),
        "unseen_categories": variants([(f.name, UNSEEN) for f in categorical]),
    }
    results = []
    for name, batch in cases.items():
        if name != "empty_batch" and batch.empty:
            continue
        outcome, passed, detail = _try_scoring(pipeline, batch, task)
        results.append(EdgeCase(name=name, rows=len(batch), outcome=outcome, passed=passed, detail=detail))
    return results


def _try_scoring(pipeline: Any, batch: pd.DataFrame, task: str) -> tuple[str, bool, str]:
    """(outcome, passed, detail) of scoring one batch."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow warnings on 1e12 are expected; the scores are checked below
            predictions = _task.predict(pipeline, batch, task)
    except (ValueError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if not message:
            return "error", False, f"error {type(err).__name__} with no message"
        return "error", True, f"error {type(err).__name__}: {message[:160]}"
    except Exception as err:  # noqa: BLE001 - anything else is a crash, not a clear refusal: recorded
        return "crash", False, f"unclear error {type(err).__name__}: {err}"[:200]
    if len(predictions) != len(batch):
        return "scores", False, f"{len(predictions)} predictions for {len(batch)} rows"
    if task == "multiclass":
        return _probabilities(predictions)
    if task == "regression":
        bad = ~np.isfinite(predictions)
        if bad.any():
            return ("scores", False,
                    f"{int(bad.sum())} of {len(predictions)} values not finite, e.g. {float(predictions[bad][0])!r}")
        if not len(predictions):
            return "scores", True, "no rows, no values"
        return "scores", True, f"{len(predictions)} values in [{predictions.min():.4g}, {predictions.max():.4g}]"
    bad = ~np.isfinite(predictions) | (predictions < 0) | (predictions > 1)
    if bad.any():
        return ("scores", False,
                f"{int(bad.sum())} of {len(predictions)} scores outside [0, 1], e.g. {float(predictions[bad][0])!r}")
    if not len(predictions):
        return "scores", True, "no rows, no scores"
    return "scores", True, f"{len(predictions)} scores in [{predictions.min():.3g}, {predictions.max():.3g}]"


def _probabilities(p: np.ndarray) -> tuple[str, bool, str]:
    """(outcome, passed, detail) of a batch of multiclass probabilities."""
    rows = len(p)
    if not rows:
        return "scores", True, "no rows, no probabilities"
    if p.ndim != 2:
        return "scores", False, f"probabilities of shape {p.shape}, not one row of class probabilities per row"
    bad = (~np.isfinite(p) | (p < 0) | (p > 1)).any(axis=1)
    if bad.any():
        return ("scores", False, f"{int(bad.sum())} of {rows} rows with probabilities not finite or outside [0, 1], "
                                 f"e.g. {p[bad][0].tolist()!r}")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if off.any():
        return ("scores", False,
                f"{int(off.sum())} of {rows} rows whose probabilities do not sum to 1, e.g. {float(sums[off][0])!r}")
    return ("scores", True,
            f"{rows} rows of {p.shape[1]} probabilities in [{p.min():.3g}, {p.max():.3g}], each summing to 1")
