"""The data contract as bundle.json records it (steps/_model/contract.py): written at training, read back by the
gate, the server and the drift step, so what comes back must be the policy's features exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from steps._core.policy import DataPolicy, Feature, load_policy
from steps._model.contract import contract_to_dict, feature_to_dict, features_from_contract
from tests.support.paths import POLICY

EVERY_KIND = (
    Feature("amount", "numeric", min=0, max=100000.5),
    Feature("ratio", "numeric"),  # no bounds
    Feature("distance_km", "numeric", min=0, nullable=True),
    Feature("hour", "integer", min=0, max=23),
    Feature("device_age_days", "integer", nullable=True),
    Feature("channel", "categorical", categories=("pos", "online", "atm"), unknown="reject"),
    Feature("merchant", "categorical", categories=("grocery", "fuel"), unknown="other", nullable=True),
    Feature("is_international", "categorical", categories=("no", "yes")),
)


def through_bundle_json(data: DataPolicy) -> dict[str, Any]:
    """The contract as a reader finds it: written into bundle.json and parsed back."""
    loaded: dict[str, Any] = json.loads(json.dumps(contract_to_dict(data)))
    return loaded


def test_every_feature_kind_round_trips_through_bundle_json() -> None:
    data = DataPolicy(source="generate:", target="label", features=EVERY_KIND, positive_label="fraud",
                      segment="channel")
    contract = through_bundle_json(data)
    assert features_from_contract(contract) == EVERY_KIND
    assert (contract["target"], contract["positive_label"], contract["segment"]) == ("label", "fraud", "channel")


def test_the_reference_policys_contract_round_trips() -> None:
    data = load_policy(POLICY).data
    assert features_from_contract(through_bundle_json(data)) == data.features


def test_a_contract_without_a_segment_records_null() -> None:
    data = DataPolicy(source="generate:", target="y", features=EVERY_KIND[:1])
    assert through_bundle_json(data)["segment"] is None
    assert through_bundle_json(data)["positive_label"] == 1


def test_a_feature_is_recorded_with_every_field() -> None:
    assert feature_to_dict(EVERY_KIND[6]) == {"name": "merchant", "type": "categorical", "min": None, "max": None,
                                              "nullable": True, "categories": ["grocery", "fuel"], "unknown": "other"}
    assert feature_to_dict(EVERY_KIND[3]) == {"name": "hour", "type": "integer", "min": 0, "max": 23,
                                              "nullable": False, "categories": [], "unknown": "reject"}


def test_an_entry_with_only_a_name_and_type_takes_the_defaults() -> None:
    assert features_from_contract({"features": [{"name": "x", "type": "numeric"}]}) == (
        Feature("x", "numeric", min=None, max=None, nullable=False, categories=(), unknown="reject"),)


def test_the_category_order_is_kept() -> None:
    # The encoder maps a category to its position: reordering would change every prediction.
    colours = Feature("colour", "categorical", categories=("red", "green", "blue"))
    data = DataPolicy(source="generate:", target="y", features=(colours,))
    assert features_from_contract(through_bundle_json(data))[0].categories == ("red", "green", "blue")


@pytest.mark.parametrize(("contract", "names"), [
    ({"features": [{"type": "numeric"}]}, "KeyError('name')"),
    ({"features": [{"name": "amount"}]}, "KeyError('type')"),
    ({"target": "y"}, "KeyError('features')"),
    ({"features": None}, "TypeError"),
    ({"features": ["amount"]}, "TypeError"),
], ids=["no-name", "no-type", "no-features", "features-null", "entry-not-an-object"])
def test_a_malformed_entry_is_a_value_error_naming_what_is_missing(contract: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=r"^contract.features: malformed feature entry \(") as caught:
        features_from_contract(contract)
    assert names in str(caught.value)


@pytest.mark.parametrize(("entry", "said"), [
    ({"name": "a", "type": "text"}, ["type", "must be one of numeric, integer, categorical (got 'text')"]),
    ({"name": "a", "type": "numeric", "min": "zero"}, ["min", "valid number", "'zero'"]),
    ({"name": "c", "type": "categorical", "categories": ["a"], "unknown": "drop"}, ["unknown", "'drop'"]),
    # Rules across fields say the rule and the value, but not the field (see the xfail below).
    ({"name": "a", "type": "numeric", "min": 5, "max": 1}, ["must not exceed max 1.0 (got 5.0)"]),
    ({"name": "c", "type": "categorical", "categories": []}, ["must be a non-empty list of values"]),
], ids=["unknown-type", "bound-not-a-number", "unknown-mode", "min-above-max", "no-categories"])
def test_an_entry_breaking_a_contract_rule_is_a_value_error_saying_which_rule(entry: dict[str, Any],
                                                                              said: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        features_from_contract({"features": [entry]})
    assert all(part in str(caught.value) for part in said), str(caught.value)


@pytest.mark.parametrize("entry", [
    {"name": "amount"},
    {"name": "amount", "type": "numeric", "min": 5, "max": 1},
], ids=["no-type", "min-above-max"])
def test_a_malformed_entry_is_named_in_the_error(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        features_from_contract({"features": [{"name": "hour", "type": "integer"}, entry]})
    assert "amount" in str(caught.value) or "features[1]" in str(caught.value)


def test_categories_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(ValueError, match="categories"):
        features_from_contract({"features": [{"name": "channel", "type": "categorical", "categories": "pos"}]})
