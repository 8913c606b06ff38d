"""Shared by the drift statistics' tests: the seed's drift rule, tiny profiles, and the generated fraud data with
its profile (as train builds it), unshifted and shifted."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import DriftPolicy, Feature, load_policy
from steps._model import profile as _profile
from tests.conftest import POLICY as POLICY_FILE

ROWS = 50_000
POLICY = DriftPolicy()  # the seed's rule: psi, 0.15, drift_share 0.3, min_samples 10000
NUMBER = Feature("x", "numeric", nullable=True)
COLOUR = Feature("colour", "categorical", categories=("red", "green", "blue"), unknown="other", nullable=True)


def rule(method: str, threshold: float, **changes: object) -> DriftPolicy:
    return dataclasses.replace(POLICY, method=method, threshold=threshold, **changes)  # type: ignore[arg-type]


def tiny_profile(values: list[object], feature: Feature = NUMBER) -> dict[str, Any]:
    return _profile.build_profile(pd.DataFrame({feature.name: values}), [feature], bins=4)


@pytest.fixture(scope="package")
def fraud() -> dict[str, Any]:
    """50k reference rows, their profile (as train builds it), 50k unshifted and 50k shifted current rows."""
    policy = load_policy(POLICY_FILE)
    target = [policy.data.target]
    reference = generate(ROWS, seed=1).drop(columns=target)
    return {
        "reference": reference,
        "profile": _profile.build_profile(reference, policy.data.features),
        "same": generate(ROWS, seed=2).drop(columns=target),
        # At drift=0.8 every shifted feature is past PSI 0.15; at 0.5 half of them are not.
        "shifted": generate(ROWS, seed=2, drift=0.8).drop(columns=target),
    }
