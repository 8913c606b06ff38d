"""Raw drift methods over empirical CDFs (steps/_drift/ecdf.py): Wasserstein and KS against scipy, and the reference
ECDFs a bundle keeps (reference_ecdf.npz): thinned within their bound, saved byte for byte, damage refused."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from steps._drift import ecdf as _ecdf
from steps._drift import rule as _rule
from tests.support.drift import rule


@pytest.mark.parametrize("kind", ["float", "integer", "ties", "negative-integers", "unequal-sizes", "equal-sizes"])
def test_wasserstein_and_ks_agree_with_scipy(kind: str) -> None:
    rng = np.random.default_rng(3)
    a, b = {
        "float": (rng.normal(0, 1, 700), rng.normal(0.2, 1.3, 500)),
        "integer": (rng.poisson(3, 800), rng.poisson(3.4, 600)),
        "ties": (np.round(rng.normal(0, 1, 900), 1), np.round(rng.normal(0.1, 1, 400), 1)),
        "negative-integers": (rng.integers(-50, 50, 500), rng.integers(-40, 60, 500)),
        "unequal-sizes": (rng.exponential(1.0, 37), rng.exponential(1.3, 1000)),
        "equal-sizes": (rng.lognormal(0, 1, 600), np.round(rng.lognormal(0.1, 1, 600), 2)),
    }[kind]
    wasserstein, _ = _ecdf.score_raw(a, b, "wasserstein")
    assert wasserstein == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=1e-9)
    statistic, p = _ecdf.score_raw(a, b, "ks")
    scipy_ks = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(scipy_ks.statistic, rel=1e-12)
    assert p == pytest.approx(scipy_ks.pvalue, rel=1e-9)


def test_an_ecdf_keeps_the_distinct_values_and_the_sample_statistics() -> None:
    values = np.array([3.5, 1.0, np.nan, 3.5, 2.0, np.inf, 1.0, 1.0])
    e = _ecdf.ecdf(values)
    assert e.values.tolist() == [1.0, 2.0, 3.5] and e.at_or_below.tolist() == [3, 4, 6] and e.size == 6
    assert e.std == pytest.approx(np.std([3.5, 1.0, 3.5, 2.0, 1.0, 1.0]), rel=1e-12)
    counted = _ecdf.ecdf(pd.Series(pd.array([5, None, 7, 5], dtype="Int64")))
    assert counted.values.tolist() == [5.0, 7.0] and counted.at_or_below.tolist() == [2, 3]


def test_reference_ecdfs_built_once_score_like_the_reference_dataset(fraud: dict[str, Any]) -> None:
    ecdfs = _ecdf.reference_ecdfs(fraud["profile"], fraud["reference"])
    assert set(ecdfs) == {n for n, fp in fraud["profile"]["features"].items() if fp["type"] != "categorical"}
    for method in ("wasserstein", "ks"):
        kept, fresh = (_rule.check(fraud["profile"], rule(method, 0.1), current=fraud["shifted"], reference=r)
                       for r in (ecdfs, fraud["reference"]))
        assert kept == fresh
    with pytest.raises(ValueError, match="no Ecdf for feature 'amount'"):
        _rule.check(fraud["profile"], rule("ks", 0.1), current=fraud["shifted"],
                     reference={k: v for k, v in ecdfs.items() if k != "amount"})


def test_ks_p_value_for_large_samples_stays_close_to_scipy() -> None:
    # Above en = 1000 the fast approximation stands in for kstwo.sf: within 0.5% from en = 10^4, for the
    # p-values a decision turns on (0.003 to 0.5 here).
    n = m = 20_000
    for statistic in (0.008, 0.012, 0.016, 0.018):
        exact = stats.kstwo.sf(statistic, round(n * m / (n + m)))
        assert _ecdf.ks_p_value(statistic, n, m) == pytest.approx(exact, rel=5e-3)


def test_raw_scores_leave_missing_values_out_and_an_empty_sample_is_drift() -> None:
    a = np.array([1.0, 2.0, np.nan, 3.0])
    assert _ecdf.score_raw(a, np.array([1.0, 2.0, 3.0, np.nan, np.nan]), "ks") == (0.0, 1.0)
    assert _ecdf.score_raw(a, np.array([np.nan, np.nan]), "ks") == (1.0, 0.0)
    assert _ecdf.score_raw(a, np.array([np.nan]), "wasserstein") == (math.inf, None)


@pytest.mark.parametrize("kind", ["lognormal", "pareto-tail", "normal"])
def test_a_thinned_ecdf_stays_within_its_bound_of_the_exact_one(kind: str) -> None:
    rng = np.random.default_rng(5)
    reference, current = {
        "lognormal": (rng.lognormal(3, 1, 200_000), rng.lognormal(3.05, 1, 50_000)),
        "pareto-tail": (rng.pareto(2.0, 200_000), rng.pareto(2.1, 50_000)),
        "normal": (rng.normal(0, 1, 200_000), rng.normal(0.02, 1, 50_000)),
    }[kind]
    exact = _ecdf.ecdf(reference)
    thinned = _ecdf.thin(exact, 2_000)
    assert len(thinned.values) <= 2_000 < len(exact.values)
    assert thinned.size == exact.size and thinned.std == exact.std
    assert thinned.values[-1] == exact.values[-1] and thinned.values[0] >= exact.values[0]
    # The thinned CDF, read at every exact value, is below the exact one by at most 2 / max_values.
    at = np.searchsorted(thinned.values, exact.values, side="right")
    thinned_cdf = np.where(at > 0, thinned.at_or_below[np.maximum(at - 1, 0)], 0) / exact.size
    gap = exact.at_or_below / exact.size - thinned_cdf
    assert gap.min() >= 0 and gap.max() <= 2 / 2_000 + 1 / exact.size
    ks_exact, ks_thin = _ecdf.score_raw(exact, current, "ks")[0], _ecdf.score_raw(thinned, current, "ks")[0]
    assert abs(ks_exact - ks_thin) <= 2 / 2_000 + 1 / exact.size
    # The normed Wasserstein distance moves by at most the distance between the two reference ECDFs (the
    # triangle inequality), which the grid half keeps small even under a long tail: a few / max_values.
    moved = _ecdf.wasserstein_distance(exact, thinned) / exact.std
    assert moved <= 4 / 2_000
    w_exact, w_thin = (_ecdf.score_raw(e, current, "wasserstein")[0] for e in (exact, thinned))
    assert abs(w_exact - w_thin) <= moved + 1e-12


def test_an_ecdf_with_few_distinct_values_is_kept_exactly() -> None:
    e = _ecdf.ecdf(np.random.default_rng(0).poisson(3, 100_000))
    assert _ecdf.thin(e, _ecdf.MAX_ECDF_VALUES) is e


def test_saved_ecdfs_load_back_the_same_and_the_same_ecdfs_give_the_same_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ecdfs = {"x": _ecdf.thin(_ecdf.ecdf(rng.normal(0, 1, 50_000)), 1000),
             "counts": _ecdf.ecdf(rng.poisson(2, 1000)),
             "never seen": _ecdf.ecdf(np.array([np.nan, np.nan]))}
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    _ecdf.save_ecdfs(ecdfs, first)
    _ecdf.save_ecdfs(ecdfs, second)
    assert first.read_bytes() == second.read_bytes()
    loaded = _ecdf.load_ecdfs(first.read_bytes())
    assert list(loaded) == list(ecdfs)
    for name, e in ecdfs.items():
        np.testing.assert_array_equal(loaded[name].values, e.values)
        np.testing.assert_array_equal(loaded[name].at_or_below, e.at_or_below)
        assert loaded[name].std == pytest.approx(e.std, nan_ok=True)
    # What np.load would unpickle is refused: the file holds numbers and names only.
    assert loaded["x"].values.dtype == np.float64 and loaded["x"].at_or_below.dtype == np.int64


@pytest.mark.parametrize("damage", ["not-a-zip", "missing-array", "unsorted"])
def test_a_damaged_ecdf_file_is_an_error_naming_it(damage: str, tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "e.npz"
    _ecdf.save_ecdfs({"x": _ecdf.ecdf(np.array([1.0, 2.0, 3.0]))}, path)
    data = path.read_bytes()
    if damage == "not-a-zip":
        data = b"hello"
    else:
        with zipfile.ZipFile(path) as archive:
            arrays = {n: np.load(archive.open(n), allow_pickle=False) for n in archive.namelist()}
        if damage == "missing-array":
            del arrays["std.npy"]
        else:
            arrays["values.npy"] = arrays["values.npy"][::-1].copy()
        broken = tmp_path / "broken.npz"
        np.savez(broken, **{n.removesuffix(".npy"): a for n, a in arrays.items()})
        data = broken.read_bytes()
    expected = {"not-a-zip": "not a readable ECDF file", "missing-array": "arrays ['std'] are missing",
                "unsorted": "feature 'x': values and counts must both increase"}[damage]
    with pytest.raises(ValueError, match=re.escape(f"the file: {expected}")):
        _ecdf.load_ecdfs(data, "the file")



def _sorted_ecdf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Ecdf by sorting every present value: what `ecdf` gave before it counted grids."""
    x = np.asarray(x, dtype=np.float64)
    values, counts = np.unique(x[np.isfinite(x)], return_counts=True)
    return values, np.cumsum(counts)


