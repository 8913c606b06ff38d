"""Choosing the decision threshold by the policy's rule, on labels and scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from steps._core.policy import ThresholdRule
from steps._model.threshold import choose

# Ten rows, scores 0.95 down to 0.05; positives at the top except one at 0.45 and a negative at 0.85.
SCORES = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])
Y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 0, 0])


def test_fixed_is_the_value():
    choice = choose(Y, SCORES, ThresholdRule("fixed", value=0.6))
    assert (choice.threshold, choice.precision, choice.recall) == (0.6, 0.75, 0.75)


def test_max_f1_takes_the_best_f1_threshold():
    choice = choose(Y, SCORES, ThresholdRule("max_f1"))
    # At 0.45 every positive is in (4 of 6 flagged are positives): F1 0.8, the best of all cut points.
    assert choice.threshold == 0.45 and choice.recall == 1.0 and choice.f1 == pytest.approx(0.8)


def test_target_recall_takes_the_highest_threshold_reaching_it():
    choice = choose(Y, SCORES, ThresholdRule("target_recall", value=0.75))
    assert (choice.threshold, choice.recall, choice.reached) == (0.65, 0.75, True)


def test_target_precision_takes_the_most_recall_at_that_precision():
    choice = choose(Y, SCORES, ThresholdRule("target_precision", value=0.75))
    assert (choice.threshold, choice.precision, choice.recall) == (0.65, 0.75, 0.75)


def test_an_unreachable_target_says_so_and_takes_the_closest():
    choice = choose(Y, SCORES, ThresholdRule("target_precision", value=1.0))
    assert choice.reached is True and choice.threshold == 0.95  # the top row alone is precise
    impossible = choose(np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]),
                        ThresholdRule("target_precision", value=0.9))
    assert impossible.reached is False and impossible.precision == 0.5


def test_min_cost_weighs_a_missed_positive_against_a_false_alarm():
    cheap_misses = choose(Y, SCORES, ThresholdRule("min_cost", false_positive_cost=5.0, false_negative_cost=1.0))
    costly_misses = choose(Y, SCORES, ThresholdRule("min_cost", false_positive_cost=1.0, false_negative_cost=5.0))
    assert cheap_misses.threshold > costly_misses.threshold
    assert costly_misses.recall == 1.0


def test_a_rule_needs_both_classes():
    with pytest.raises(ValueError, match="needs rows of both classes"):
        choose(np.zeros(5), np.linspace(0, 1, 5), ThresholdRule("max_f1"))
