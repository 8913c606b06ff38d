"""A small real model for the gate's measures: the reference contract, logistic regression, 3000 generated rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import Policy, load_policy
from steps._model import features as _features
from tests.conftest import POLICY


@dataclass(frozen=True)
class SmallModel:
    policy: Policy
    pipeline: Any
    X: pd.DataFrame
    y: np.ndarray
    holdout: pd.DataFrame


@pytest.fixture(scope="package")
def small_model() -> SmallModel:
    policy = load_policy(POLICY)
    data = policy.data
    frame = generate(3000, seed=5)
    X = _features.model_input(frame, data.features)
    y = _features.target_vector(frame[data.target], data.positive_label)
    pipeline = _features.build_pipeline(data.features, "logistic_regression", {"max_iter": 500}, seed=1)
    pipeline.fit(X, y)
    return SmallModel(policy, pipeline, X, y, frame)
