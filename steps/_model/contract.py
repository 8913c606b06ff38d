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
    """Feature objects back from a bundle's `contract` (the inverse of `contract_to_dict`). Raises ValueError."""
    try:
        return tuple(
            Feature(
                name=d["name"],
                type=d["type"],
                min=d.get("min"),
                max=d.get("max"),
                nullable=bool(d.get("nullable", False)),
                categories=tuple(d.get("categories") or ()),
                unknown=d.get("unknown", "reject"),
            )
            for d in contract["features"]
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"contract.features: malformed feature entry ({err!r})") from err
