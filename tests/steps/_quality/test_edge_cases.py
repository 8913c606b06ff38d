"""The gate's edge cases: awkward batches get sound predictions for the task or a clear error, case by case."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from steps._quality.edge_cases import edge_cases
from tests.steps._quality.conftest import TaskModel
from tests.support.models import SmallModel


def test_a_real_model_handles_every_case(small_model: SmallModel) -> None:
    cases = edge_cases(small_model.pipeline, small_model.policy.data.features, small_model.X)
    features = small_model.policy.data.features
    numeric = [f for f in features if f.type != "categorical"]
    assert [c["name"] for c in cases] == [
        "empty_batch", "contract_bounds", "huge_values", "missing_each_feature", "unseen_categories"
    ]
    by_name = {c["name"]: c for c in cases}
    assert all(c["passed"] for c in cases), cases
    assert by_name["empty_batch"]["outcome"] == "error" and by_name["empty_batch"]["rows"] == 0
    assert by_name["huge_values"]["rows"] == 2 * len(numeric)
    assert by_name["missing_each_feature"]["rows"] == len(features) + 1
    assert by_name["huge_values"]["detail"].startswith(f"{2 * len(numeric)} scores in [")


class OutOfRange:
    """A model whose scores leave [0, 1]: what a broken custom estimator could return."""

    classes_ = (0, 1)

    def predict_proba(self, batch: pd.DataFrame) -> Any:
        return np.tile([-1.0, 2.0], (len(batch), 1))


class Crashes:
    classes_ = (0, 1)

    def predict_proba(self, batch: pd.DataFrame) -> Any:
        raise KeyError("column 7")


def test_scores_outside_zero_to_one_and_unclear_errors_fail(small_model: SmallModel) -> None:
    features = small_model.policy.data.features
    bad = {c["name"]: c for c in edge_cases(OutOfRange(), features, small_model.X)}
    assert bad["huge_values"]["passed"] is False and bad["huge_values"]["outcome"] == "scores"
    rows = bad["huge_values"]["rows"]
    assert bad["huge_values"]["detail"].startswith(f"{rows} of {rows} scores outside [0, 1], e.g. ")
    assert bad["empty_batch"] == {"name": "empty_batch", "rows": 0, "outcome": "scores", "passed": True,
                                  "detail": "no rows, no scores"}
    crashed = edge_cases(Crashes(), features, small_model.X)
    assert all(c["outcome"] == "crash" and not c["passed"] for c in crashed)
    assert crashed[0]["detail"] == "unclear error KeyError: 'column 7'"


def test_a_real_model_of_each_task_handles_every_case(task_model: TaskModel) -> None:
    cases = {c["name"]: c for c in edge_cases(task_model.pipeline, task_model.bundle.features, task_model.X,
                                              task_model.task)}
    assert all(c["passed"] for c in cases.values()), cases
    rows = cases["huge_values"]["rows"]
    if task_model.task == "multiclass":
        assert cases["huge_values"]["detail"].startswith(f"{rows} rows of 4 probabilities in [")
        assert cases["huge_values"]["detail"].endswith("each summing to 1")
    else:
        assert cases["huge_values"]["detail"].startswith(f"{rows} values in [")


class BadProbabilities:
    """A multiclass model whose rows do not sum to 1, then one with a NaN: a broken custom estimator."""

    classes_ = (0, 1, 2)

    def __init__(self, value: float) -> None:
        self.value = value

    def predict_proba(self, batch: pd.DataFrame) -> Any:
        return np.tile([0.5, 0.5, self.value], (len(batch), 1))


class NotFinite:
    def predict(self, batch: pd.DataFrame) -> Any:
        return np.full(len(batch), np.inf)


def test_probabilities_that_do_not_sum_to_one_and_infinite_values_fail(small_model: SmallModel) -> None:
    features = small_model.policy.data.features
    off = {c["name"]: c for c in edge_cases(BadProbabilities(0.2), features, small_model.X, "multiclass")}
    rows = off["huge_values"]["rows"]
    assert off["huge_values"]["passed"] is False
    assert off["huge_values"]["detail"] == f"{rows} of {rows} rows whose probabilities do not sum to 1, e.g. 1.2"
    nan = {c["name"]: c for c in edge_cases(BadProbabilities(np.nan), features, small_model.X, "multiclass")}
    assert nan["huge_values"]["detail"].startswith(
        f"{rows} of {rows} rows with probabilities not finite or outside [0, 1], e.g. [0.5, 0.5, nan]")
    infinite = {c["name"]: c for c in edge_cases(NotFinite(), features, small_model.X, "regression")}
    assert infinite["huge_values"]["passed"] is False
    assert infinite["huge_values"]["detail"] == f"{rows} of {rows} values not finite, e.g. {np.inf!r}"
    assert infinite["empty_batch"]["detail"] == "no rows, no values"
