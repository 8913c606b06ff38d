"""How much of a difference between two models on one holdout is sampling noise: a paired bootstrap.

The candidate and the baseline score the same rows; resampling those rows (with replacement, the same resample
for both models) and measuring both each time gives the spread of their difference that another holdout of the
same size could have shown. A comparison gate then fails only when the candidate is worse by more than its
`tolerance` even at the favourable end of that spread (a one-sided 95% interval), so a retrain on a small or
imbalanced holdout is not rejected for a difference that a reshuffle would undo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 200
CONFIDENCE = 0.95  # one-sided
MAX_ROWS = 50_000  # above this the interval is far narrower than any tolerance: a random subset is enough

Metric = Callable[[np.ndarray, np.ndarray, float], float]  # (y, scores, threshold) -> value


def _accuracy(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(np.mean((s >= t) == (y == 1)))


def _precision(y: np.ndarray, s: np.ndarray, t: float) -> float:
    flagged = s >= t
    return float(np.sum(flagged & (y == 1)) / max(int(flagged.sum()), 1))


def _recall(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(np.sum((s >= t) & (y == 1)) / max(int(y.sum()), 1))


def _f1(y: np.ndarray, s: np.ndarray, t: float) -> float:
    p, r = _precision(y, s, t), _recall(y, s, t)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _roc_auc(y: np.ndarray, s: np.ndarray, t: float) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _pr_auc(y: np.ndarray, s: np.ndarray, t: float) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


# The gates whose value comes from the holdout's labels and scores: those a resample can re-measure.
METRICS: dict[str, Metric] = {"accuracy": _accuracy, "precision": _precision, "recall": _recall, "f1": _f1,
                              "roc_auc": _roc_auc, "pr_auc": _pr_auc}


@dataclass(frozen=True)
class Interval:
    """The one-sided 95% bounds of (candidate - baseline) over the resamples."""

    low: float  # 5th percentile
    high: float  # 95th percentile
    resamples: int

    def describe(self) -> str:
        return (f"95% bootstrap interval of the difference {self.low:+.4g} to {self.high:+.4g} "
                f"({self.resamples} resamples)")


def paired_difference(metric: str, y: np.ndarray, candidate: np.ndarray, candidate_threshold: float,
                      baseline: np.ndarray, baseline_threshold: float, seed: int) -> Interval | None:
    """The bootstrap interval of metric(candidate) - metric(baseline); None for a metric it cannot re-measure or
    resamples that never hold both classes."""
    measure = METRICS.get(metric)
    if measure is None:
        return None
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if len(y) > MAX_ROWS:
        keep = rng.choice(len(y), MAX_ROWS, replace=False)
        y, candidate, baseline = y[keep], candidate[keep], baseline[keep]
    differences = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        labels = y[rows]
        if labels.min() == labels.max():
            continue  # a resample with one class: AUCs are undefined, the others meaningless
        differences.append(measure(labels, candidate[rows], candidate_threshold)
                           - measure(labels, baseline[rows], baseline_threshold))
    if len(differences) < RESAMPLES // 2:
        return None
    values = np.asarray(differences)
    return Interval(float(np.quantile(values, 1 - CONFIDENCE)), float(np.quantile(values, CONFIDENCE)), len(values))
