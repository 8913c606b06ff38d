"""The gate's edge cases: awkward batches a server will meet, each of which must be scored or clearly refused."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from steps._core.policy import Feature
from steps._model.parity import UNSEEN

HUGE = 1e12


class EdgeCase(TypedDict):
    """One batch's outcome: `scores` (finite, in [0, 1]), `error` (a clear refusal) or `crash`."""

    name: str
    rows: int
    outcome: str  # scores | error | crash
    passed: bool
    detail: str


def edge_cases(pipeline: Any, features: Sequence[Feature], X: pd.DataFrame) -> list[EdgeCase]:
    """Score awkward batches: each must give finite scores in [0, 1] or a clear ValueError/TypeError."""
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
        outcome, passed, detail = _try_scoring(pipeline, batch)
        results.append(EdgeCase(name=name, rows=len(batch), outcome=outcome, passed=passed, detail=detail))
    return results


def _try_scoring(pipeline: Any, batch: pd.DataFrame) -> tuple[str, bool, str]:
    """(outcome, passed, detail) of scoring one batch."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow warnings on 1e12 are expected; the scores are checked below
            scores = np.asarray(pipeline.predict_proba(batch))[:, 1]
    except (ValueError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if not message:
            return "error", False, f"error {type(err).__name__} with no message"
        return "error", True, f"error {type(err).__name__}: {message[:160]}"
    except Exception as err:  # noqa: BLE001 - anything else is a crash, not a clear refusal: recorded
        return "crash", False, f"unclear error {type(err).__name__}: {err}"[:200]
    if len(scores) != len(batch):
        return "scores", False, f"{len(scores)} scores for {len(batch)} rows"
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        return "scores", False, f"{int(bad.sum())} of {len(scores)} scores outside [0, 1], e.g. {scores[bad][0]!r}"
    if not len(scores):
        return "scores", True, "no rows, no scores"
    return "scores", True, f"{len(scores)} scores in [{scores.min():.3g}, {scores.max():.3g}]"
