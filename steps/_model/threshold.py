"""Choosing the decision threshold of a binary model by the policy's rule (model.threshold), on scores of rows the
model did not learn from: train's validation split, never the holdout the gates judge.

A row is labelled positive when its score is at or above the threshold. Every candidate threshold is one of the
validation scores, so the choice is exact for those rows (no grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from steps._core.policy import ThresholdRule


@dataclass(frozen=True)
class Choice:
    """The threshold, and what it gives on the rows it was chosen on."""

    threshold: float
    precision: float
    recall: float
    f1: float
    reached: bool  # target rules: whether the target was reached (else the closest threshold was taken)

    def record(self, rule: ThresholdRule, rows: int, positives: int) -> dict[str, Any]:
        """What bundle.json says about the choice (`threshold_rule`)."""
        out: dict[str, Any] = {"rule": rule.rule, "threshold": self.threshold, "validation_rows": rows,
                               "validation_positives": positives, "precision": self.precision,
                               "recall": self.recall, "f1": self.f1}
        if rule.value is not None and rule.rule != "fixed":
            out.update(target=rule.value, reached=self.reached)
        if rule.rule == "min_cost":
            out.update(false_positive_cost=rule.false_positive_cost, false_negative_cost=rule.false_negative_cost)
        return out


def choose(y: np.ndarray, scores: np.ndarray, rule: ThresholdRule) -> Choice:
    """The threshold `rule` picks for labels `y` (0/1) and `scores`. Raises ValueError without both classes."""
    y = np.asarray(y, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if rule.rule == "fixed":
        return _at(y, scores, float(rule.value if rule.value is not None else 0.5), reached=True)
    if positives == 0 or positives == len(y):
        raise ValueError(f"choosing a threshold ({rule.rule}) needs rows of both classes; the validation split has "
                         f"{positives} positives of {len(y)}")
    thresholds, tp, fp = _curve(y, scores)
    fn = positives - tp
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / positives
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    reached = True
    if rule.rule == "max_f1":
        best = int(np.argmax(f1))  # the first maximum: the highest threshold among equals
    elif rule.rule == "target_recall":
        ok = np.flatnonzero(recall >= float(rule.value or 0))  # recall grows as the threshold falls
        best = int(ok[0]) if len(ok) else len(thresholds) - 1
        reached = bool(len(ok))
    elif rule.rule == "target_precision":
        ok = np.flatnonzero(precision >= float(rule.value or 0))
        best = int(ok[-1]) if len(ok) else int(np.argmax(precision))  # the most recall at that precision
        reached = bool(len(ok))
    elif rule.rule == "min_cost":
        cost = fp * rule.false_positive_cost + fn * rule.false_negative_cost
        best = int(np.argmin(cost))
    else:
        raise ValueError(f"model.threshold.rule: unknown rule {rule.rule!r}")
    return Choice(float(thresholds[best]), float(precision[best]), float(recall[best]), float(f1[best]), reached)


def _curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores, highest first, and the true and false positives when labelling at or above each."""
    order = np.argsort(-scores, kind="stable")
    ranked, labels = scores[order], y[order]
    tp, fp = np.cumsum(labels), np.cumsum(1 - labels)
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each distinct score
    return ranked[last], tp[last], fp[last]


def _at(y: np.ndarray, scores: np.ndarray, threshold: float, reached: bool) -> Choice:
    predicted = scores >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(y.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return Choice(threshold, precision, recall, f1, reached)
