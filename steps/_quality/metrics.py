"""The holdout metrics of each task in plain numpy: the gate measures them once, and the paired bootstrap
(steps._quality.noise) re-measures them on every resample, so they must be fast and agree with scikit-learn's.

Every metric takes (y, predictions, reference): y the encoded target (binary 0/1, multiclass codes 0..k-1,
regression floats); predictions the model's output (binary P(positive) [n], multiclass probabilities [n, k],
regression values [n]); reference what the model was trained with that the metric needs: the binary threshold,
the training class shares (multiclass) or the training target mean (regression). A metric that is undefined on
the rows given (no class with enough support, a constant target) is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray, Any], float]
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log_loss clips probabilities to [eps, 1 - eps]


# --- binary (P(positive) and a threshold) -----------------------------------------------------------------------


def binary_accuracy(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(np.mean((s >= t) == (y == 1)))


def binary_precision(y: np.ndarray, s: np.ndarray, t: float) -> float:
    flagged = s >= t
    return float(np.sum(flagged & (y == 1)) / max(int(flagged.sum()), 1))


def binary_recall(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(np.sum((s >= t) & (y == 1)) / max(int(y.sum()), 1))


def binary_f1(y: np.ndarray, s: np.ndarray, t: float) -> float:
    p, r = binary_precision(y, s, t), binary_recall(y, s, t)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def roc_auc(y: np.ndarray, s: np.ndarray, t: float) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def pr_auc(y: np.ndarray, s: np.ndarray, t: float) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


class Ranking:
    """One model's P(positive) sorted once, for ROC AUC and average precision over many resamples of the same rows
    (steps._quality.noise): a resample is a count per row, so it needs no sort of its own. The areas equal
    scikit-learn's on the resampled rows bit for bit: its curves are the true and false positive counts at each
    distinct score, whole numbers that float64 sums exactly in any order; from those counts on, the arithmetic
    is scikit-learn's (roc_curve with drop_intermediate, auc; precision_recall_curve, average_precision_score)."""

    def __init__(self, y: np.ndarray, s: np.ndarray):
        order = np.argsort(s, kind="stable")[::-1]  # descending; the order within ties does not matter
        ordered = np.asarray(s)[order]
        self.order = order
        self.positive = (np.asarray(y)[order] == 1).astype(np.float64)
        # the last position of each distinct score, as scikit-learn's thresholds
        self.ends = np.append(np.flatnonzero(np.diff(ordered)), len(ordered) - 1)

    def counts(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(false positives, true positives) at each distinct score of the resample drawing row i counts[i]
        times, highest score first: scikit-learn's confusion_matrix_at_thresholds on the resampled rows."""
        weight = counts[self.order].astype(np.float64)
        seen = np.cumsum(weight)[self.ends]
        tps = np.cumsum(self.positive * weight)[self.ends]
        present = np.diff(seen, prepend=0.0) > 0  # scores no resampled row has are no threshold
        return (seen - tps)[present], tps[present]


def ranked_roc_auc(ranking: Ranking, counts: np.ndarray) -> float:
    """roc_auc_score on the resample of `counts` (see Ranking)."""
    from sklearn.metrics import auc

    fps, tps = ranking.counts(counts)
    if len(fps) > 2:  # roc_curve(drop_intermediate=True)
        keep = np.flatnonzero(np.concatenate([[True], np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), [True]]))
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.concatenate([[0.0], fps]), np.concatenate([[0.0], tps])
    fpr = np.full(fps.shape, np.nan) if fps[-1] <= 0 else fps / fps[-1]
    tpr = np.full(tps.shape, np.nan) if tps[-1] <= 0 else tps / tps[-1]
    return float(auc(fpr, tpr))


def ranked_pr_auc(ranking: Ranking, counts: np.ndarray) -> float:
    """average_precision_score on the resample of `counts` (see Ranking)."""
    fps, tps = ranking.counts(counts)
    ps = tps + fps
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(ps != 0, np.divide(tps, ps), 0.0)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    precision = np.concatenate([precision[::-1], [1.0]])
    recall = np.concatenate([recall[::-1], [0.0]])
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


# The binary metrics a resample measures from counts over a Ranking instead of the resampled rows.
RANKED: dict[str, Callable[[Ranking, np.ndarray], float]] = {"roc_auc": ranked_roc_auc, "pr_auc": ranked_pr_auc}


