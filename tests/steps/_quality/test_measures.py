"""The gate's measures on their own: recall per segment, latency, memory, importance stability, one model's set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps._quality import measures
from tests.support.models import SmallModel


def test_recall_gap_is_the_spread_between_segments_with_enough_positives() -> None:
    holdout = pd.DataFrame({"region": ["eu"] * 4 + ["us"] * 4 + ["apac"] * 2})
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0])
    predicted = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    gap, note, table = measures.recall_gap(y, predicted, holdout, "region", min_positives=2)
    assert gap == pytest.approx(0.75 - 0.5)
    assert note == "region: recall eu 0.750 (highest), us 0.500 (lowest) over 2 segments"
    assert [(t["segment"], t["positives"], t["recall"], t["counted"]) for t in table] == [
        ("apac", 1, 0.0, False), ("eu", 4, 0.75, True), ("us", 2, 0.5, True)
    ]


def test_recall_gap_groups_missing_segment_values_and_needs_two_segments() -> None:
    holdout = pd.DataFrame({"region": ["eu", "eu", None, None]})
    y = np.array([1, 1, 1, 0])
    predicted = np.array([1, 0, 1, 0], dtype=bool)
    gap, note, table = measures.recall_gap(y, predicted, holdout, "region", min_positives=2)
    assert gap is None
    assert note == "fewer than 2 segments of 'region' with >= 2 positives (<missing>: 1, eu: 2): nothing to compare"
    assert [t["segment"] for t in table] == ["<missing>", "eu"]


@pytest.mark.parametrize(
    ("segment", "note"),
    [(None, "no segment column (data.segment): nothing to compare"),
     ("plan", "the holdout has no segment column 'plan': nothing to compare")],
    ids=["no-segment-in-policy", "not-in-holdout"],
)
def test_recall_gap_without_a_segment_column_has_nothing_to_compare(segment: str | None, note: str) -> None:
    holdout = pd.DataFrame({"region": ["eu", "us"]})
    assert measures.recall_gap(np.array([1, 1]), np.array([True, False]), holdout, segment, 1) == (None, note, [])


def test_latency_and_memory_are_positive_numbers_for_a_real_model(small_model: SmallModel) -> None:
    assert measures.latency_p95_ms(small_model.pipeline, small_model.X, calls=30) > 0
    assert 0 < measures.peak_memory_mb(small_model.pipeline, small_model.X, rows=500, seed=1) < 256


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
