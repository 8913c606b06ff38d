"""A served model's outputs per task (steps/_serving/outputs.py): the check of a batch that catches a broken model,
the bins of the profile's `prediction` entry, which must be the bins steps._model.profile (training, drift) puts
the same predictions in, and the fixed bins of a score or a value that the canary's prediction-shift guard
compares across versions."""

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
    shift_labels,
)
from tests.support.serving import SCORE_PROFILE, VALUE_PROFILE, class_profile


def counted_both(outputs: Outputs, predictions: list[Any]) -> tuple[list[float], list[float]]:
    """(the profile bins' counts, the fixed shift bins' counts), laid out as in the metrics table."""
    assert outputs.bins is not None
    profile, fixed = len(outputs.bins.labels), len(shift_labels(outputs.task))
    counts = [0.0] * (3 + profile + fixed + 2)
    outputs.count(predictions, counts, 3)  # at an offset, as in the metrics table
    assert counts[:3] == [0, 0, 0] and counts[-2:] == [0, 0]  # nothing outside its own series
    return counts[3:3 + profile], counts[3 + profile:3 + profile + fixed]


def counted(outputs: Outputs, predictions: list[Any]) -> list[float]:
    return counted_both(outputs, predictions)[0]


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


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_a_score_is_counted_in_fixed_logit_bins_whatever_the_profile() -> None:
    labels = shift_labels("binary")
    assert len(labels) == 38 and labels[0] == "0" and labels[-1] == "37"
    scores = [0.0, 0.001, 0.005, 0.009, 0.02, 0.5, 0.97, 1.0]
    narrow = {**SCORE_PROFILE, "edges": [-math.inf, 0.01, math.inf], "proportions": [0.5, 0.5]}
    found = [counted_both(BinaryOutputs(0.5, (0, 1), prediction_bins("binary", (0, 1), {"prediction": p})), scores)[1]
             for p in (SCORE_PROFILE, narrow)]
    assert found[0] == found[1]  # two versions' profiles, the same fixed bins
    # Bin i holds logit(p) in (-9 + (i - 1) / 2, -9 + i / 2]: the scores below 0.01 spread over four bins.
    expected = [0.0] * len(labels)
    for p in scores:
        expected[0 if p == 0 else len(labels) - 1 if p == 1 else math.ceil((_logit(p) + 9) * 2 - 1e-9)] += 1
    assert found[0] == expected and sum(1 for c in found[0][:10] if c) == 4


def test_a_value_is_counted_in_fixed_signed_log_bins_whatever_the_profile() -> None:
    labels = shift_labels("regression")
    assert len(labels) == 104  # modest: five series a decade, 10^-2 to 10^8 either side of 0
    bins = prediction_bins("regression", (), {"prediction": VALUE_PROFILE})
    other = prediction_bins("regression", (), {"prediction": {**VALUE_PROFILE, "edges": [-math.inf, 7.0, math.inf],
                                                              "proportions": [0.5, 0.5]}})
    assert bins is not None and other is not None and bins.shift_edges == other.shift_edges
    edges = bins.shift_edges
    assert edges[51] == 0.0 and edges[52] == pytest.approx(0.01) and edges[-1] == pytest.approx(1e8)
    assert edges[:51] == [-e for e in reversed(edges[52:])]  # negative values mirrored
    values = [-5e9, -120.0, -0.001, 0.0, 0.001, 1.0, 12.0, 13.0, 40.0, 1e8, 5e9]
    fixed = counted_both(RegressionOutputs(bins), values)[1]

    def where(v: float) -> int:  # bin i: edges[i - 1] < v <= edges[i]
        return next((i for i, e in enumerate(edges) if v <= e), len(edges))

    expected = [0.0] * len(labels)
    for v in values:
        expected[where(v)] += 1
    assert fixed == expected
    assert where(-5e9) == 0 and where(5e9) == where(1e9) == len(labels) - 1  # beyond +-10^8: the outermost bins
    assert where(-0.001) == where(0.0) == 51 and where(0.001) == 52  # 0 is an edge
    assert where(12.0) == where(13.0) == where(15.0) and where(40.0) == where(12.0) + 3  # (10^1.6, 10^1.8]


def test_a_multiclass_model_has_no_fixed_bins_its_classes_are_the_same_for_every_version() -> None:
    assert shift_labels("multiclass") == ()
    bins = prediction_bins("multiclass", ("a", "b", "c"), {"prediction": class_profile(("a", "b", "c"))})
    assert bins is not None and bins.shift_edges == []


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
