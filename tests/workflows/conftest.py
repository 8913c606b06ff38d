"""Policies shared by the tests of the retraining loop's resources (workflows/events.py) and of `mlops events serve`
(workflows/local/events.py): the reference model's, and a second model's with its own schedule and window."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps._core.policy import Policy, load_policy
from tests.support.paths import POLICY


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(POLICY)


@pytest.fixture(scope="module")
def other_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model with its own schedule and window: nothing may be hard-wired to fraud-detection."""
    text = POLICY.read_text().replace("model_name: fraud-detection", "model_name: churn")
    text = text.replace('schedule: "0 * * * *"', 'schedule: "*/30 * * * *"').replace("window: 1h", "window: 2h")
    path = tmp_path_factory.mktemp("gates") / "churn.yaml"
    path.write_text(text)
    return path
