"""The preprocessing built from the contract (steps/_model/features.py): the encoder, the pipelines of every
estimator the policy may name, and the contract's bundle.json form. Saving and loading the model with our trusted
types only is tests/steps/_model/test_skops.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps._core.errors import UsageError
from steps._core.policy import Feature, load_policy
from steps._model import features as _features
from steps._model import skops as _model
from steps._model.contract import contract_to_dict, feature_to_dict, features_from_contract
from tests.support.models import ESTIMATORS
from tests.support.paths import POLICY

CONTRACT = (
    Feature("amount", "numeric", min=0, max=100),
    Feature("visits", "integer", min=0, max=10, nullable=True),
    Feature("colour", "categorical", categories=("red", "green", "blue"), unknown="other"),
    Feature("size", "categorical", categories=("s", "m"), unknown="reject", nullable=True),
)


def encoder() -> _features.ContractEncoder:
    frame = pd.DataFrame({"amount": [1.0], "visits": [1], "colour": ["red"], "size": ["s"]})
    return _features.ContractEncoder([feature_to_dict(f) for f in CONTRACT]).fit(frame)


def test_encoder_codes_categories_from_the_contract_in_contract_order() -> None:
    batch = pd.DataFrame(
        {
            "size": ["m", "xl", None, "s"],
            "colour": ["blue", "purple", None, "red"],
            "visits": pd.array([3, None, 0, 10], dtype="Int64"),
            "amount": [1.5, 2.0, np.nan, 100.0],
            "not_in_contract": ["ignored"] * 4,
        }
    )
    as_json = batch.astype(object)  # a batch built from JSON requests: object columns, None for missing
    before = as_json.copy()
    np.testing.assert_array_equal(encoder().transform(as_json), encoder().transform(batch))
    pd.testing.assert_frame_equal(as_json, before)  # the caller's frame is left alone
    out = encoder().transform(batch)
    expected = np.array(
        [
            [1.5, 3, 2, 1],  # blue is the third colour, m the second size
            [
                2.0,
                np.nan,
                3,
                np.nan,
            ],  # unseen colour -> the extra `other` code 3; unseen size (reject) -> missing
            [np.nan, 0, np.nan, np.nan],
            [100.0, 10, 0, 0],
        ]
    )
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64


def test_encoder_names_the_missing_contract_column() -> None:
    with pytest.raises(ValueError, match=r"\['size'\]"):
        encoder().transform(pd.DataFrame({"amount": [1.0], "visits": [1], "colour": ["red"]}))


def test_encoder_refuses_text_in_a_numeric_feature_naming_it() -> None:
    batch = pd.DataFrame({"amount": ["lots"], "visits": [1], "colour": ["red"], "size": ["s"]}, dtype=object)
    with pytest.raises(ValueError, match="amount"):
        encoder().transform(batch)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_iterr": 5}, r"model\.params\.max_iterr: not a parameter of HistGradientBoostingClassifier"),
        ({"random_state": 1}, r"model\.params\.random_state: set from model\.seed"),
        ({"categorical_features": [0]}, r"model\.params\.categorical_features"),
    ],
    ids=["typo", "seed-twice", "categorical-twice"],
)
def test_build_pipeline_refuses_params_that_would_be_ignored_or_fight_the_contract(
    params: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        _features.build_pipeline(CONTRACT, "hist_gradient_boosting", params, seed=1)


def test_hist_gradient_boosting_treats_exactly_the_contract_categoricals_as_categorical(fraud) -> None:
    features, _, _ = fraud
    model = _features.build_pipeline(features, "hist_gradient_boosting", {}, seed=1)[-1]
    assert list(model.categorical_features) == [f.type == "categorical" for f in features]


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_every_estimator_scores_missing_unseen_and_extreme_values(fraud, estimator: str) -> None:
    features, frame, y = fraud
    pipeline = _features.build_pipeline(features, estimator, ESTIMATORS[estimator], seed=3)
    with _model.compute_threads():
        pipeline.fit(_features.model_input(frame, features), y)
    awkward = frame.iloc[:4][[f.name for f in features]].astype(object).reset_index(drop=True)
    awkward.loc[0, :] = None
    awkward.loc[1, "merchant_category"] = "space_travel"  # unknown: other
    awkward.loc[1, "channel"] = "carrier_pigeon"  # unknown: reject -> treated as missing by the model
    awkward.loc[2, "amount"] = 1e12
    scores = pipeline.predict_proba(awkward)[:, 1]
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    assert (
        pipeline.predict_proba(_features.model_input(frame, features))[:, 1].std() > 0
    )  # it learned something


def test_contract_round_trips_through_bundle_json_form() -> None:
    policy = load_policy(POLICY)
    contract = contract_to_dict(policy.data)
    assert features_from_contract(contract) == policy.data.features
    assert contract["target"] == "is_fraud" and contract["segment"] == "region"


def test_a_large_frame_is_encoded_column_by_column_to_the_codes_of_single_rows() -> None:
    """Past ROW_PATH_ROWS the encoder reads each column by its dtype (pandas categories keyed once per category);
    every row gets the code it gets alone, whatever dtype the column came in."""
    rng = np.random.default_rng(3)
    n = 300
    colours = rng.choice(np.array(["red", "green", "blue", "purple", None], dtype=object), n)
    sizes = rng.choice(np.array(["s", "m", None], dtype=object), n)
    visits = pd.array(rng.integers(0, 10, n), dtype="Int64")
    visits[rng.random(n) < 0.2] = pd.NA
    amount = rng.random(n) * 100
    amount[rng.random(n) < 0.1] = np.nan
    frames = {
        "objects": pd.DataFrame({"amount": amount, "visits": visits, "colour": colours, "size": sizes}),
        "categories": pd.DataFrame({"amount": amount, "visits": visits, "colour": pd.Categorical(colours),
                                    "size": pd.Categorical(sizes)}),
        "plain-ints-and-objects": pd.DataFrame({"amount": amount.astype(object), "visits": rng.integers(0, 10, n),
                                                "colour": colours, "size": sizes}),
    }
    enc = encoder()
    for name, frame in frames.items():
        assert len(frame) > _features.ROW_PATH_ROWS
        rows = np.vstack([enc.transform(frame.iloc[i:i + 1]) for i in range(n)])
        np.testing.assert_array_equal(enc.transform(frame), rows, err_msg=name)


def test_integer_coded_categories_read_as_pandas_categories_get_the_contracts_codes() -> None:
    contract = [feature_to_dict(Feature("grade", "categorical", categories=(1, 2, 3), unknown="other"))]
    enc = _features.ContractEncoder(contract).fit(pd.DataFrame({"grade": [1]}))
    values = [3, 1, 7, None, 2] * 20
    as_objects = enc.transform(pd.DataFrame({"grade": pd.Series(values, dtype=object)}))
    as_categories = enc.transform(pd.DataFrame({"grade": pd.Categorical(values)}))
    np.testing.assert_array_equal(as_objects, as_categories)
    np.testing.assert_array_equal(as_objects[:5, 0], [2.0, 0.0, 3.0, np.nan, 1.0])
