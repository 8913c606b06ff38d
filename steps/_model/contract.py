"""The data contract as bundle.json records it: the policy's features written down at training, read back by the
gate, the server and the drift step. Plain data only (no scikit-learn), so the server's compiled path loads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps._core.documents import ContractRecord, FeatureRecord
from steps._core.policy import DataPolicy, Feature


def contract_to_dict(data: DataPolicy) -> ContractRecord:
    """The contract as plain data, as recorded in bundle.json (serving checks requests against this copy)."""
    return {
        "features": [feature_to_dict(f) for f in data.features],
        "target": data.target,
        "positive_label": data.positive_label,
        "segment": data.segment,
    }


def feature_to_dict(f: Feature) -> FeatureRecord:
    return {
        "name": f.name,
        "type": f.type,
        "min": f.min,
        "max": f.max,
        "nullable": f.nullable,
        "categories": list(f.categories),
        "unknown": f.unknown,
    }


def features_from_contract(contract: Mapping[str, Any]) -> tuple[Feature, ...]:
    """Feature objects back from a bundle's `contract` (the inverse of `contract_to_dict`). Raises ValueError naming
    the entry (its position and name) and what is wrong with it."""
    try:
        entries = list(contract["features"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"contract.features: malformed feature entry ({err!r})") from err
    return tuple(_feature(i, d) for i, d in enumerate(entries))


def _feature(i: int, d: Any) -> Feature:
    where = f"contract.features[{i}]" + (f" ({d['name']})" if isinstance(d, Mapping) and "name" in d else "")
    if not isinstance(d, Mapping):
        raise ValueError(f"contract.features: malformed feature entry (TypeError: not an object: {d!r}) at {where}")
    try:
        categories = d.get("categories") or ()
        if not isinstance(categories, list | tuple):
            raise ValueError(f"categories must be a list, got {type(categories).__name__} {categories!r}")
        return Feature(
            name=d["name"],
            type=d["type"],
            min=d.get("min"),
            max=d.get("max"),
            nullable=bool(d.get("nullable", False)),
            categories=tuple(categories),
            unknown=d.get("unknown", "reject"),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"contract.features: malformed feature entry ({err!r}) at {where}") from err
    except ValueError as err:  # a rule of the contract (pydantic's ValidationError is a ValueError)
        raise ValueError(f"{where}: {err}") from err
