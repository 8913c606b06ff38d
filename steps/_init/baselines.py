"""The naive baselines of a multiclass and a regression target, measured on the holdout train will hold out, and
the gate bounds `mlops init` sets from them: the class shares (always the majority class, or the training shares as
probabilities) and the training mean. Each bound says, in the policy's comment, what the baseline scored.

The split is train's (steps/train.py): scikit-learn's train_test_split of the labelled rows, in the file's order,
with the policy's holdout_fraction and seed, stratified by class for a classifier. So the numbers in the comments
are those the gate's vs-baseline measures (log_loss_vs_prior, rmse_vs_mean) divide by on the first training run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from steps._core.categories import keys
from steps._init.columns import round_up
from steps._init.gates import Bound, common_bounds
from steps._init.target import Classes, Numbers

HOLDOUT_FRACTION = 0.2
SEED = 42
VS_BASELINE = 0.9  # rmse_vs_mean and log_loss_vs_prior: at least 10% better than the naive baseline


@dataclass(frozen=True)
class Prior:
    """What knowing only the class shares scores on the holdout."""

    shares: tuple[float, ...]  # of the training split, in class order
    holdout: tuple[int, ...]  # holdout rows of each class, in class order
    majority: str | int  # the training split's most frequent class
    accuracy: float  # always answering the majority class
    macro_f1: float  # the same
    log_loss: float  # the training shares as every row's probabilities


@dataclass(frozen=True)
class Mean:
    """What always predicting the training mean scores on the holdout."""

    mean: float
    rmse: float
    mae: float
    r2: float
    rows: int  # holdout rows


def split(rows: int, labels: np.ndarray | None, fraction: float = HOLDOUT_FRACTION,
          seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Train's split of `rows` labelled rows: (training positions, holdout positions); `labels` to stratify by."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(rows)
    train, hold = train_test_split(positions, test_size=fraction, stratify=labels, random_state=seed)
    return np.asarray(train), np.asarray(hold)


def prior(values: pd.Series, target: Classes) -> Prior:
    """The class-share baseline of `values` (the target column, rows without a label included: train never sees
    them) on train's holdout."""
    order = {k: i for i, k in enumerate(keys(pd.Series(target.classes, dtype=object)))}
    codes = np.array([order[k] for k in keys(values.dropna())], dtype=np.int64)
    k = len(target.classes)
    train, hold = split(len(codes), codes)
    shares = np.bincount(codes[train], minlength=k) / len(train)
    held = np.bincount(codes[hold], minlength=k)
    top = int(np.argmax(shares))
    share = held[top] / len(hold)
    return Prior(tuple(float(s) for s in shares), tuple(int(n) for n in held), target.classes[top], float(share),
                 float(2 * share / (1 + share) / k), float(-np.mean(np.log(shares[codes[hold]]))))


def mean(values: pd.Series) -> Mean:
    """The training-mean baseline of `values` (the target column) on train's holdout."""
    y = pd.to_numeric(values.dropna()).to_numpy(dtype=np.float64)
    train, hold = split(len(y), None)
    m = float(y[train].mean())
    errors = y[hold] - m
    spread = float(np.sum((y[hold] - y[hold].mean()) ** 2))
    r2 = 1 - float(np.sum(errors ** 2)) / spread if spread > 0 else 0.0
    return Mean(m, float(np.sqrt(np.mean(errors ** 2))), float(np.mean(np.abs(errors))), r2, len(hold))


