"""The drift rule (steps/_drift/rule.py): every feature scored by the policy's method (or its categorical
companion), then wait, retrain or not as the policy's `drift` section says."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import DRIFTED_FEATURES
from steps._drift import binned as _binned
from steps._drift import methods as _methods
from steps._drift import rule as _rule
from steps._model import profile as _profile
from tests.support.drift import COLOUR, NUMBER, POLICY, ROWS, rule, tiny_profile


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "wasserstein", "ks"])
def test_identical_distributions_score_no_drift(method: str) -> None:
    frame = pd.DataFrame({"x": np.random.default_rng(0).gamma(2.0, 10.0, 5000),
                          "colour": np.random.default_rng(1).choice(["red", "green", "blue"], 5000)})
    profile = _profile.build_profile(frame, [NUMBER, COLOUR])
    result = _rule.check(profile, rule(method, 0.05 if method == "ks" else 0.01, min_samples=1),
                          current=frame, reference=frame)
    for f in result.features:
        assert f.score == pytest.approx(0.0, abs=1e-9), f
        assert not f.drifted
        if f.p_value is not None:
            assert f.p_value == pytest.approx(1.0)
    assert result.decision == _rule.NO_RETRAIN and result.share == 0.0


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "ks"])
def test_a_column_of_only_unseen_categories_drifts(method: str) -> None:
    frame = pd.DataFrame({"colour": np.random.default_rng(0).choice(["red", "green", "blue"], 20_000)})
    profile = _profile.build_profile(frame, [COLOUR])
    unseen = pd.DataFrame({"colour": ["mauve", "teal"] * 10_000})
    result = _rule.check(profile, rule(method, 0.05 if method == "ks" else 0.15), current=unseen)
    (feature,) = result.features
    assert feature.drifted and feature.current[-2] == 1.0  # everything in `other`
    assert feature.method == ("chi_square" if method == "ks" else method)


def test_a_numeric_column_gone_missing_drifts() -> None:
    profile = tiny_profile(list(np.random.default_rng(0).normal(0, 1, 20_000)))
    result = _rule.check(profile, POLICY, current=pd.DataFrame({"x": [np.nan] * 20_000}))
    assert result.features[0].drifted and result.features[0].current[-1] == 1.0


@pytest.mark.parametrize("method", ["wasserstein", "ks"])
def test_raw_data_methods_refuse_bin_counters_naming_the_method(method: str) -> None:
    profile = tiny_profile([1.0, 2.0, 3.0, 4.0])
    counts = _binned.counts_from_labels(profile, {"x": {"0": 5, "1": 5}})
    with pytest.raises(_methods.DriftMethodError, match=f"drift.method '{method}' compares raw values"):
        _rule.check(profile, rule(method, 0.1), counts=counts)
    with pytest.raises(_methods.DriftMethodError, match="no reference dataset"):
        _rule.check(profile, rule(method, 0.1), current=pd.DataFrame({"x": [1.0]}))


def test_a_current_dataset_without_a_profile_feature_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="no column 'x'"):
        _rule.check(tiny_profile([1.0, 2.0]), POLICY, current=pd.DataFrame({"y": [1.0]}))


@pytest.mark.parametrize(("method", "threshold"), [
    ("psi", 0.15), ("jensen_shannon", 0.1), ("wasserstein", 0.1), ("ks", 0.001),
])
def test_generated_drift_flags_exactly_the_shifted_features(
    fraud: dict[str, Any], method: str, threshold: float
) -> None:
    result = _rule.check(fraud["profile"], rule(method, threshold), current=fraud["shifted"],
                          reference=fraud["reference"])
    assert sorted(result.drifted_features) == sorted(DRIFTED_FEATURES)
    assert result.decision == _rule.RETRAIN and result.samples == ROWS
    assert result.share == pytest.approx(len(DRIFTED_FEATURES) / 23)


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "wasserstein"])
def test_unshifted_generated_data_flags_nothing(fraud: dict[str, Any], method: str) -> None:
    result = _rule.check(fraud["profile"], rule(method, 0.15 if method == "psi" else 0.1),
                          current=fraud["same"], reference=fraud["reference"])
    assert result.drifted_features == [] and result.decision == _rule.NO_RETRAIN


def test_threads_do_not_change_the_result(fraud: dict[str, Any]) -> None:
    one, many = (_rule.check(fraud["profile"], rule("wasserstein", 0.1), current=fraud["shifted"],
                              reference=fraud["reference"], threads=t) for t in (1, 4))
    assert one == many


def test_under_min_samples_the_check_waits_for_more_data(fraud: dict[str, Any]) -> None:
    few = fraud["shifted"].head(9_999)
    result = _rule.check(fraud["profile"], POLICY, current=few)
    assert result.decision == _rule.WAITING and not result.retrain
    assert result.reason == "waiting for more data: 9999 samples < min_samples 10000"
    # With one more sample the same data triggers.
    assert _rule.check(fraud["profile"], POLICY, current=fraud["shifted"].head(10_000)).retrain


def _scored(drifted: int, total: int) -> list[_rule.FeatureDrift]:
    return [_rule.FeatureDrift(f"f{i}", "numeric", "psi", 0.5 if i < drifted else 0.0, None, i < drifted, 100)
            for i in range(total)]


@pytest.mark.parametrize(("drifted", "decision"), [(3, _rule.NO_RETRAIN), (4, _rule.RETRAIN)],
                         ids=["share-equal-to-drift-share", "share-above-drift-share"])
def test_retraining_needs_more_than_drift_share_of_the_features(drifted: int, decision: str) -> None:
    result = _rule.decide(_scored(drifted, 10), POLICY, samples=50_000)
    assert result.decision == decision and result.share == pytest.approx(drifted / 10)
    assert f"{drifted} of 10 features drifted" in result.reason


def test_a_p_value_test_drifts_below_its_threshold_and_a_distance_above() -> None:
    assert _rule.is_drifted(0.3, 0.01, 0.05) and not _rule.is_drifted(0.3, 0.2, 0.05)
    assert _rule.is_drifted(0.2, None, 0.15) and not _rule.is_drifted(0.15, None, 0.15)


def test_the_result_serialises_to_strict_json() -> None:
    profile = tiny_profile([1.0, 2.0, 3.0, 4.0])
    result = _rule.check(profile, rule("wasserstein", 0.1, min_samples=1),
                          current=pd.DataFrame({"x": [np.nan, np.nan]}), reference=pd.DataFrame({"x": [1.0, 2.0]}))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["features"][0]["score"] is None and data["features"][0]["drifted"] is True
    assert data["drifted_features"] == ["x"] and data["decision"] == _rule.RETRAIN
    assert data["features"][0]["bins"][-1] == "missing" and data["features"][0]["current"][-1] == 1.0

