"""The bias gates on their own: recall (binary) and macro-F1 (multiclass) per segment, and their spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps._quality import segments


def test_recall_gap_is_the_spread_between_segments_with_enough_positives() -> None:
    holdout = pd.DataFrame({"region": ["eu"] * 4 + ["us"] * 4 + ["apac"] * 2})
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0])
    predicted = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    gap, note, table = segments.recall_gap(y, predicted, holdout, "region", min_positives=2)
    assert gap == pytest.approx(0.75 - 0.5)
    assert note == "region: recall eu 0.750 (highest), us 0.500 (lowest) over 2 segments"
    assert [(t["segment"], t["positives"], t["recall"], t["counted"]) for t in table] == [
        ("apac", 1, 0.0, False), ("eu", 4, 0.75, True), ("us", 2, 0.5, True)
    ]


def test_recall_gap_groups_missing_segment_values_and_needs_two_segments() -> None:
    holdout = pd.DataFrame({"region": ["eu", "eu", None, None]})
    y = np.array([1, 1, 1, 0])
    predicted = np.array([1, 0, 1, 0], dtype=bool)
    gap, note, table = segments.recall_gap(y, predicted, holdout, "region", min_positives=2)
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
    assert segments.recall_gap(np.array([1, 1]), np.array([True, False]), holdout, segment, 1) == (None, note, [])


def test_macro_f1_gap_is_the_spread_between_segments_with_enough_rows() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    region = np.array(["eu"] * 300 + ["us"] * 300 + ["apac"] * 50)
    y = rng.integers(0, 3, len(region))
    # Right 90% of the time in eu, 60% in us, never in apac (too few rows to count).
    right = rng.random(len(region)) < np.select([region == "eu", region == "us"], [0.9, 0.6], 0.0)
    predicted = np.where(right, y, (y + 1) % 3)
    p = np.eye(3)[predicted]
    gap, note, table = segments.macro_f1_gap(y, p, pd.DataFrame({"region": region}), "region", min_rows=100)
    expected = {r: f1_score(y[region == r], predicted[region == r], average="macro") for r in ("eu", "us")}
    assert gap == pytest.approx(expected["eu"] - expected["us"])
    assert note == (f"region: macro-F1 eu {expected['eu']:.3f} (highest), us {expected['us']:.3f} (lowest) "
                    "over 2 segments")
    assert [(t["segment"], t["rows"], t["counted"]) for t in table] == [
        ("apac", 50, False), ("eu", 300, True), ("us", 300, True)
    ]
    assert table[0]["macro_f1"] == 0.0


def test_macro_f1_gap_needs_two_segments_with_enough_rows() -> None:
    holdout = pd.DataFrame({"region": ["eu"] * 5 + ["us"] * 2})
    y = np.zeros(7, dtype=int)
    gap, note, _ = segments.macro_f1_gap(y, np.eye(2)[y], holdout, "region", min_rows=3)
    assert gap is None
    assert note == "fewer than 2 segments of 'region' with >= 3 rows (eu: 5, us: 2): nothing to compare"
    assert segments.macro_f1_gap(y, np.eye(2)[y], holdout, None, 3)[:2] == (
        None, "no segment column (data.segment): nothing to compare")
