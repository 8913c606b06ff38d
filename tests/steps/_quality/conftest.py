"""Real models for the gate's measures: a small binary one (the reference contract, logistic regression, 3000
generated rows), and a multiclass and a regression bundle trained by steps.train (tests/support/tasks.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import features as _features
from steps._model import task as _task
from steps._model.bundle import Bundle
from tests.support.models import SmallModel
from tests.support.paths import POLICY
from tests.support.tasks import trained_task_bundle


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


@dataclass(frozen=True)
class TaskModel:
    """A trained bundle of one task, its holdout's model input, encoded target and the model's predictions."""

    task: str
    bundle: Bundle
    pipeline: Any
    X: pd.DataFrame
    y: np.ndarray
    predictions: np.ndarray


@pytest.fixture(scope="package", params=["multiclass", "regression"])
def task_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TaskModel:
    trained = trained_task_bundle(tmp_path_factory, request.param)
    bundle = Bundle.open(trained.bundle)
    holdout = pd.read_parquet(trained.holdout)
    X = _features.model_input(holdout, bundle.features)
    y = _task.encode_target(holdout[bundle.manifest["contract"]["target"]], bundle.manifest["contract"])
    return TaskModel(request.param, bundle, bundle.pipeline, X, y, _task.predict(bundle.pipeline, X, bundle.task))