def binary_log_loss(y: np.ndarray, s: np.ndarray, t: float | None = None) -> float:
    p = np.clip(np.asarray(s, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


# --- multiclass (probabilities [n, k], columns in the contract's class order) -----------------------------------


def predicted_codes(p: np.ndarray) -> np.ndarray:
    """The predicted class code of each row: the most probable (ties: the lowest code, as numpy's argmax)."""
    codes: np.ndarray = np.argmax(p, axis=1)
    return codes


def confusion(y: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """counts[actual, predicted] over codes 0..k-1."""
    counts: np.ndarray = np.bincount(y.astype(np.int64) * k + predicted, minlength=k * k).reshape(k, k)
    return counts


def per_class(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Each class's precision, recall, F1 (0 where undefined, as scikit-learn's zero_division=0) and support."""
    counts = confusion(y, predicted_codes(p), p.shape[1])
    hits = np.diag(counts).astype(np.float64)
    support, flagged = counts.sum(axis=1), counts.sum(axis=0)
    precision = np.divide(hits, flagged, out=np.zeros_like(hits), where=flagged > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": flagged}


def multiclass_accuracy(y: np.ndarray, p: np.ndarray, shares: Any = None) -> float:
    return float(np.mean(predicted_codes(p) == y))


def macro_f1(y: np.ndarray, p: np.ndarray, shares: Any = None) -> float:
    """The unweighted mean of per-class F1 over the classes that occur in y or in the predictions (scikit-learn's
    f1_score(average="macro") without `labels`): a class absent from both says nothing about the model."""
    table = per_class(y, p)
    present = (table["support"] > 0) | (table["predicted"] > 0)
    return float(table["f1"][present].mean())


def multiclass_log_loss(y: np.ndarray, p: np.ndarray, shares: Any = None) -> float:
    rows = np.arange(len(y))
    chosen = np.clip(np.asarray(p, dtype=np.float64)[rows, y.astype(np.int64)], _EPS, 1 - _EPS)
    return float(-np.mean(np.log(chosen)))


def log_loss_vs_prior(y: np.ndarray, p: np.ndarray, shares: Any) -> float:
    """The model's log loss over that of always predicting the training class shares: < 1 beats the prior."""
    prior = np.tile(np.asarray(shares, dtype=np.float64), (len(y), 1))
    return multiclass_log_loss(y, p) / multiclass_log_loss(y, prior)


def class_recall(y: np.ndarray, p: np.ndarray, shares: Any = None, min_support: int = 1) -> float:
    """The lowest recall over the classes with at least `min_support` rows; NaN when no class has as many."""
    table = per_class(y, p)
    counted = table["support"] >= max(min_support, 1)
    return float(table["recall"][counted].min()) if counted.any() else float("nan")


# --- regression (predicted values [n]) -------------------------------------------------------------------------


def rmse(y: np.ndarray, v: np.ndarray, mean: Any = None) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - v) ** 2)))


def mae(y: np.ndarray, v: np.ndarray, mean: Any = None) -> float:
    return float(np.mean(np.abs(np.asarray(y, dtype=np.float64) - v)))


def r2(y: np.ndarray, v: np.ndarray, mean: Any = None) -> float:
    """1 - SS_res / SS_tot; NaN for a constant target, where it is undefined."""
    y = np.asarray(y, dtype=np.float64)
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - v) ** 2)) / total if total > 0 else float("nan")


def rmse_vs_mean(y: np.ndarray, v: np.ndarray, mean: Any) -> float:
    """The model's RMSE over that of always predicting the training target mean: < 1 beats the mean."""
    naive = rmse(y, np.full(len(y), float(mean)))
    return rmse(y, v) / naive if naive > 0 else float("nan")


# The gates whose value comes from the holdout's target and the predictions alone, per task: those a resample
# can re-measure. The segment gaps are left out: a resample thins every segment below its minimum.
METRICS: dict[str, dict[str, Metric]] = {
    "binary": {"accuracy": binary_accuracy, "precision": binary_precision, "recall": binary_recall,
               "f1": binary_f1, "roc_auc": roc_auc, "pr_auc": pr_auc, "log_loss": binary_log_loss},
    "multiclass": {"accuracy": multiclass_accuracy, "macro_f1": macro_f1, "log_loss": multiclass_log_loss,
                   "log_loss_vs_prior": log_loss_vs_prior, "class_recall": class_recall},
    "regression": {"rmse": rmse, "mae": mae, "r2": r2, "rmse_vs_mean": rmse_vs_mean},
}


def metric(task: str, name: str, settings: Mapping[str, Any] | None = None) -> Metric | None:
    """The function measuring gate `name` for `task` (with the gate's settings, e.g. class_recall's
    min_support); None for a gate that is not a holdout metric of the task."""
    found = METRICS.get(task, {}).get(name)
    if found is class_recall:
        return partial(class_recall, min_support=int((settings or {}).get("min_support", 1)))
    return found
