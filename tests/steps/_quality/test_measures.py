"""The gate's measures on their own: latency, memory, importance stability, one model's set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._model import features as _features
from steps._model import task as _task
from steps._model.bundle import Bundle
from steps._quality import measures
from tests.steps._quality.conftest import TaskModel
from tests.support.models import SmallModel
from tests.support.tasks import trained_task_bundle


def test_memory_is_a_positive_number_for_a_real_model(small_model: SmallModel) -> None:
    assert 0 < measures.peak_memory_mb(small_model.pipeline, small_model.X, rows=500, seed=1) < 256


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "logistic_regression"])
def test_latency_times_the_server_s_own_predictor_on_requests_of_holdout_rows(
    estimator: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The latency gate times what `mlops serve` does per request: the request contract, then the compiled trees
    where the bundle has them (else model.skops); its requests answer as the bundle's model predicts the rows."""
    trained = trained_task_bundle(tmp_path_factory, "multiclass", estimator)
    bundle = Bundle.open(trained.bundle)
    X = _features.model_input(pd.read_parquet(trained.holdout), bundle.features)
    served = measures.served_calls(bundle, X, 40)
    assert served.call is not None and len(served.requests) == 40
    assert served.requests[0] == {"instances": [{name: _plain(v) for name, v in X.iloc[0].items()}]}
    answered = np.array([served.call(request)[0] for request in served.requests])  # type: ignore[index]
    np.testing.assert_allclose(answered, _task.predict(bundle.pipeline, X.head(40), "multiclass"), atol=1e-9)
    compiled = estimator == "hist_gradient_boosting"
    assert ("compiled trees (model.trees.json)" in served.what) is compiled
    assert ("model.skops's LogisticRegression" in served.what) is not compiled
    assert measures.latency_p95_ms(served.call, served.requests, calls=100) > 0


def test_latency_skips_rows_the_request_contract_refuses_and_says_so(task_model: TaskModel) -> None:
    X = task_model.X.head(30).copy()
    X.loc[X.index[:5], "x2"] = 99.0  # above the contract's maximum 10: the server would answer 422
    served = measures.served_calls(task_model.bundle, X, 30)
    assert len(served.requests) == 25
    assert "5 of the first 30 holdout rows refused by the contract, not timed" in served.what
    X.loc[:, "x2"] = 99.0
    refused = measures.served_calls(task_model.bundle, X, 30)
    assert refused.call is None and refused.what.startswith("not measured: the request contract refuses every")


def _plain(value: Any) -> Any:
    return None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value


class _Waiting:
    """A model whose every call waits `wait` seconds and computes `work` seconds of CPU time."""

    def __init__(self, wait: float, work: float):
        self.wait, self.work = wait, work

    def __call__(self, request: object) -> list[float]:
        import time

        time.sleep(self.wait)
        end = time.thread_time() + self.work
        while time.thread_time() < end:
            pass
        return [0.5]


def test_latency_is_what_a_call_computes_not_what_it_waits() -> None:
    """A busy machine makes a call wait for a CPU; the gate counts the call's own CPU time, so a model is not
    rejected because the node it trained on was busy (the canary judges served latency under real load)."""
    requests: list[object] = [{"instances": [{}]}] * 5
    waiting = measures.latency_p95_ms(_Waiting(wait=0.03, work=0.0), requests, calls=20)
    computing = measures.latency_p95_ms(_Waiting(wait=0.0, work=0.02), requests, calls=20)
    assert waiting < 5, waiting  # 30 ms asleep in every call: not counted
    assert 19 <= computing < 40, computing  # 20 ms of computing: counted


def test_a_model_is_perfectly_stable_against_itself(small_model: SmallModel) -> None:
    pipeline, X, y = small_model.pipeline, small_model.X, small_model.y
    stability, importances = measures.importance_stability(pipeline, pipeline, X, X, y, seed=1)
    assert stability == pytest.approx(1.0)
    assert set(importances) == set(X.columns)
    assert all(candidate == baseline for candidate, baseline in importances.values())


