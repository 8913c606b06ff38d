"""The generated data of the regression and multiclass reference models (steps/_core/synthetic_demand.py,
synthetic_tickets.py): it matches its policy's contract, its drift moves what it says it moves and nothing else (by
the policy's own drift rule), and a model learns it far beyond the naive baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps._core.policy import Policy, load_policy
from steps._core.synthetic import drifted_features, generate_named
from steps._drift import rule as _rule
from steps._model import profile as _profile

ROOT = Path(__file__).resolve().parents[3]
ROWS = 20_000
MODELS = ("demand-forecast", "ticket-triage")


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def policy(model: str) -> Policy:
    return load_policy(ROOT / "gates" / "examples" / f"{model}.yaml")


@pytest.fixture(scope="module")
def reference(model: str) -> pd.DataFrame:
    return generate_named(model, ROWS, seed=1)


def test_the_data_matches_its_policy_s_contract(policy: Policy, reference: pd.DataFrame) -> None:
    data = policy.data
    assert list(reference.columns) == [*data.feature_names, data.target]
    for f in data.features:
        values = reference[f.name]
        assert values.notna().all() or f.nullable, f"{f.name}: nulls in a non-nullable feature"
        present = values.dropna()
        if f.type == "categorical":
            assert set(present) == set(f.categories), f"{f.name}: {set(present) ^ set(f.categories)}"
            continue
        numbers = present.to_numpy(dtype=float)
        assert f.min is not None and f.max is not None and f.min <= numbers.min() and numbers.max() <= f.max, f.name
        if f.type == "integer":
            assert (numbers == np.round(numbers)).all(), f"{f.name}: fractions in an integer feature"
    assert {f.name for f in data.features if reference[f.name].isna().any()} == {
        f.name for f in data.features if f.nullable}  # real data has holes, where the contract allows them


def test_the_target_is_what_the_task_expects(policy: Policy, reference: pd.DataFrame) -> None:
    target = reference[policy.data.target]
    if policy.model.task == "regression":
        assert policy.data.target_min is not None and policy.data.target_max is not None
        assert policy.data.target_min <= target.min() and target.max() <= policy.data.target_max
        assert target.nunique() > 100  # `mlops init` would call it a regression target
    else:
        assert policy.model.task == "multiclass" and policy.data.classes is not None
        shares = target.value_counts(normalize=True)
        assert set(shares.index) == set(policy.data.classes)
        assert shares.min() > 0.05 and shares.max() < 0.4  # imbalanced, as real routing is, but every team matters


def test_drift_moves_exactly_the_drifted_features_by_the_policy_s_rule(model: str, policy: Policy,
                                                                        reference: pd.DataFrame) -> None:
    profile = _profile.build_profile(reference, policy.data.features)
    drifted = generate_named(model, ROWS, seed=2, drift=0.8)  # what `mlops demo` replays as traffic
    result = _rule.check(profile, policy.drift, current=drifted)
    assert sorted(result.drifted_features) == sorted(drifted_features(model))
    assert result.decision == _rule.RETRAIN
    same = _rule.check(profile, policy.drift, current=generate_named(model, ROWS, seed=3))
    assert same.drifted_features == [] and same.decision == _rule.NO_RETRAIN


def test_a_model_learns_far_beyond_the_naive_baseline(policy: Policy, reference: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, log_loss, r2_score

    features = reference[policy.data.feature_names].copy()
    for f in policy.data.features:
        if f.type == "categorical":
            features[f.name] = pd.Categorical(features[f.name], categories=list(f.categories))
        else:
            features[f.name] = features[f.name].astype(float)
    target = reference[policy.data.target]
    cut = int(ROWS * 0.8)
    if policy.model.task == "regression":
        regressor = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        predicted = regressor.fit(features[:cut], target[:cut]).predict(features[cut:])
        rmse = float(np.sqrt(np.mean((target[cut:] - predicted) ** 2)))
        naive = float(np.sqrt(np.mean((target[cut:] - target[:cut].mean()) ** 2)))
        assert r2_score(target[cut:], predicted) > 0.8 and rmse / naive < 0.5
    else:
        classifier = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        probabilities = classifier.fit(features[:cut], target[:cut]).predict_proba(features[cut:])
        classes = classifier.classes_
        prior = target[:cut].value_counts(normalize=True).reindex(classes).to_numpy()
        ratio = log_loss(target[cut:], probabilities, labels=classes) / log_loss(
            target[cut:], np.tile(prior, (len(probabilities), 1)), labels=classes)
        assert f1_score(target[cut:], classes[probabilities.argmax(axis=1)], average="macro") > 0.68
        assert ratio < 0.5
