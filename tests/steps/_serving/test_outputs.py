"""A served model's outputs per task (steps/_serving/outputs.py): the check of a batch that catches a broken model,
and the bins of the profile's `prediction` entry, which must be the bins steps._model.profile (training, drift)
puts the same predictions in."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from steps._model import profile as _profile
from steps._serving.contract import ContractError
from steps._serving.outputs import (
    BinaryOutputs,
    MulticlassOutputs,
    Outputs,
    RegressionOutputs,
    prediction_bins,
)
from tests.support.serving import VALUE_PROFILE, class_profile


def counted(outputs: Outputs, predictions: list[Any]) -> list[float]:
    assert outputs.bins is not None
    counts = [0.0] * (3 + len(outputs.bins.labels))
    outputs.count(predictions, counts, 3)  # at an offset, as in the metrics table
    assert counts[:3] == [0, 0, 0]
    return counts[3:]


def test_numeric_prediction_bins_are_the_profile_modules_bins() -> None:
    values = np.random.default_rng(3).normal(60, 40, 500)
    values = np.concatenate([values, [50.0, 100.0, -math.inf, math.inf]])  # on the edges, and the extremes
    bins = prediction_bins("regression", (), {"prediction": VALUE_PROFILE})
    assert bins is not None and list(bins.labels) == _profile.bin_labels(dict(VALUE_PROFILE))
    expected = np.bincount(_profile.bin_index(dict(VALUE_PROFILE), values), minlength=len(bins.labels))
    assert counted(RegressionOutputs(bins), values.tolist()) == expected.tolist()


@pytest.mark.parametrize("classes", [["low", "mid", "high"], [3, 1, 2]], ids=["text", "whole-numbers"])
def test_a_predicted_class_is_counted_in_its_category_of_the_profile(classes: list[Any]) -> None:
    # The profile lists the classes in another order: a class is found by its key, not its position.
    profile = class_profile([classes[2], classes[0], classes[1]])
    bins = prediction_bins("multiclass", classes, {"prediction": profile})
    assert bins is not None and list(bins.labels) == _profile.bin_labels(profile) == ["0", "1", "2", "other"]
    rows = [[0.2, 0.7, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]  # the last: a tie, the first wins
    predicted = [classes[1], classes[0], classes[2], classes[0]]
    expected = np.bincount(_profile.bin_index(profile, predicted), minlength=4)
    assert counted(MulticlassOutputs(classes, bins), rows) == expected.tolist() == [1, 2, 1, 0]


def test_a_profile_without_a_prediction_entry_has_no_bins_and_counts_nothing() -> None:
    assert prediction_bins("binary", (0, 1), {"features": {}}) is None
    assert prediction_bins("binary", (0, 1), None) is None
    BinaryOutputs(0.5, (0, 1)).count([0.3], [], 0)  # no table to count in: nothing happens


@pytest.mark.parametrize(("task", "entry", "message"), [
    ("regression", {"type": "numeric"}, "profile.json prediction.edges: a regression model's prediction profile "
                                        "must hold numeric edges, got None"),
    ("binary", {"edges": [0, "x"]}, "prediction.edges: a binary model's"),
    ("multiclass", {"edges": [0, 1]}, "prediction.categories: a multiclass model's prediction profile must list "
                                      "its classes and other, got None"),
    ("regression", [1, 2], "profile.json prediction: must be an object (a feature profile), got list"),
])
def test_a_malformed_prediction_profile_is_refused_naming_the_entry(task: str, entry: Any, message: str) -> None:
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prediction_bins(task, ("a", "b", "c"), {"prediction": entry})


@pytest.mark.parametrize(("outputs", "predictions", "problem"), [
    (BinaryOutputs(0.5, (0, 1)), [0.2, 1.5], "a score outside [0, 1]"),
    (BinaryOutputs(0.5, (0, 1)), [0.2], "1 scores for 2 rows"),
    (BinaryOutputs(0.5, (0, 1)), [0.2, math.nan], "a score outside [0, 1]"),
    (RegressionOutputs(None), [1.0, math.inf], "a value that is not a finite number"),
    (RegressionOutputs(None), [1.0, math.nan], "a value that is not a finite number"),
    (RegressionOutputs(None), [1.0], "1 values for 2 rows"),
    (MulticlassOutputs("abc"), [[0.2, 0.8, 0.0], [0.5, 0.4, 0.2]], "row 1 are not 3 numbers in [0, 1] summing to 1"),
    (MulticlassOutputs("abc"), [[0.2, 0.8, 0.0], [0.5, 0.5]], "row 1 are not 3 numbers"),
    (MulticlassOutputs("abc"), [[0.2, 0.8, 0.0], [1.2, -0.2, 0.0]], "row 1 are not 3 numbers in [0, 1]"),
    (MulticlassOutputs("abc"), [[0.2, 0.8, 0.0]], "1 rows of probabilities for 2 rows"),
], ids=["score-above-one", "too-few-scores", "nan-score", "infinite-value", "nan-value", "too-few-values",
        "sum-not-one", "too-few-classes", "negative-probability", "too-few-rows"])
def test_a_broken_model_is_caught_by_the_check_of_its_task(outputs: Outputs, predictions: list[Any],
                                                           problem: str) -> None:
    found = outputs.problem(predictions, 2)
    assert found is not None and problem in found


def test_sound_predictions_pass_the_check_of_their_task() -> None:
    assert BinaryOutputs(0.5, (0, 1)).problem([0.0, 1.0], 2) is None
    assert RegressionOutputs(None).problem([-1e300, 3.0], 2) is None
    third = 1 / 3
    assert MulticlassOutputs("abc").problem([[third, third, third], [1.0, 0.0, 0.0]], 2) is None