def multiclass_bounds(target: Classes, base: Prior, segments: int | None) -> list[Bound]:
    """Absolute bounds above what the class shares score on this holdout, comparisons with the production model
    within its noise, the lowest class recall and (with a segment) the macro-F1 gap between segments."""
    k, n = len(target.classes), sum(base.holdout)
    acc0 = base.accuracy
    se = math.sqrt(acc0 * (1 - acc0) / n)
    accuracy = round(min(acc0 + 3 * se, acc0 + (1 - acc0) / 2), 3)
    f0 = max(base.macro_f1, 1 / k)
    macro_f1 = round(min(1.5 * f0, f0 + (1 - f0) / 4), 3)
    smallest = min(base.holdout)
    support = max(5, min(20, smallest))
    recall = round(1 / (2 * k), 3)
    out = [
        Bound("accuracy", {"minimum": accuracy, "comparison": "gte", "tolerance": 0.01},
              f"always answering the majority class ({base.majority!r}) scores {acc0:.3g} on the {n} holdout rows, "
              f"give or take {se:.3f} (one standard error): this asks for 3 of them more (at most half way to "
              "perfect)"),
        Bound("macro_f1", {"minimum": macro_f1, "comparison": "gte", "tolerance": 0.02},
              f"the mean of the {k} classes' F1. Always answering the majority class scores {base.macro_f1:.3g}, "
              f"guessing by the class shares about {1 / k:.3g}: this asks for 1.5 times the better (at most a "
              "quarter of the way to perfect)"),
        Bound("log_loss", {"maximum": _up(VS_BASELINE * base.log_loss), "comparison": "lte", "tolerance": 0.02},
              f"the training class shares as every row's probabilities score {base.log_loss:.4g} on this holdout: "
              f"this asks for at least {1 - VS_BASELINE:.0%} less, as log_loss_vs_prior does"),
        Bound("log_loss_vs_prior", {"maximum": VS_BASELINE},
              f"the log loss divided by the class shares' ({base.log_loss:.4g} on this holdout; the gate measures it "
              f"again on its holdout): below 1 beats them, and this asks for at least {1 - VS_BASELINE:.0%} better"),
        Bound("class_recall", {"minimum": recall, "min_support": support},
              f"the lowest recall of a class with at least {support} holdout rows (the smallest class has about "
              f"{smallest}). A model that never answers a class scores 0 on it, guessing uniformly 1/{k}: this "
              "asks for half of that"),
    ]
    out += common_bounds()
    if segments:
        min_rows = max(30, min(100, round(n / segments / 2)))
        out.append(Bound("macro_f1_gap", {"maximum": 0.15, "min_rows": min_rows},
                         f"the largest difference in macro-F1 between segments with at least {min_rows} holdout rows "
                         f"(about {n} rows over {segments} segments); with fewer a segment's macro-F1 is noise, and "
                         "the gate says skipped"))
    return out


def regression_bounds(target: Numbers, base: Mean) -> list[Bound]:
    """Absolute bounds at or below what the training mean scores on this holdout, and the ratio to it."""
    r2 = round(max(base.r2, 0.0) + 0.1, 3)
    out = [
        Bound("rmse", {"maximum": _up(VS_BASELINE * base.rmse), "comparison": "lte",
                       "tolerance": _up(0.02 * base.rmse)},
              f"always predicting the training mean ({base.mean:.4g}) scores {base.rmse:.4g} on the {base.rows} "
              f"holdout rows, in the units of {target.name}: this asks for at least {1 - VS_BASELINE:.0%} less, as "
              "rmse_vs_mean does; a retrain is compared with production within 2% of the mean's"),
        Bound("mae", {"maximum": _up(VS_BASELINE * base.mae), "comparison": "lte", "tolerance": _up(0.02 * base.mae)},
              f"the training mean's mean absolute error on this holdout is {base.mae:.4g}: this asks for at least "
              f"{1 - VS_BASELINE:.0%} less"),
        Bound("r2", {"minimum": r2, "comparison": "gte", "tolerance": 0.02},
              f"the training mean scores {base.r2:.3g} on this holdout (0, or a little below on new rows): this "
              "asks for a tenth of the holdout's variance explained beyond it"),
        Bound("rmse_vs_mean", {"maximum": VS_BASELINE},
              f"the RMSE divided by the training mean's ({base.rmse:.4g} on this holdout; the gate measures it again "
              f"on its holdout): below 1 beats it, and this asks for at least {1 - VS_BASELINE:.0%} better"),
    ]
    return out + common_bounds()



def _up(x: float) -> int | float:
    """Three significant digits, rounded up, written as a whole number where it is one (123, not 123.0)."""
    y = round_up(x, 3)
    return int(y) if y.is_integer() else y