@pytest.mark.parametrize("kind", [
    "cents", "three-decimals-wide-range", "six-decimals", "negative-tenths", "whole-floats-wide-range",
    "integers", "integers-wide-range", "seven-decimals", "unrounded", "rounded-with-missing-and-infinite",
    "huge-whole-floats", "decimal-text",
])
def test_an_ecdf_counted_on_a_decimal_grid_is_the_sorted_ecdf_bit_for_bit(kind: str) -> None:
    # Amounts in cents, rounded measures, integers and decimal text are counted, not sorted; any other sample is
    # sorted. Either way each distinct value and its count are exactly what sorting every value gives, so the
    # scores (and the reference_ecdf.npz a training writes) stay the same.
    rng = np.random.default_rng(11)
    n = 50_000
    x = {
        "cents": np.round(rng.uniform(0, 1000, n), 2),  # a range within COUNT_SLOTS per value: bincount
        "three-decimals-wide-range": np.round(rng.exponential(800, n), 3),  # too wide for bincount: hashed
        "six-decimals": np.round(rng.uniform(0, 1, n), 6),
        "negative-tenths": np.round(rng.normal(-3, 20, n), 1),
        "whole-floats-wide-range": np.round(rng.lognormal(12, 2, n)),
        "integers": rng.poisson(30, n),
        "integers-wide-range": rng.integers(-10**12, 10**12, n),
        "seven-decimals": np.round(rng.uniform(0, 1, n), 7),  # off the grids counted: sorted
        "unrounded": rng.normal(0, 1, n),
        "rounded-with-missing-and-infinite": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.gamma(2, 50, n), 2)),
        "huge-whole-floats": np.round(rng.uniform(2.0**53, 2.0**60, n)),
        "decimal-text": np.array([float(f"{v:.3f}") for v in rng.normal(10, 3, n)]),  # as a CSV reader parses it
    }[kind]
    if kind == "rounded-with-missing-and-infinite":
        x[:3] = [np.inf, -np.inf, np.nan]
    e = _ecdf.ecdf(x)
    values, at_or_below = _sorted_ecdf(x)
    # Equal floats are the same bits, but for -0.0, which is counted as 0.0 (a distance cannot tell them apart).
    assert e.values.dtype == np.float64 and np.array_equal(e.values, values)
    assert e.at_or_below.tolist() == at_or_below.tolist()
    half, whole = x[: n // 2][np.isfinite(x[: n // 2])], x[np.isfinite(x)]
    wasserstein, _ = _ecdf.score_raw(_ecdf.ecdf(x[: n // 2]), e, "wasserstein")
    assert wasserstein == pytest.approx(stats.wasserstein_distance(half, whole) / np.std(half), rel=1e-9)


def test_a_grid_is_read_from_the_head_but_checked_on_every_value() -> None:
    # The first 1000 values look like cents; a later one has more decimals: the sample is sorted, not miscounted.
    x = np.round(np.random.default_rng(2).uniform(0, 100, 5000), 2)
    x[4000] = 12.3456789
    e = _ecdf.ecdf(x)
    values, at_or_below = _sorted_ecdf(x)
    assert np.array_equal(e.values, values) and e.at_or_below.tolist() == at_or_below.tolist()
