"""Drift statistics (steps/_drift/stats.py): per-feature scores against the reference profile and the policy's rule."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import spatial, stats

from steps._core.data import DRIFTED_FEATURES, generate
from steps._core.policy import DriftPolicy, Feature, load_policy
from steps._drift import stats as _drift
from steps._model import profile as _profile

ROWS = 50_000
POLICY = DriftPolicy()  # the seed's rule: psi, 0.15, drift_share 0.3, min_samples 10000
NUMBER = Feature("x", "numeric", nullable=True)
COLOUR = Feature("colour", "categorical", categories=("red", "green", "blue"), unknown="other", nullable=True)


def rule(method: str, threshold: float, **changes: object) -> DriftPolicy:
    return dataclasses.replace(POLICY, method=method, threshold=threshold, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def fraud(policy_file: Path) -> dict[str, Any]:
    """50k reference rows, their profile (as train builds it), 50k unshifted and 50k shifted current rows."""
    policy = load_policy(policy_file)
    target = [policy.data.target]
    reference = generate(ROWS, seed=1).drop(columns=target)
    return {
        "reference": reference,
        "profile": _profile.build_profile(reference, policy.data.features),
        "same": generate(ROWS, seed=2).drop(columns=target),
        # At drift=0.8 every shifted feature is past PSI 0.15; at 0.5 half of them are not.
        "shifted": generate(ROWS, seed=2, drift=0.8).drop(columns=target),
    }


def tiny_profile(values: list[object], feature: Feature = NUMBER) -> dict[str, Any]:
    return _profile.build_profile(pd.DataFrame({feature.name: values}), [feature], bins=4)


# --- scores ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "wasserstein", "ks"])
def test_identical_distributions_score_no_drift(method: str) -> None:
    frame = pd.DataFrame({"x": np.random.default_rng(0).gamma(2.0, 10.0, 5000),
                          "colour": np.random.default_rng(1).choice(["red", "green", "blue"], 5000)})
    profile = _profile.build_profile(frame, [NUMBER, COLOUR])
    result = _drift.check(profile, rule(method, 0.05 if method == "ks" else 0.01, min_samples=1),
                          current=frame, reference=frame)
    for f in result.features:
        assert f.score == pytest.approx(0.0, abs=1e-9), f
        assert not f.drifted
        if f.p_value is not None:
            assert f.p_value == pytest.approx(1.0)
    assert result.decision == _drift.NO_RETRAIN and result.share == 0.0


def test_psi_of_a_known_shift_matches_the_hand_computation() -> None:
    # Two bins, 50/50 at training; live traffic puts 25 values in the first bin and 75 in the second.
    profile = {"features": {"x": {"type": "numeric", "edges": [-math.inf, 1.0, math.inf],
                                  "proportions": [0.5, 0.5], "missing": 0.0, "count": 1000}}, "rows": 1000}
    current = pd.DataFrame({"x": [0.5] * 25 + [2.0] * 75})
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)  # 0.2747
    result = _drift.check(profile, rule("psi", 0.15, min_samples=1), current=current)
    assert result.features[0].score == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.2747, abs=1e-4) and result.features[0].drifted
    assert result.features[0].current == pytest.approx((0.25, 0.75, 0.0))


def test_psi_gives_an_empty_bin_epsilon_instead_of_an_infinity() -> None:
    # The reference never saw a missing value; 10% of the live values are missing.
    reference = np.array([[0.5, 0.5, 0.0]])
    current = np.array([[45.0, 45.0, 10.0]])
    eps = _drift.EPSILON
    by_hand = 2 * (0.45 - 0.5) * math.log(0.45 / 0.5) + (0.1 - eps) * math.log(0.1 / eps)
    assert _drift.psi_rows(reference, current)[0] == pytest.approx(by_hand, rel=1e-12)


def test_jensen_shannon_agrees_with_scipy() -> None:
    p, q = np.array([0.1, 0.4, 0.5, 0.0]), np.array([30.0, 30.0, 20.0, 20.0])
    got = _drift.jensen_shannon_rows(p, q)[0]
    assert got == pytest.approx(spatial.distance.jensenshannon(p, q), rel=1e-12)
    assert _drift.jensen_shannon_rows(p, q, base=2)[0] == pytest.approx(
        spatial.distance.jensenshannon(p, q, base=2), rel=1e-12)


@pytest.mark.parametrize(("ref", "cur"), [
    ([120, 80, 40, 0], [100, 90, 30, 5]),  # a bin empty on one side
    ([500, 0, 500], [450, 0, 560]),  # a bin empty on both sides: 2 x 2, Yates' correction
    ([30, 20], [10, 40]),
], ids=["k-bins", "empty-column-yates", "two-by-two"])
def test_chi_square_agrees_with_scipy_chi2_contingency(ref: list[int], cur: list[int]) -> None:
    stat, p = _drift.chi_square_rows(np.array([ref]), np.array([cur]))
    table = np.array([ref, cur])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
    assert stat[0] == pytest.approx(expected.statistic, rel=1e-10)
    assert p[0] == pytest.approx(expected.pvalue, rel=1e-10)


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
    wasserstein, _ = _drift.score_raw(a, b, "wasserstein")
    assert wasserstein == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=1e-9)
    statistic, p = _drift.score_raw(a, b, "ks")
    scipy_ks = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(scipy_ks.statistic, rel=1e-12)
    assert p == pytest.approx(scipy_ks.pvalue, rel=1e-9)


def test_an_ecdf_keeps_the_distinct_values_and_the_sample_statistics() -> None:
    values = np.array([3.5, 1.0, np.nan, 3.5, 2.0, np.inf, 1.0, 1.0])
    e = _drift.ecdf(values)
    assert e.values.tolist() == [1.0, 2.0, 3.5] and e.at_or_below.tolist() == [3, 4, 6] and e.size == 6
    assert e.std == pytest.approx(np.std([3.5, 1.0, 3.5, 2.0, 1.0, 1.0]), rel=1e-12)
    counted = _drift.ecdf(pd.Series(pd.array([5, None, 7, 5], dtype="Int64")))
    assert counted.values.tolist() == [5.0, 7.0] and counted.at_or_below.tolist() == [2, 3]


def test_reference_ecdfs_built_once_score_like_the_reference_dataset(fraud: dict[str, Any]) -> None:
    ecdfs = _drift.reference_ecdfs(fraud["profile"], fraud["reference"])
    assert set(ecdfs) == {n for n, fp in fraud["profile"]["features"].items() if fp["type"] != "categorical"}
    for method in ("wasserstein", "ks"):
        kept, fresh = (_drift.check(fraud["profile"], rule(method, 0.1), current=fraud["shifted"], reference=r)
                       for r in (ecdfs, fraud["reference"]))
        assert kept == fresh
    with pytest.raises(ValueError, match="no Ecdf for feature 'amount'"):
        _drift.check(fraud["profile"], rule("ks", 0.1), current=fraud["shifted"],
                     reference={k: v for k, v in ecdfs.items() if k != "amount"})


def test_ks_p_value_for_large_samples_stays_close_to_scipy() -> None:
    # Above en = 1000 the fast approximation stands in for kstwo.sf: within 0.5% from en = 10^4, for the
    # p-values a decision turns on (0.003 to 0.5 here).
    n = m = 20_000
    for statistic in (0.008, 0.012, 0.016, 0.018):
        exact = stats.kstwo.sf(statistic, round(n * m / (n + m)))
        assert _drift.ks_p_value(statistic, n, m) == pytest.approx(exact, rel=5e-3)


def test_raw_scores_leave_missing_values_out_and_an_empty_sample_is_drift() -> None:
    a = np.array([1.0, 2.0, np.nan, 3.0])
    assert _drift.score_raw(a, np.array([1.0, 2.0, 3.0, np.nan, np.nan]), "ks") == (0.0, 1.0)
    assert _drift.score_raw(a, np.array([np.nan, np.nan]), "ks") == (1.0, 0.0)
    assert _drift.score_raw(a, np.array([np.nan]), "wasserstein") == (math.inf, None)


# --- counting like the profile ----------------------------------------------------------------------------

@pytest.mark.parametrize("bins", [4, 60], ids=["few-edges", "many-edges"])
def test_current_counts_bin_values_exactly_like_the_profile(bins: int) -> None:
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.integers(0, 200, 5000).astype(float)})
    profile = _profile.build_profile(train, [NUMBER], bins=bins)
    edges = profile["features"]["x"]["edges"][1:-1]
    # Values on the edges themselves, between them, far outside, and missing.
    live = np.concatenate([edges, rng.integers(-10, 300, 3000), [np.nan] * 7, [1e12, -1e12]])
    counts = _drift.current_counts(profile, pd.DataFrame({"x": live}))["x"]
    index = _profile.bin_index(profile["features"]["x"], live)
    expected = np.append(np.bincount(index[index >= 0], minlength=len(edges) + 1), 7)
    assert counts.tolist() == expected.tolist()


def test_missing_values_and_unseen_categories_are_counted_not_dropped() -> None:
    profile = tiny_profile(["red", "green", "blue", "red"], COLOUR)
    live = pd.DataFrame({"colour": ["red", "mauve", None, "teal", np.nan, "blue"]})
    counts = _drift.current_counts(profile, live)["colour"]
    assert dict(zip(_drift.labels(profile["features"]["colour"]), counts.tolist(), strict=True)) == {
        "0": 1, "1": 0, "2": 1, "other": 2, "missing": 2}
    # The labels are the ones serving exports, so Prometheus counters and a dataset count alike.
    assert _profile.bin_counts(profile["features"]["colour"], live["colour"]) == {
        "0": 1, "2": 1, "other": 2, "missing": 2}


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "ks"])
def test_a_column_of_only_unseen_categories_drifts(method: str) -> None:
    frame = pd.DataFrame({"colour": np.random.default_rng(0).choice(["red", "green", "blue"], 20_000)})
    profile = _profile.build_profile(frame, [COLOUR])
    unseen = pd.DataFrame({"colour": ["mauve", "teal"] * 10_000})
    result = _drift.check(profile, rule(method, 0.05 if method == "ks" else 0.15), current=unseen)
    (feature,) = result.features
    assert feature.drifted and feature.current[-2] == 1.0  # everything in `other`
    assert feature.method == ("chi_square" if method == "ks" else method)


def test_a_numeric_column_gone_missing_drifts() -> None:
    profile = tiny_profile(list(np.random.default_rng(0).normal(0, 1, 20_000)))
    result = _drift.check(profile, POLICY, current=pd.DataFrame({"x": [np.nan] * 20_000}))
    assert result.features[0].drifted and result.features[0].current[-1] == 1.0


def test_counters_from_prometheus_score_exactly_like_the_dataset(fraud: dict[str, Any]) -> None:
    profile, current = fraud["profile"], fraud["shifted"]
    counters = {name: _profile.bin_counts(fp, current[name]) for name, fp in profile["features"].items()}
    counts = _drift.counts_from_labels(profile, counters)
    from_data = _drift.check(profile, POLICY, current=current)
    from_counters = _drift.check(profile, POLICY, counts=counts)
    assert from_counters.samples == from_data.samples == ROWS
    assert [f.score for f in from_counters.features] == pytest.approx([f.score for f in from_data.features])
    assert from_counters.drifted_features == from_data.drifted_features


def test_an_unknown_bin_or_feature_in_the_counters_is_an_error_naming_it() -> None:
    profile = tiny_profile(["red", "blue"], COLOUR)
    with pytest.raises(ValueError, match=r"feature 'colour': unknown bin '7'"):
        _drift.counts_from_labels(profile, {"colour": {"0": 3, "7": 1}})
    with pytest.raises(ValueError, match=r"\['size'\] are not in the reference profile"):
        _drift.counts_from_labels(profile, {"size": {"0": 3}})
    with pytest.raises(ValueError, match=r"bin '0': must be >= 0"):
        _drift.counts_from_labels(profile, {"colour": {"0": -1}})


@pytest.mark.parametrize("method", ["wasserstein", "ks"])
def test_raw_data_methods_refuse_bin_counters_naming_the_method(method: str) -> None:
    profile = tiny_profile([1.0, 2.0, 3.0, 4.0])
    counts = _drift.counts_from_labels(profile, {"x": {"0": 5, "1": 5}})
    with pytest.raises(_drift.DriftMethodError, match=f"drift.method '{method}' compares raw values"):
        _drift.check(profile, rule(method, 0.1), counts=counts)
    with pytest.raises(_drift.DriftMethodError, match="no reference dataset"):
        _drift.check(profile, rule(method, 0.1), current=pd.DataFrame({"x": [1.0]}))


def test_a_current_dataset_without_a_profile_feature_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="no column 'x'"):
        _drift.check(tiny_profile([1.0, 2.0]), POLICY, current=pd.DataFrame({"y": [1.0]}))


# --- the generated data ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "threshold"), [
    ("psi", 0.15), ("jensen_shannon", 0.1), ("wasserstein", 0.1), ("ks", 0.001),
])
def test_generated_drift_flags_exactly_the_shifted_features(
    fraud: dict[str, Any], method: str, threshold: float
) -> None:
    result = _drift.check(fraud["profile"], rule(method, threshold), current=fraud["shifted"],
                          reference=fraud["reference"])
    assert sorted(result.drifted_features) == sorted(DRIFTED_FEATURES)
    assert result.decision == _drift.RETRAIN and result.samples == ROWS
    assert result.share == pytest.approx(len(DRIFTED_FEATURES) / 23)


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "wasserstein"])
def test_unshifted_generated_data_flags_nothing(fraud: dict[str, Any], method: str) -> None:
    result = _drift.check(fraud["profile"], rule(method, 0.15 if method == "psi" else 0.1),
                          current=fraud["same"], reference=fraud["reference"])
    assert result.drifted_features == [] and result.decision == _drift.NO_RETRAIN


def test_threads_do_not_change_the_result(fraud: dict[str, Any]) -> None:
    one, many = (_drift.check(fraud["profile"], rule("wasserstein", 0.1), current=fraud["shifted"],
                              reference=fraud["reference"], threads=t) for t in (1, 4))
    assert one == many


# --- the policy's rule -----------------------------------------------------------------------------------

def test_under_min_samples_the_check_waits_for_more_data(fraud: dict[str, Any]) -> None:
    few = fraud["shifted"].head(9_999)
    result = _drift.check(fraud["profile"], POLICY, current=few)
    assert result.decision == _drift.WAITING and not result.retrain
    assert result.reason == "waiting for more data: 9999 samples < min_samples 10000"
    # With one more sample the same data triggers.
    assert _drift.check(fraud["profile"], POLICY, current=fraud["shifted"].head(10_000)).retrain


def _scored(drifted: int, total: int) -> list[_drift.FeatureDrift]:
    return [_drift.FeatureDrift(f"f{i}", "numeric", "psi", 0.5 if i < drifted else 0.0, None, i < drifted, 100)
            for i in range(total)]


@pytest.mark.parametrize(("drifted", "decision"), [(3, _drift.NO_RETRAIN), (4, _drift.RETRAIN)],
                         ids=["share-equal-to-drift-share", "share-above-drift-share"])
def test_retraining_needs_more_than_drift_share_of_the_features(drifted: int, decision: str) -> None:
    result = _drift.decide(_scored(drifted, 10), POLICY, samples=50_000)
    assert result.decision == decision and result.share == pytest.approx(drifted / 10)
    assert f"{drifted} of 10 features drifted" in result.reason


def test_a_p_value_test_drifts_below_its_threshold_and_a_distance_above() -> None:
    assert _drift.is_drifted(0.3, 0.01, 0.05) and not _drift.is_drifted(0.3, 0.2, 0.05)
    assert _drift.is_drifted(0.2, None, 0.15) and not _drift.is_drifted(0.15, None, 0.15)


def test_the_result_serialises_to_strict_json() -> None:
    profile = tiny_profile([1.0, 2.0, 3.0, 4.0])
    result = _drift.check(profile, rule("wasserstein", 0.1, min_samples=1),
                          current=pd.DataFrame({"x": [np.nan, np.nan]}), reference=pd.DataFrame({"x": [1.0, 2.0]}))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["features"][0]["score"] is None and data["features"][0]["drifted"] is True
    assert data["drifted_features"] == ["x"] and data["decision"] == _drift.RETRAIN
    assert data["features"][0]["bins"][-1] == "missing" and data["features"][0]["current"][-1] == 1.0


# --- the reference ECDFs a bundle keeps (reference_ecdf.npz) ----------------------------------------------

@pytest.mark.parametrize("kind", ["lognormal", "pareto-tail", "normal"])
def test_a_thinned_ecdf_stays_within_its_bound_of_the_exact_one(kind: str) -> None:
    rng = np.random.default_rng(5)
    reference, current = {
        "lognormal": (rng.lognormal(3, 1, 200_000), rng.lognormal(3.05, 1, 50_000)),
        "pareto-tail": (rng.pareto(2.0, 200_000), rng.pareto(2.1, 50_000)),
        "normal": (rng.normal(0, 1, 200_000), rng.normal(0.02, 1, 50_000)),
    }[kind]
    exact = _drift.ecdf(reference)
    thinned = _drift.thin(exact, 2_000)
    assert len(thinned.values) <= 2_000 < len(exact.values)
    assert thinned.size == exact.size and thinned.std == exact.std
    assert thinned.values[-1] == exact.values[-1] and thinned.values[0] >= exact.values[0]
    # The thinned CDF, read at every exact value, is below the exact one by at most 2 / max_values.
    at = np.searchsorted(thinned.values, exact.values, side="right")
    thinned_cdf = np.where(at > 0, thinned.at_or_below[np.maximum(at - 1, 0)], 0) / exact.size
    gap = exact.at_or_below / exact.size - thinned_cdf
    assert gap.min() >= 0 and gap.max() <= 2 / 2_000 + 1 / exact.size
    ks_exact, ks_thin = _drift.score_raw(exact, current, "ks")[0], _drift.score_raw(thinned, current, "ks")[0]
    assert abs(ks_exact - ks_thin) <= 2 / 2_000 + 1 / exact.size
    # The normed Wasserstein distance moves by at most the distance between the two reference ECDFs (the
    # triangle inequality), which the grid half keeps small even under a long tail: a few / max_values.
    moved = _drift.wasserstein_distance(exact, thinned) / exact.std
    assert moved <= 4 / 2_000
    w_exact, w_thin = (_drift.score_raw(e, current, "wasserstein")[0] for e in (exact, thinned))
    assert abs(w_exact - w_thin) <= moved + 1e-12


def test_an_ecdf_with_few_distinct_values_is_kept_exactly() -> None:
    e = _drift.ecdf(np.random.default_rng(0).poisson(3, 100_000))
    assert _drift.thin(e, _drift.MAX_ECDF_VALUES) is e


def test_saved_ecdfs_load_back_the_same_and_the_same_ecdfs_give_the_same_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ecdfs = {"x": _drift.thin(_drift.ecdf(rng.normal(0, 1, 50_000)), 1000),
             "counts": _drift.ecdf(rng.poisson(2, 1000)),
             "never seen": _drift.ecdf(np.array([np.nan, np.nan]))}
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    _drift.save_ecdfs(ecdfs, first)
    _drift.save_ecdfs(ecdfs, second)
    assert first.read_bytes() == second.read_bytes()
    loaded = _drift.load_ecdfs(first.read_bytes())
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
    _drift.save_ecdfs({"x": _drift.ecdf(np.array([1.0, 2.0, 3.0]))}, path)
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
        _drift.load_ecdfs(data, "the file")
