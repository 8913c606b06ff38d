"""The generated fraud data with its profile (as train builds it), unshifted and shifted, for the drift statistics'
tests; the rules and tiny profiles they share are in tests.support.drift."""

from __future__ import annotations

from typing import Any

import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import profile as _profile
from tests.support.drift import ROWS
from tests.support.paths import POLICY as POLICY_FILE


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
