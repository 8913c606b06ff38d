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



def _added_up(distinct: Any, counts: Any) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for value, count in zip(list(distinct), list(counts), strict=True):
        k = None if pd.isna(value) else value  # None and NaN are both missing
        out[k] = out.get(k, 0.0) + float(count)
    return out


def _by_value(values: pd.Series) -> dict[Any, float]:
    counted = values.value_counts(dropna=False)
    return _added_up(counted.index, counted.to_numpy())


@pytest.mark.parametrize("kind", [
    "one-object-per-value", "a-new-object-per-row", "late-values", "many-late-values", "many-values",
    "strided", "short", "integers-as-objects",
])
def test_a_text_column_is_tallied_like_value_counts_however_its_objects_are_shared(kind: str) -> None:
    # Parquet's and pandas' CSV readers give equal strings one object, which `tally` counts by identity; a column
    # built another way (a new object per row, an odd value far down, a view) must count the same.
    rng = np.random.default_rng(4)
    words = ["red", "green", "blue", None, np.nan, "mauve"]
    column = pd.Series(np.array(words, dtype=object)[rng.integers(0, len(words), 20_000)], dtype=object)
    if kind == "a-new-object-per-row":
        column = pd.Series([None if v is None else v if isinstance(v, float) else "".join(list(v)) for v in column],
                           dtype=object)
    elif kind == "late-values":
        column.iloc[[15_000, 19_999]] = ["teal", "teal"]  # first met past the head that is sampled
    elif kind == "many-late-values":
        column.iloc[15_000:15_020] = [f"late-{i}" for i in range(20)]
    elif kind == "many-values":
        column = pd.Series([f"v{i % 3000}" for i in range(20_000)], dtype=object)
    elif kind == "strided":
        column = pd.DataFrame({"a": column, "b": column}).T.iloc[0].astype(object)
        column = column.iloc[::2]
    elif kind == "short":
        column = column.iloc[:100]
    elif kind == "integers-as-objects":
        column = pd.Series(np.array([1, 2, 3, None], dtype=object)[rng.integers(0, 4, 20_000)], dtype=object)
    assert _added_up(*_binned.tally(column)) == _by_value(column)


def test_text_columns_count_the_same_by_identity_and_by_value(fraud: dict[str, Any]) -> None:
    # The fraud data read back from Parquet: the counted bins of every categorical feature are value_counts'.
    import io

    buffer = io.BytesIO()
    fraud["shifted"].to_parquet(buffer)
    current = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    for name, fp in fraud["profile"]["features"].items():
        if fp["type"] == "categorical":
            counts = _binned.count_column(fp, current[name], name)
            expected = _profile.bin_counts(fp, current[name])
            got = {label: c for label, c in zip(_binned.labels(fp), counts.tolist(), strict=True) if c}
            assert got == {label: float(c) for label, c in expected.items()}
