"""The gate's parity check of the compiled predictor (steps._model.trees) against the skops estimator.

Both score the holdout, plus variants of some of its rows that the holdout may lack: each feature missing in
turn and each categorical feature set to a value the contract does not know. The gate's value is the largest
absolute difference between the two scores; a bundle whose trees file does not load gets 1.0, the largest
difference two probabilities can have, so the gate fails and says why.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from steps._core.policy import Feature
from steps._model import trees as _predictor
from steps._model.bundle import Bundle

UNSEEN = "__unseen_category__"  # a category no contract lists (the gate's edge cases use it too)
VARIANT_ROWS = 100  # holdout rows that get the missing and unseen variants
WORST = 1.0


def measure(bundle: Bundle, X: pd.DataFrame, scores: np.ndarray) -> tuple[float | None, str]:
    """(max |compiled - skops|, a note) over X, whose skops `scores` the gate already has. None when the bundle
    has no compiled predictor (nothing to compare)."""
    if _predictor.TREES_FILE not in bundle.files:
        return None, f"no {_predictor.TREES_FILE} in the bundle: the server scores with model.skops"
    try:
        predictor = _predictor.load(bundle.path / _predictor.TREES_FILE, [f.name for f in bundle.features])
    except _predictor.TreesError as err:
        return WORST, f"{_predictor.TREES_FILE} does not load: {err}"
    pipeline = bundle.pipeline
    variants = _variants(X, bundle.features)
    encoder = pipeline[0]
    expected = np.concatenate([np.asarray(scores, dtype=np.float64),
                               pipeline.predict_proba(variants)[:, 1] if len(variants) else np.empty(0)])
    batch = pd.concat([X, variants], ignore_index=True) if len(variants) else X
    got = np.asarray(predictor.predict(encoder.transform(batch).tolist()), dtype=np.float64)
    if got.shape != expected.shape:
        return WORST, f"{len(got)} compiled scores for {len(expected)} rows"
    diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    return diff, (f"max |compiled - skops| over {len(X)} holdout rows and {len(variants)} variants (each feature "
                  f"missing, each category unseen) with {predictor.trees} trees")


def _variants(X: pd.DataFrame, features: Iterable[Feature]) -> pd.DataFrame:
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