def test_importance_rows_keep_every_positive_up_to_half_and_are_reproducible() -> None:
    y = np.zeros(5000, dtype=int)
    y[:40] = 1
    rows = measures._importance_rows(y, seed=3)
    assert len(rows) == 1000 and set(range(40)) <= set(rows)
    np.testing.assert_array_equal(rows, measures._importance_rows(y, seed=3))
    assert len(measures._importance_rows(y[:800], seed=3)) == 800  # a small holdout: every row


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 1.0, "y": 2.0, "z": 3.0}, {"x": 2.0, "y": 4.0, "z": 6.0}, 1.0),
        ({"x": 1.0, "y": 2.0, "z": 3.0}, {"x": 3.0, "y": 2.0, "z": 1.0}, -1.0),
        ({"x": 0.0, "y": 0.0, "z": 0.0}, {"x": 3.0, "y": 2.0, "z": 1.0}, None),
        ({"x": 1.0, "y": 2.0}, {"x": 1.0, "w": 2.0}, None),
    ],
    ids=["proportional", "reversed", "constant", "one-common-feature"],
)
def test_correlation_of_importances(a: dict[str, float], b: dict[str, float], expected: float | None) -> None:
    assert measures._correlation(a, b) == (None if expected is None else pytest.approx(expected))


def test_every_task_measures_latency_memory_and_its_own_stability(task_model: TaskModel) -> None:
    pipeline, X, y, task = task_model.pipeline, task_model.X, task_model.y, task_model.task
    served = measures.served_calls(task_model.bundle, X, 20)
    assert served.call is not None and measures.latency_p95_ms(served.call, served.requests, calls=20) > 0
    assert 0 < measures.peak_memory_mb(pipeline, X, rows=300, seed=1, task=task) < 256
    stability, importances = measures.importance_stability(pipeline, pipeline, X, X, y, seed=1, task=task)
    assert stability == pytest.approx(1.0)
    # Every feature of the tables in tests/support/tasks.py carries signal: shuffling it raises the loss.
    assert min(candidate for candidate, _ in importances.values()) > 0


def test_the_reference_of_each_task_comes_from_bundle_json(task_model: TaskModel) -> None:
    recorded = task_model.bundle.manifest["metrics"]
    expected = recorded["train_class_shares"] if task_model.task == "multiclass" else recorded["train_target_mean"]
    assert measures.reference_of(task_model.bundle) == pytest.approx(expected)


def _sklearn_importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int, task: str) -> dict[str, float]:
    from sklearn.inspection import permutation_importance

    from steps._model import task as _task

    loss = measures._LOSSES[task]

    def score(estimator: Any, X_: pd.DataFrame, y_: np.ndarray) -> float:
        return -loss(np.asarray(y_), _task.predict(estimator, X_, task), None)

    result = permutation_importance(pipeline, X, y, scoring=score, n_repeats=measures._IMPORTANCE_REPEATS,
                                    random_state=seed, n_jobs=1)
    return dict(zip(X.columns, map(float, result.importances_mean), strict=True))


def test_binary_importances_scored_in_one_batch_equal_scikit_learn_s(small_model: SmallModel) -> None:
    """The gate scores every shuffled copy in one call; the importances (and so the stability gate) are
    scikit-learn's permutation_importance with the same seed, to the last bit."""
    X, y = small_model.X.iloc[:400], small_model.y[:400]
    got = measures._importances(small_model.pipeline, X, y, 11, "binary")
    assert got == _sklearn_importances(small_model.pipeline, X, y, 11, "binary")


def test_every_task_s_importances_equal_scikit_learn_s(task_model: TaskModel) -> None:
    X, y, task = task_model.X.iloc[:400], task_model.y[:400], task_model.task
    assert measures._importances(task_model.pipeline, X, y, 11, task) == _sklearn_importances(
        task_model.pipeline, X, y, 11, task)
