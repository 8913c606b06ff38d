"""The gate's edge cases: awkward batches are scored in [0, 1] or refused with a clear error, case by case."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from steps._quality.edge_cases import edge_cases
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

    def predict_proba(self, batch: pd.DataFrame) -> Any:
        return np.tile([-1.0, 2.0], (len(batch), 1))


class Crashes:
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
