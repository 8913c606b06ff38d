"""How much of a difference between two models on one holdout is sampling noise: a paired bootstrap.

The candidate and the baseline score the same rows; resampling those rows (with replacement, the same resample
for both models) and measuring both each time gives the spread of their difference that another holdout of the
same size could have shown. A comparison gate then fails only when the candidate is worse by more than its
`tolerance` even at the favourable end of that spread (a one-sided 95% interval), so a retrain on a small or
imbalanced holdout is not rejected for a difference that a reshuffle would undo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from steps._quality import metrics as _metrics

RESAMPLES = 200
CONFIDENCE = 0.95  # one-sided
MAX_ROWS = 50_000  # above this the interval is far narrower than any tolerance: a random subset is enough


@dataclass(frozen=True)
class Interval:
    """The one-sided 95% bounds of (candidate - baseline) over the resamples."""

    low: float  # 5th percentile
    high: float  # 95th percentile
    resamples: int

    def describe(self) -> str:
        return (f"95% bootstrap interval of the difference {self.low:+.4g} to {self.high:+.4g} "
                f"({self.resamples} resamples)")


def paired_difference(metric: str, y: np.ndarray, candidate: np.ndarray, candidate_reference: Any,
                      baseline: np.ndarray, baseline_reference: Any, seed: int, task: str = "binary",
                      settings: Mapping[str, Any] | None = None) -> Interval | None:
    """The bootstrap interval of metric(candidate) - metric(baseline), each model with its own reference (its
    threshold, training class shares or training target mean: steps._quality.metrics); None for a metric it cannot
    re-measure, or too few resamples where both values are defined."""
    measure = _metrics.metric(task, metric, settings)
    if measure is None:
        return None
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if len(y) > MAX_ROWS:
        keep = rng.choice(len(y), MAX_ROWS, replace=False)
        y, candidate, baseline = y[keep], candidate[keep], baseline[keep]
    # ROC AUC and average precision sort the scores: sorted once, a resample is a count per row (the same values)
    ranked = _metrics.RANKED.get(metric) if task == "binary" else None
    rankings = None if ranked is None else (_metrics.Ranking(y, candidate), _metrics.Ranking(y, baseline))
    differences = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        labels = y[rows]
        if labels.min() == labels.max():
            continue  # one class (or a constant target): AUCs and R² are undefined, the others meaningless
        if ranked is not None and rankings is not None:
            counts = np.bincount(rows, minlength=len(y))
            difference = ranked(rankings[0], counts) - ranked(rankings[1], counts)
        else:
            difference = (measure(labels, candidate[rows], candidate_reference)
                          - measure(labels, baseline[rows], baseline_reference))
        if np.isfinite(difference):
            differences.append(difference)
    if len(differences) < RESAMPLES // 2:
        return None
    values = np.asarray(differences)
    return Interval(float(np.quantile(values, 1 - CONFIDENCE)), float(np.quantile(values, CONFIDENCE)), len(values))
