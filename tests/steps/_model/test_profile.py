"""The reference profile for drift (profile.json) and the vectorised binning serving and drift share."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from steps._core.policy import Feature
from steps._model import profile as _profile

AMOUNT = Feature("amount", "numeric", min=0, nullable=True)
COLOUR = Feature("colour", "categorical", categories=("red", "green", "blue"), unknown="other", nullable=True)


def test_numeric_profile_has_ten_quantile_bins_open_at_both_ends() -> None:
    values = pd.Series(np.random.default_rng(0).lognormal(3, 1, 10_000))
    p = _profile.feature_profile(values, AMOUNT)
    edges = p["edges"]
    assert edges[0] == -math.inf and edges[-1] == math.inf
    assert len(edges) == 11 and all(a < b for a, b in itertools.pairwise(edges))
    assert p["proportions"] == pytest.approx([0.1] * 10, abs=0.002)
    assert p["missing"] == 0.0 and p["count"] == 10_000 and p["type"] == "numeric"


def test_tied_values_collapse_into_fewer_bins_that_still_sum_to_one() -> None:
    # A zero-heavy count, like transactions in the last hour: most quantiles are 0.
    values = pd.Series(np.random.default_rng(1).poisson(0.3, 5000))
    p = _profile.feature_profile(values, Feature("txn", "integer"))
    assert len(p["edges"]) < 11
    assert len(set(p["edges"])) == len(p["edges"])
    assert sum(p["proportions"]) == pytest.approx(1.0)
    # Bins are right-closed, so every zero lands in the first bin.
    assert p["proportions"][0] == pytest.approx(float((values == 0).mean()))


def test_missing_share_is_separate_from_the_bin_proportions() -> None:
    values = pd.Series(pd.array([1, 2, None, 4, None, 6, 7, 8, 9, 10], dtype="Int64"))
    p = _profile.feature_profile(values, AMOUNT)
    assert p["missing"] == pytest.approx(0.2)
    assert sum(p["proportions"]) == pytest.approx(1.0)
    assert p["count"] == 10


def test_bin_index_is_right_closed_on_the_profile_edges() -> None:
    p = {"type": "numeric", "edges": [-math.inf, 1.0, 2.0, math.inf], "proportions": [0.3, 0.3, 0.4]}
    index = _profile.bin_index(p, [-5, 1, 1.5, 2, 2.0001, 1e12, None, np.nan])
    assert index.tolist() == [0, 0, 1, 1, 2, 2, _profile.MISSING, _profile.MISSING]


def test_categorical_profile_adds_an_other_bucket_for_unseen_values() -> None:
    values = pd.Series(["red"] * 5 + ["blue"] * 3 + ["mauve"] * 2 + [None] * 2)
    p = _profile.feature_profile(values, COLOUR)
    assert p["categories"] == ["red", "green", "blue", "other"]
    assert p["proportions"] == pytest.approx([0.5, 0.0, 0.3, 0.2])
    assert p["missing"] == pytest.approx(2 / 12)
    assert _profile.bin_index(p, ["green", "mauve", None, "other"]).tolist() == [1, 3, _profile.MISSING, 3]


def test_bin_counts_use_the_labels_serving_exports() -> None:
    p = _profile.feature_profile(pd.Series(["red", "green", "blue"]), COLOUR)
    counts = _profile.bin_counts(p, ["red", "red", "teal", None, "blue"])
    assert counts == {"0": 2, "2": 1, "other": 1, "missing": 1}
    assert _profile.bin_labels(p) == ["0", "1", "2", "other"]


def test_binning_the_training_values_reproduces_the_profile() -> None:
    frame = pd.DataFrame(
        {
            "amount": np.random.default_rng(2).gamma(2, 50, 4000),
            "colour": np.random.default_rng(3).choice(["red", "green", "blue"], 4000),
        }
    )
    profile = _profile.build_profile(frame, [AMOUNT, COLOUR])
    for name, fp in profile["features"].items():
        index = _profile.bin_index(fp, frame[name])
        share = np.bincount(index, minlength=len(fp["proportions"])) / len(index)
        np.testing.assert_allclose(share, fp["proportions"])
    assert profile["rows"] == 4000


def test_bin_index_refuses_text_for_a_numeric_feature() -> None:
    p = {"type": "numeric", "edges": [-math.inf, 1.0, math.inf], "proportions": [0.5, 0.5]}
    with pytest.raises(ValueError, match="expected numbers"):
        _profile.bin_index(p, [1.0, "lots"])


def test_profile_survives_a_json_round_trip_with_infinite_edges() -> None:
    profile = _profile.build_profile(pd.DataFrame({"amount": np.arange(100.0)}), [AMOUNT])
    again = json.loads(json.dumps(profile))
    assert again == profile
    assert _profile.bin_index(again["features"]["amount"], [0.0, 99.0]).tolist() == [0, 9]


def test_a_feature_never_seen_in_training_gets_one_open_bin() -> None:
    p = _profile.feature_profile(pd.Series([None, None], dtype=object), AMOUNT)
    assert p["edges"] == [-math.inf, math.inf]
    assert p["proportions"] == [0.0] and p["missing"] == 1.0
    assert _profile.bin_index(p, [5.0]).tolist() == [0]


def test_a_column_of_pandas_categories_or_numpy_numbers_profiles_as_its_objects_do() -> None:
    """Train profiles category-typed columns and float arrays: the same profile as the values one by one."""
    rng = np.random.default_rng(1)
    colours = rng.choice(np.array(["red", "green", "blue", "pink", None], dtype=object), 5000)
    as_objects = _profile.feature_profile(pd.Series(colours, dtype=object), COLOUR)
    assert _profile.feature_profile(pd.Series(pd.Categorical(colours)), COLOUR) == as_objects
    assert as_objects["missing"] > 0 and as_objects["proportions"][-1] > 0  # pink: the other bucket
    amounts = rng.lognormal(3, 1, 5000)
    amounts[rng.random(5000) < 0.1] = np.nan
    p = _profile.feature_profile(pd.Series(amounts), AMOUNT)
    assert p == _profile.feature_profile(pd.Series(amounts, dtype=object), AMOUNT)
    np.testing.assert_array_equal(_profile.bin_index(p, amounts), _profile.bin_index(p, list(amounts)))
