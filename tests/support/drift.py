"""Shared by the drift statistics' tests: the seed's drift rule and its variants, and tiny profiles."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from steps._core.policy import DriftPolicy, Feature
from steps._model import profile as _profile

ROWS = 50_000
POLICY = DriftPolicy()  # the seed's rule: psi, 0.15, drift_share 0.3, min_samples 10000
NUMBER = Feature("x", "numeric", nullable=True)
COLOUR = Feature("colour", "categorical", categories=("red", "green", "blue"), unknown="other", nullable=True)


def rule(method: str, threshold: float, **changes: object) -> DriftPolicy:
    return dataclasses.replace(POLICY, method=method, threshold=threshold, **changes)  # type: ignore[arg-type]


def tiny_profile(values: list[object], feature: Feature = NUMBER) -> dict[str, Any]:
    return _profile.build_profile(pd.DataFrame({feature.name: values}), [feature], bins=4)
