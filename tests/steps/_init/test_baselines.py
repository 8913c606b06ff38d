"""The naive baselines `mlops init` measures (steps/_init/baselines.py) on the holdout train holds out, checked
against scikit-learn's dummy estimators on the same rows, and the bounds it sets from them: between the baseline
and perfect, of the task's gates only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, mean_squared_error, r2_score

from steps._core.policy import TASK_GATES
from steps._init import baselines
from steps._init.target import Classes, Numbers, infer


@pytest.fixture(scope="module")
def labels() -> pd.Series:
    rng = np.random.default_rng(3)
    values = rng.choice(["low", "mid", "high", "urgent"], size=1000, p=[0.5, 0.25, 0.2, 0.05]).astype(object)
    values[::97] = None  # rows without a label: train never sees them
    return pd.Series(values, name="priority")


@pytest.fixture(scope="module")
def amounts() -> pd.Series:
    return pd.Series(np.random.default_rng(4).gamma(2.0, 40.0, 2000), name="amount")


def test_the_class_share_baseline_is_what_dummy_classifiers_score_on_trains_holdout(labels):
    target = infer(labels)
    assert isinstance(target, Classes) and target.classes == ("high", "low", "mid", "urgent")
    base = baselines.prior(labels, target)
    y = labels.dropna().map(target.classes.index).to_numpy()
    train, hold = baselines.split(len(y), y)
    X = np.zeros((len(y), 1))
    majority = DummyClassifier(strategy="most_frequent").fit(X[train], y[train]).predict(X[hold])
    shares = DummyClassifier(strategy="prior").fit(X[train], y[train]).predict_proba(X[hold])
    assert base.majority == "low"
    assert base.accuracy == pytest.approx(accuracy_score(y[hold], majority))
    assert base.macro_f1 == pytest.approx(f1_score(y[hold], majority, average="macro", labels=range(4)))
    assert base.log_loss == pytest.approx(log_loss(y[hold], shares, labels=range(4)))
    assert base.shares == pytest.approx(tuple(np.bincount(y[train], minlength=4) / len(train)))
    assert sum(base.holdout) == len(hold) == round(0.2 * len(y))


def test_the_mean_baseline_is_what_a_dummy_regressor_scores_on_trains_holdout(amounts):
    base = baselines.mean(amounts)
    y = amounts.to_numpy()
    train, hold = baselines.split(len(y), None)
    predicted = DummyRegressor(strategy="mean").fit(np.zeros((len(train), 1)), y[train]).predict(
        np.zeros((len(hold), 1)))
    assert base.mean == pytest.approx(y[train].mean())
    assert base.rmse == pytest.approx(np.sqrt(mean_squared_error(y[hold], predicted)))
    assert base.mae == pytest.approx(mean_absolute_error(y[hold], predicted))
    assert base.r2 == pytest.approx(r2_score(y[hold], predicted))
    assert base.rows == len(hold) == 400


def test_multiclass_bounds_sit_between_the_class_shares_and_perfect(labels):
    target = infer(labels)
    assert isinstance(target, Classes)
    base = baselines.prior(labels, target)
    gates = {b.gate: b.spec for b in baselines.multiclass_bounds(target, base, segments=None)}
    assert set(gates) <= TASK_GATES["multiclass"] and "macro_f1_gap" not in gates
    assert base.accuracy < gates["accuracy"]["minimum"] < 1
    assert max(base.macro_f1, 1 / 4) < gates["macro_f1"]["minimum"] < 1
    assert 0.9 * base.log_loss <= gates["log_loss"]["maximum"] < 0.91 * base.log_loss
    assert gates["log_loss_vs_prior"]["maximum"] < 1
    assert 0 < gates["class_recall"]["minimum"] < 1 / 4
    # "urgent" is 5% of the rows: about 10 in the holdout, and the recall gate counts it.
    assert gates["class_recall"]["min_support"] == min(base.holdout) < 20
    with_segments = {b.gate: b.spec for b in baselines.multiclass_bounds(target, base, segments=2)}
    assert with_segments["macro_f1_gap"] == {"maximum": 0.15, "min_rows": 50}  # 198 rows over 2 segments, halved


def test_regression_bounds_sit_between_the_mean_and_perfect(amounts):
    target = infer(amounts)
    assert isinstance(target, Numbers)
    base = baselines.mean(amounts)
    gates = {b.gate: b.spec for b in baselines.regression_bounds(target, base)}
    assert set(gates) <= TASK_GATES["regression"]
    # As rmse_vs_mean asks, in the target's units: 10% better than the mean, rounded up to 3 significant digits.
    assert 0.9 * base.rmse <= gates["rmse"]["maximum"] < 0.91 * base.rmse
    assert 0.9 * base.mae <= gates["mae"]["maximum"] < 0.91 * base.mae
    assert base.r2 < gates["r2"]["minimum"] < 1
    assert gates["rmse_vs_mean"]["maximum"] < 1
    assert 0 < gates["rmse"]["tolerance"] < 0.03 * base.rmse
