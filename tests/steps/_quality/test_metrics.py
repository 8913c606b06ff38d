"""The holdout metrics of each task agree with scikit-learn's own functions on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from steps._quality import metrics


def _multiclass(n: int, k: int, seed: int, skill: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += skill
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    return y, y + rng.normal(0, 4, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_equal_scikit_learn_s(seed: int) -> None:
    y, p = _multiclass(500, 4, seed)
    predicted = p.argmax(axis=1)
    assert metrics.multiclass_accuracy(y, p) == pytest.approx(sk.accuracy_score(y, predicted))
    assert metrics.macro_f1(y, p) == pytest.approx(sk.f1_score(y, predicted, average="macro", zero_division=0))
    assert metrics.multiclass_log_loss(y, p) == pytest.approx(sk.log_loss(y, p, labels=[0, 1, 2, 3]))
    shares = [0.1, 0.2, 0.3, 0.4]
    prior = sk.log_loss(y, np.tile(shares, (len(y), 1)), labels=[0, 1, 2, 3])
    assert metrics.log_loss_vs_prior(y, p, shares) == pytest.approx(sk.log_loss(y, p, labels=[0, 1, 2, 3]) / prior)
    table = metrics.per_class(y, p)
    np.testing.assert_allclose(table["recall"], sk.recall_score(y, predicted, average=None, labels=[0, 1, 2, 3]))
    np.testing.assert_allclose(table["precision"], sk.precision_score(y, predicted, average=None, zero_division=0))
    np.testing.assert_array_equal(metrics.confusion(y, predicted, 4), sk.confusion_matrix(y, predicted))
    assert metrics.class_recall(y, p, min_support=1) == pytest.approx(
        sk.recall_score(y, predicted, average=None).min())


def test_macro_f1_leaves_out_a_class_absent_from_target_and_predictions_as_scikit_learn_does() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    expected = sk.f1_score(y, p.argmax(axis=1), average="macro", zero_division=0)
    assert metrics.macro_f1(y, p) == pytest.approx(expected)
    # Class 2 never occurs: log loss over every class of the model still counts its column.
    assert metrics.multiclass_log_loss(y, p) == pytest.approx(sk.log_loss(y, p, labels=[0, 1, 2]))


def test_class_recall_counts_only_classes_with_enough_rows() -> None:
    y = np.array([0] * 30 + [1] * 30 + [2] * 5)
    p = np.zeros((65, 3))
    p[:30, 0] = 1  # class 0 all right
    p[30:45, 1], p[45:60, 0] = 1, 1  # class 1 half right
    p[60:, 0] = 1  # class 2 never right, but too rare to count at 20
    assert metrics.class_recall(y, p, min_support=20) == pytest.approx(0.5)
    assert metrics.class_recall(y, p, min_support=1) == 0.0
    assert np.isnan(metrics.class_recall(y, p, min_support=100))
    assert metrics.metric("multiclass", "class_recall", {"min_support": 20})(y, p, None) == pytest.approx(0.5)  # type: ignore[misc]


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_metrics_equal_scikit_learn_s(seed: int) -> None:
    y, v = _regression(400, seed)
    assert metrics.rmse(y, v) == pytest.approx(sk.root_mean_squared_error(y, v))
    assert metrics.mae(y, v) == pytest.approx(sk.mean_absolute_error(y, v))
    assert metrics.r2(y, v) == pytest.approx(sk.r2_score(y, v))
    naive = sk.root_mean_squared_error(y, np.full(len(y), 48.0))
    assert metrics.rmse_vs_mean(y, v, 48.0) == pytest.approx(sk.root_mean_squared_error(y, v) / naive)


def test_r2_of_a_constant_target_is_undefined() -> None:
    assert np.isnan(metrics.r2(np.ones(5), np.arange(5.0)))


def test_binary_log_loss_equals_scikit_learn_s() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    s[:3] = [0.0, 1.0, 0.5]  # the ends clip as scikit-learn clips them
    assert metrics.binary_log_loss(y, s) == pytest.approx(sk.log_loss(y, s, labels=[0, 1]))


def test_a_gate_of_another_task_has_no_metric() -> None:
    assert metrics.metric("regression", "accuracy") is None
    assert metrics.metric("binary", "latency_p95_ms") is None
    assert metrics.metric("multiclass", "accuracy") is metrics.multiclass_accuracy
    assert metrics.metric("binary", "accuracy") is metrics.binary_accuracy
