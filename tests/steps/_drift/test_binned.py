"""Binned drift methods (steps/_drift/binned.py): counting like the profile, from a dataset or from the servers'
counters, and psi, Jensen-Shannon and chi-square against their hand computation and scipy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import spatial, stats

from steps._drift import binned as _binned
from steps._drift import rule as _rule
from steps._model import profile as _profile
from tests.support.drift import COLOUR, NUMBER, POLICY, ROWS, rule, tiny_profile


def test_psi_of_a_known_shift_matches_the_hand_computation() -> None:
    # Two bins, 50/50 at training; live traffic puts 25 values in the first bin and 75 in the second.
    profile = {"features": {"x": {"type": "numeric", "edges": [-math.inf, 1.0, math.inf],
                                  "proportions": [0.5, 0.5], "missing": 0.0, "count": 1000}}, "rows": 1000}
    current = pd.DataFrame({"x": [0.5] * 25 + [2.0] * 75})
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)  # 0.2747
    result = _rule.check(profile, rule("psi", 0.15, min_samples=1), current=current)
    assert result.features[0].score == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.2747, abs=1e-4) and result.features[0].drifted
    assert result.features[0].current == pytest.approx((0.25, 0.75, 0.0))


def test_psi_gives_an_empty_bin_epsilon_instead_of_an_infinity() -> None:
    # The reference never saw a missing value; 10% of the live values are missing.
    reference = np.array([[0.5, 0.5, 0.0]])
    current = np.array([[45.0, 45.0, 10.0]])
    eps = _binned.EPSILON
    by_hand = 2 * (0.45 - 0.5) * math.log(0.45 / 0.5) + (0.1 - eps) * math.log(0.1 / eps)
    assert _binned.psi_rows(reference, current)[0] == pytest.approx(by_hand, rel=1e-12)


def test_jensen_shannon_agrees_with_scipy() -> None:
    p, q = np.array([0.1, 0.4, 0.5, 0.0]), np.array([30.0, 30.0, 20.0, 20.0])
    got = _binned.jensen_shannon_rows(p, q)[0]
    assert got == pytest.approx(spatial.distance.jensenshannon(p, q), rel=1e-12)
    assert _binned.jensen_shannon_rows(p, q, base=2)[0] == pytest.approx(
        spatial.distance.jensenshannon(p, q, base=2), rel=1e-12)


@pytest.mark.parametrize(("ref", "cur"), [
    ([120, 80, 40, 0], [100, 90, 30, 5]),  # a bin empty on one side
    ([500, 0, 500], [450, 0, 560]),  # a bin empty on both sides: 2 x 2, Yates' correction
    ([30, 20], [10, 40]),
], ids=["k-bins", "empty-column-yates", "two-by-two"])
def test_chi_square_agrees_with_scipy_chi2_contingency(ref: list[int], cur: list[int]) -> None:
    stat, p = _binned.chi_square_rows(np.array([ref]), np.array([cur]))
    table = np.array([ref, cur])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
    assert stat[0] == pytest.approx(expected.statistic, rel=1e-10)
    assert p[0] == pytest.approx(expected.pvalue, rel=1e-10)


@pytest.mark.parametrize("bins", [4, 60], ids=["few-edges", "many-edges"])
def test_current_counts_bin_values_exactly_like_the_profile(bins: int) -> None:
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.integers(0, 200, 5000).astype(float)})
    profile = _profile.build_profile(train, [NUMBER], bins=bins)
    edges = profile["features"]["x"]["edges"][1:-1]
    # Values on the edges themselves, between them, far outside, and missing.
    live = np.concatenate([edges, rng.integers(-10, 300, 3000), [np.nan] * 7, [1e12, -1e12]])
    counts = _binned.current_counts(profile, pd.DataFrame({"x": live}))["x"]
    index = _profile.bin_index(profile["features"]["x"], live)
    expected = np.append(np.bincount(index[index >= 0], minlength=len(edges) + 1), 7)
    assert counts.tolist() == expected.tolist()


def test_missing_values_and_unseen_categories_are_counted_not_dropped() -> None:
    profile = tiny_profile(["red", "green", "blue", "red"], COLOUR)
    live = pd.DataFrame({"colour": ["red", "mauve", None, "teal", np.nan, "blue"]})
    counts = _binned.current_counts(profile, live)["colour"]
    assert dict(zip(_binned.labels(profile["features"]["colour"]), counts.tolist(), strict=True)) == {
        "0": 1, "1": 0, "2": 1, "other": 2, "missing": 2}
    # The labels are the ones serving exports, so Prometheus counters and a dataset count alike.
    assert _profile.bin_counts(profile["features"]["colour"], live["colour"]) == {
        "0": 1, "2": 1, "other": 2, "missing": 2}


def test_counters_from_prometheus_score_exactly_like_the_dataset(fraud: dict[str, Any]) -> None:
    profile, current = fraud["profile"], fraud["shifted"]
    counters = {name: _profile.bin_counts(fp, current[name]) for name, fp in profile["features"].items()}
    counts = _binned.counts_from_labels(profile, counters)
    from_data = _rule.check(profile, POLICY, current=current)
    from_counters = _rule.check(profile, POLICY, counts=counts)
    assert from_counters.samples == from_data.samples == ROWS
    assert [f.score for f in from_counters.features] == pytest.approx([f.score for f in from_data.features])
    assert from_counters.drifted_features == from_data.drifted_features


def test_an_unknown_bin_or_feature_in_the_counters_is_an_error_naming_it() -> None:
    profile = tiny_profile(["red", "blue"], COLOUR)
    with pytest.raises(ValueError, match=r"feature 'colour': unknown bin '7'"):
        _binned.counts_from_labels(profile, {"colour": {"0": 3, "7": 1}})
    with pytest.raises(ValueError, match=r"\['size'\] are not in the reference profile"):
        _binned.counts_from_labels(profile, {"size": {"0": 3}})
    with pytest.raises(ValueError, match=r"bin '0': must be >= 0"):
        _binned.counts_from_labels(profile, {"colour": {"0": -1}})

