"""Requests against the data contract (steps._serving.contract): the codes the server scores are ContractEncoder's, the
bins it counts are steps._model.profile's, and every client mistake is a 4xx that names the field and the rule."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.documents import ContractRecord
from steps._core.policy import load_policy
from steps._model import features as _features
from steps._model import profile as _profile
from steps._model.contract import contract_to_dict
from steps._serving.contract import RequestContract, RequestError
from tests.support.paths import POLICY

NAN = float("nan")


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_policy(POLICY)


@pytest.fixture(scope="module")
def contract_dict(policy: Any) -> ContractRecord:
    return contract_to_dict(policy.data)


@pytest.fixture(scope="module")
def profile(policy: Any) -> dict[str, Any]:
    return _profile.build_profile(generate(3000, seed=3), policy.data.features)


@pytest.fixture(scope="module")
def contract(contract_dict: ContractRecord, profile: dict[str, Any]) -> RequestContract:
    return RequestContract(contract_dict, profile, max_rows=500)


def instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: None for missing, plain numbers and strings."""
    out = []
    for record in frame.to_dict("records"):
        out.append({k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else
                        v.item() if isinstance(v, np.generic) else v) for k, v in record.items()})
    return out


def awkward(policy: Any, n: int = 40, seed: int = 4) -> pd.DataFrame:
    """Contract-valid rows with missing values where the contract allows them and unseen categories where they
    map to `other`."""
    frame = generate(n, seed=seed)[policy.data.feature_names].astype(object)
    rng = np.random.default_rng(seed)
    for f in policy.data.features:
        if f.nullable:
            frame.loc[rng.random(n) < 0.3, f.name] = None
        if f.type == "categorical" and f.unknown == "other":
            frame.loc[rng.random(n) < 0.3, f.name] = "never-seen"
    return frame


def v2_body(policy: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}
    return {"inputs": [{"name": f.name, "datatype": kinds[f.type], "shape": [len(rows)],
                        "data": [r[f.name] for r in rows]} for f in policy.data.features]}


def same(a: list[tuple[float, ...]], b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=np.float64), b, equal_nan=True))


def test_v1_rows_are_the_contract_encoders_codes(policy: Any, contract: RequestContract,
                                                 contract_dict: ContractRecord) -> None:
    frame = awkward(policy)
    encoder = _features.ContractEncoder(contract_dict["features"]).fit(frame)
    rows = contract.rows_from_v1({"instances": instances(frame)})
    assert same(rows, encoder.transform(frame))
    assert all(type(v) is float for row in rows for v in row)  # the compiled trees compare floats


def test_v2_rows_equal_v1_rows(policy: Any, contract: RequestContract) -> None:
    rows = instances(awkward(policy))
    body = v2_body(policy, rows)
    assert same(contract.rows_from_v2(body), np.asarray(contract.rows_from_v1({"instances": rows})))
    nested = copy.deepcopy(body)
    for tensor in nested["inputs"]:
        tensor["shape"] = [len(rows), 1]
        tensor["data"] = [[v] for v in tensor["data"]]
    assert same(contract.rows_from_v2(nested), np.asarray(contract.rows_from_v2(body)))


def test_bins_are_the_reference_profiles(policy: Any, contract: RequestContract, profile: dict[str, Any]) -> None:
    frame = awkward(policy, n=300)
    rows = contract.rows_from_v1({"instances": instances(frame)})
    for j, f in enumerate(policy.data.features):
        labels = _profile.bin_labels(profile["features"][f.name])
        assert contract.bin_labels[j] == [*labels, _profile.MISSING_LABEL]
        expected = _profile.bin_index(profile["features"][f.name], frame[f.name])
        got = [contract.bin_positions(row)[j] for row in rows]
        want = [len(labels) if i == _profile.MISSING else int(i) for i in expected]
        assert got == want, f.name


def _valid(policy: Any) -> dict[str, Any]:
    return instances(generate(5, seed=9)[policy.data.feature_names].dropna())[0]


# (change to one valid instance, status, rule, field)
V1_MISTAKES = {
    "missing_field": (lambda r: r.pop("amount"), 422, "required", "amount"),
    "null_not_nullable": (lambda r: r.update(amount=None), 422, "nullable", "amount"),
    "nan_not_nullable": (lambda r: r.update(amount=NAN), 422, "nullable", "amount"),
    "infinity": (lambda r: r.update(distance_from_home_km=math.inf), 422, "finite", "distance_from_home_km"),
    "string_for_number": (lambda r: r.update(amount="12.5"), 422, "type", "amount"),
    "bool_for_number": (lambda r: r.update(amount=True), 422, "type", "amount"),
    "fraction_for_integer": (lambda r: r.update(hour=3.5), 422, "integer", "hour"),
    "above_maximum": (lambda r: r.update(hour=24), 422, "max", "hour"),
    "below_minimum": (lambda r: r.update(customer_age=17), 422, "min", "customer_age"),
    "huge_integer": (lambda r: r.update(amount=10**400), 422, "max", "amount"),
    "unknown_category_rejected": (lambda r: r.update(channel="fax"), 422, "category", "channel"),
    # A number is a category value (integer codes): 3 is simply not one of channel's categories.
    "number_for_category": (lambda r: r.update(channel=3), 422, "category", "channel"),
    "list_for_category": (lambda r: r.update(channel=["pos"]), 422, "type", "channel"),
    "unknown_field": (lambda r: r.update(amout=3), 422, "unknown_field", "amout"),
}


