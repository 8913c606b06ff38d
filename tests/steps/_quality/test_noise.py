"""The paired bootstrap of (candidate - baseline) on one holdout: wide on a few positives, narrow on many, centred
on the observed difference, None where the metric cannot be resampled; for every task's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from steps._quality.metrics import macro_f1, rmse_vs_mean
from steps._quality.noise import CONFIDENCE, RESAMPLES, paired_difference


def _scores(n: int, positives: int, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[:positives] = 1
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + separation * y)))
    return y, scores


def test_the_interval_shrinks_with_more_positives_and_holds_the_observed_difference():
    small_y, small = _scores(400, 12, 2.0, 1)
    _, small_other = _scores(400, 12, 1.8, 2)
    large_y, large = _scores(8000, 240, 2.0, 1)
    _, large_other = _scores(8000, 240, 1.8, 2)
    wide = paired_difference("roc_auc", small_y, small, 0.5, small_other, 0.5, seed=0)
    narrow = paired_difference("roc_auc", large_y, large, 0.5, large_other, 0.5, seed=0)
    assert wide is not None and narrow is not None
    assert (wide.high - wide.low) > 3 * (narrow.high - narrow.low)
    from sklearn.metrics import roc_auc_score

    observed = roc_auc_score(large_y, large) - roc_auc_score(large_y, large_other)
    assert narrow.low <= observed <= narrow.high


def test_a_metric_it_cannot_resample_has_no_interval():
    y, s = _scores(200, 20, 1.0, 3)
    assert paired_difference("latency_p95_ms", y, s, 0.5, s, 0.5, seed=0) is None


def test_the_same_model_twice_differs_by_nothing():
    y, s = _scores(500, 50, 1.0, 4)
    same = paired_difference("f1", y, s, 0.4, s, 0.4, seed=0)
    assert same is not None and same.low == same.high == 0.0


def test_a_multiclass_interval_holds_the_observed_macro_f1_difference() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 2000)
    better, worse = (np.eye(3)[y] * skill + rng.random((2000, 3)) for skill in (1.0, 0.4))
    better, worse = better / better.sum(axis=1, keepdims=True), worse / worse.sum(axis=1, keepdims=True)
    interval = paired_difference("macro_f1", y, worse, None, better, None, seed=0, task="multiclass")
    assert interval is not None
    observed = macro_f1(y, worse) - macro_f1(y, better)
    assert interval.low <= observed <= interval.high < 0
    assert paired_difference("class_recall", y, worse, None, better, None, seed=0, task="multiclass",
                             settings={"min_support": 5000}) is None  # no class ever has 5000 rows


def test_a_regression_interval_measures_each_model_against_its_own_training_mean() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(10, 3, 1000)
    values = y + rng.normal(0, 1, 1000)
    same = paired_difference("rmse_vs_mean", y, values, 10.0, values, 10.0, seed=0, task="regression")
    assert same is not None and same.low == same.high == 0.0
    # The same predictions, a baseline trained on a target whose mean was far off: its naive RMSE is larger, so
    # its ratio is smaller, and the candidate's ratio looks worse by a difference the interval brackets.
    shifted = paired_difference("rmse_vs_mean", y, values, 10.0, values, 16.0, seed=0, task="regression")
    observed = rmse_vs_mean(y, values, 10.0) - rmse_vs_mean(y, values, 16.0)
    assert shifted is not None and shifted.low <= observed <= shifted.high and observed > 0
    assert paired_difference("accuracy", y, values, None, values, None, seed=0, task="regression") is None


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct-scores", "tied-scores"])
def test_auc_intervals_equal_scikit_learn_s_on_every_resample(metric: str, ties: bool) -> None:
    """ROC AUC and average precision are measured from counts over scores sorted once: the interval is the one
    scikit-learn's functions give on each resample's rows, to the last bit."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, candidate = _scores(3000, 90, 1.5, 7)
    _, baseline = _scores(3000, 90, 1.2, 8)
    if ties:
        candidate, baseline = np.round(candidate, 2), np.round(baseline, 1)
    score = roc_auc_score if metric == "roc_auc" else average_precision_score
    rng = np.random.default_rng(3)
    differences = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() != y[rows].max():
            differences.append(float(score(y[rows], candidate[rows])) - float(score(y[rows], baseline[rows])))
    expected = (float(np.quantile(differences, 1 - CONFIDENCE)), float(np.quantile(differences, CONFIDENCE)),
                len(differences))
    got = paired_difference(metric, y, candidate, 0.5, baseline, 0.5, seed=3)
    assert got is not None and (got.low, got.high, got.resamples) == expected
