"""A small real model for the gate's measures: the reference contract, logistic regression, 3000 generated rows."""

from __future__ import annotations

import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import features as _features
from tests.support.models import SmallModel
from tests.support.paths import POLICY


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