@pytest.mark.parametrize("mistake", list(V1_MISTAKES))
def test_v1_mistakes_name_the_field_and_the_rule(mistake: str, policy: Any, contract: RequestContract) -> None:
    change, status, rule, field = V1_MISTAKES[mistake]
    row = _valid(policy)
    change(row)
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v1({"instances": [_valid(policy), row]})
    err = caught.value
    assert (err.status, err.rule, err.field) == (status, rule, field)
    assert err.body()["error"].startswith(f"instances[1].{field}")


def test_tolerated_values(policy: Any, contract: RequestContract) -> None:
    row = _valid(policy)
    row.update(distance_from_home_km=NAN, merchant_category="never-seen", hour=7.0, is_fraud=1)
    row.pop("device_age_days")  # nullable: absent is missing
    (encoded,) = contract.rows_from_v1({"instances": [row]})
    names = contract.names
    assert math.isnan(encoded[names.index("distance_from_home_km")])
    assert math.isnan(encoded[names.index("device_age_days")])
    merchant = policy.data.feature("merchant_category")
    assert encoded[names.index("merchant_category")] == len(merchant.categories)  # the `other` code
    assert encoded[names.index("hour")] == 7.0


def test_row_limits(policy: Any, contract: RequestContract) -> None:
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v1({"instances": [_valid(policy)] * 501})
    assert (caught.value.status, caught.value.rule) == (413, "max_rows")
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v1({"instances": []})
    assert (caught.value.status, caught.value.rule) == (422, "rows")


def _v2_mistake(name: str, body: dict[str, Any]) -> None:
    inputs = body["inputs"]
    if name == "wrong_datatype":
        inputs[0]["datatype"] = "BYTES"
    elif name == "bad_shape":
        inputs[0]["shape"] = [1, 2]
    elif name == "shape_disagrees_with_data":
        inputs[0]["shape"] = [2]
    elif name == "rows_disagree":
        inputs[1]["shape"], inputs[1]["data"] = [2], inputs[1]["data"] * 2
    elif name == "duplicate_input":
        inputs.append(copy.deepcopy(inputs[0]))
    elif name == "missing_input":
        inputs.pop(1)
    elif name == "fraction_in_int_tensor":
        next(t for t in inputs if t["name"] == "amount").update(datatype="INT64", data=[1.5])


V2_MISTAKES = {
    "wrong_datatype": ("datatype", "amount"), "bad_shape": ("shape", "amount"),
    "shape_disagrees_with_data": ("shape", "amount"), "rows_disagree": ("shape", "hour"),
    "duplicate_input": ("duplicate", "amount"), "missing_input": ("required", "hour"),
    "fraction_in_int_tensor": ("datatype", "amount"),
}


@pytest.mark.parametrize("mistake", list(V2_MISTAKES))
def test_v2_mistakes_name_the_input_and_the_rule(mistake: str, policy: Any, contract: RequestContract) -> None:
    body = v2_body(policy, [_valid(policy)])
    _v2_mistake(mistake, body)
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v2(json.loads(json.dumps(body)))
    assert (caught.value.status, caught.value.rule, caught.value.field) == (422, *V2_MISTAKES[mistake])


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("where", ["datatype", "shape", "name", "data"])
def test_a_deeply_nested_v2_field_is_refused_with_a_short_message(where: str, policy: Any,
                                                                  contract: RequestContract) -> None:
    # Deeper than Python's recursion limit: showing the value must not walk all of it.
    body = v2_body(policy, [_valid(policy)])
    body["inputs"][0][where] = _deep(5000) if where != "data" else [_deep(5000)]
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v2(body)
    assert 400 <= caught.value.status < 500 and caught.value.field is not None
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("value", ["x" * 100_000, 10 ** 4000, {"k" * 10: [1] * 100_000}], ids=["text", "int", "object"])
def test_a_huge_value_is_shown_in_at_most_a_line(value: Any, policy: Any, contract: RequestContract) -> None:
    body = v2_body(policy, [_valid(policy)])
    body["inputs"][0]["datatype"] = value
    with pytest.raises(RequestError) as caught:
        contract.rows_from_v2(body)
    assert caught.value.rule == "datatype" and len(caught.value.message) < 300
