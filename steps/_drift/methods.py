"""The drift methods a policy can name: which compare bin counts and which raw values, and the binned companion a
categorical feature is scored with when the policy's method only applies to numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BINNED_METHODS = ("psi", "jensen_shannon", "chi_square")
RAW_METHODS = ("wasserstein", "ks")
# A distance for a distance and a test for a test, so one threshold keeps one meaning.
CATEGORICAL_METHOD = {"psi": "psi", "jensen_shannon": "jensen_shannon", "chi_square": "chi_square",
                      "wasserstein": "jensen_shannon", "ks": "chi_square"}


class DriftMethodError(ValueError):
    """The method cannot run on the data at hand (e.g. a raw-data test with only bin counters)."""


def feature_method(feature_profile: Mapping[str, Any], method: str) -> str:
    """The method a feature is scored with: the policy's, or its binned companion for a categorical feature."""
    if method not in CATEGORICAL_METHOD:
        raise DriftMethodError(f"drift.method: unknown method {method!r} (known: {sorted(CATEGORICAL_METHOD)})")
    return CATEGORICAL_METHOD[method] if feature_profile["type"] == "categorical" else method


def output_method(method: str) -> str:
    """The method a model output (prediction, target) is scored with: the policy's binned method, or a raw
    method's binned companion (no raw sample of predictions is kept, only their profile)."""
    if method not in CATEGORICAL_METHOD:
        raise DriftMethodError(f"drift.method: unknown method {method!r} (known: {sorted(CATEGORICAL_METHOD)})")
    return CATEGORICAL_METHOD[method]
