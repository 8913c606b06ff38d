"""Shared by the model's tests: the trained bundle's skops pipeline, and a few thousand generated rows under the
reference contract with their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import Feature, load_policy
from steps._model import features as _features
from steps._model import skops as _model
from tests.support.models import Trained
from tests.support.paths import POLICY


@pytest.fixture(scope="module")
def pipeline(trained: Trained) -> Any:
    return _model.load(trained.bundle / _model.MODEL_FILE)


@pytest.fixture(scope="module")
def fraud() -> tuple[tuple[Feature, ...], pd.DataFrame, np.ndarray]:
    policy = load_policy(POLICY)
    frame = generate(3000, seed=5)
    return policy.data.features, frame, _features.target_vector(frame["is_fraud"], 1)
