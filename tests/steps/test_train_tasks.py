"""Training a multiclass and a regression model: what bundle.json and profile.json record for the steps after it
(task, classes, target range, naive baselines, the predictions' reference), the estimators of each task, and the
refusals that name the column, the rule and the value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score, log_loss, mean_squared_error, r2_score

from steps import train
from steps._core.errors import UsageError
from steps._core.policy import PolicyError, load_policy
from steps._model import task as _task
from steps._model.bundle import Bundle
from tests.support import tasks
from tests.support.models import Trained


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return tasks.trained_task_bundle(tmp_path_factory, "multiclass")


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return tasks.trained_task_bundle(tmp_path_factory, "regression")


def _manifest(trained: Trained) -> dict:
    return json.loads((trained.bundle / "bundle.json").read_text())


def test_a_multiclass_bundle_records_its_classes_in_the_models_column_order(multiclass: Trained) -> None:
    bundle = Bundle.open(multiclass.bundle)
    assert bundle.task == "multiclass"
    assert bundle.classes == tasks.CLASSES
    assert bundle.threshold is None and bundle.manifest["threshold"] is None
    assert "positive_label" not in bundle.manifest["contract"]
    holdout = pd.read_parquet(multiclass.holdout)
    y = _task.encode_target(holdout["queue"], bundle.manifest["contract"])
    proba = _task.predict(bundle.pipeline, holdout, "multiclass")
    assert proba.shape == (len(holdout), len(tasks.CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The recorded metrics are scikit-learn's on the holdout the gate reads, and the model beats the class priors.
    metrics = bundle.manifest["metrics"]
    assert metrics["holdout_log_loss"] == pytest.approx(log_loss(y, proba, labels=range(4)))
    assert metrics["holdout_macro_f1"] == pytest.approx(f1_score(y, proba.argmax(axis=1), average="macro"))
    shares = np.asarray(metrics["train_class_shares"])
    assert shares.sum() == pytest.approx(1.0)
    prior = log_loss(y, np.tile(shares, (len(y), 1)), labels=range(4))
    assert metrics["holdout_log_loss"] < 0.8 * prior
    # The labels a server answers with are the data's, the most probable class.
    assert set(_task.labels_of(proba, bundle.classes, None, "multiclass")) <= set(tasks.CLASSES)


def test_a_regression_bundle_records_the_target_range_and_the_mean_baseline(regression: Trained) -> None:
    bundle = Bundle.open(regression.bundle)
    assert bundle.task == "regression" and bundle.classes is None and bundle.threshold is None
    contract = bundle.manifest["contract"]
    assert (contract["target_min"], contract["target_max"]) == (-1000, 1000)
    holdout = pd.read_parquet(regression.holdout)
    predicted = _task.predict(bundle.pipeline, holdout, "regression")
    y = holdout["demand"].to_numpy()
    metrics = bundle.manifest["metrics"]
    assert metrics["holdout_rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)))
    assert metrics["holdout_r2"] == pytest.approx(r2_score(y, predicted))
    mean_rmse = np.sqrt(np.mean((y - metrics["train_target_mean"]) ** 2))
    assert metrics["holdout_rmse"] < 0.5 * mean_rmse


def test_profile_json_holds_the_predictions_reference_in_the_bins_serving_counts(
        multiclass: Trained, regression: Trained) -> None:
    profile = json.loads((multiclass.bundle / "profile.json").read_text())
    prediction = profile["prediction"]
    assert prediction["categories"] == [*tasks.CLASSES, "other"]
    assert sum(prediction["proportions"]) == pytest.approx(1.0) and prediction["proportions"][-1] == 0
    assert "target" not in profile
    profile = json.loads((regression.bundle / "profile.json").read_text())
    assert len(profile["prediction"]["edges"]) == 11 and profile["prediction"]["edges"][0] == float("-inf")
    target = profile["target"]
    assert target["count"] == _manifest(regression)["metrics"]["train_rows"]
    assert sum(target["proportions"]) == pytest.approx(1.0)


@pytest.mark.parametrize(("task", "estimator"), [(t, e) for t in tasks.ESTIMATORS for e in tasks.ESTIMATORS[t]])
def test_every_estimator_of_a_task_trains_beyond_its_naive_baseline(
        tmp_path: Path, task: str, estimator: str) -> None:
    policy = load_policy(tasks.task_policy(task, tmp_path / "gates", estimator))
    result = train.train(tasks.validated_folder(tasks.task_frame(task, seed=5), tmp_path / "v"), policy)
    result.write(tmp_path / "bundle", tmp_path / "holdout.parquet")
    metrics = result.meta["metrics"]
    if task == "regression":
        assert metrics["holdout_r2"] > 0.7
    else:
        assert metrics["holdout_accuracy"] > max(metrics["train_class_shares"]) + 0.1
    assert Bundle.open(tmp_path / "bundle").pipeline is not None  # skops trusts every type it saved


def test_a_shuffled_target_learns_nothing(tmp_path: Path) -> None:
    policy = load_policy(tasks.task_policy("regression", tmp_path / "gates"))
    frame = tasks.task_frame("regression", seed=5, shuffled=True)
    metrics = train.train(tasks.validated_folder(frame, tmp_path / "v"), policy).meta["metrics"]
    assert metrics["holdout_r2"] < 0.05


@pytest.mark.parametrize(("task", "edit", "message"), [
    ("multiclass", lambda f: f.assign(queue=f["queue"].where(f["queue"] != "spam", "billing")).pipe(
        lambda g: pd.concat([g, g.head(1).assign(queue="spam")])),
     "every class needs at least 2 rows to stratify the holdout; 'spam' (1 rows)"),
    ("multiclass", lambda f: f.assign(queue=f["queue"].where(f.index != 7, "refunds")),
     "target 'queue': value 'refunds' (row 7) is not one of the classes ['billing', 'outage', 'sales', 'spam']"),
    ("regression", lambda f: f.assign(demand=f["demand"].astype(str).where(f.index != 3, "n/a")),
     "target 'demand': a regression target must be numbers"),
    ("regression", lambda f: f.assign(demand=4.0),
     "target 'demand' has 1 distinct value(s) in 4000 rows; a regression model needs a target that varies"),
])
def test_a_target_its_task_cannot_learn_is_refused_naming_it(tmp_path: Path, task: str, edit, message: str) -> None:
    policy = load_policy(tasks.task_policy(task, tmp_path / "gates"))
    frame = edit(tasks.task_frame(task, seed=5)).reset_index(drop=True)
    with pytest.raises(UsageError, match=None) as caught:
        train.train(tasks.validated_folder(frame, tmp_path / "v"), policy)
    assert message in str(caught.value)


def _policy(tmp_path: Path, task: str, **edits: object) -> Path:
    path = tasks.task_policy(task, tmp_path / "gates")
    doc = yaml.safe_load(path.read_text())
    for dotted, value in edits.items():
        section, key = dotted.split("__")
        doc[section][key] = value
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("task", "edits", "message"), [
    ("regression", {"data__positive_label": 1},
     "data.positive_label: only a binary model has a positive label (model.task is regression) (got 1)"),
    ("multiclass", {"model__threshold": 0.3},
     "model.threshold: only a binary model has a decision threshold (model.task is multiclass) (got 0.3)"),
    ("multiclass", {"data__target_min": 0}, "data.target_min: only a regression target has a range"),
    ("regression", {"data__classes": ["a", "b"]}, "data.classes: a regression target has no classes"),
    ("multiclass", {"data__classes": ["a", "b"]},
     "data.classes: a multiclass target has three classes or more (two: model.task binary) (got ['a', 'b'])"),
    ("regression", {"model__estimator": "logistic_regression"},
     "model.estimator: a regression model is fit by one of hist_gradient_boosting, random_forest, ridge "
     "(got 'logistic_regression')"),
    ("multiclass", {"model__estimator": "ridge"}, "model.estimator: a multiclass model is fit by one of"),
    ("regression", {"quality__pr_auc": {"minimum": 0.5}}, "quality.pr_auc: not a gate of a regression model (its "
     "gates: edge_cases, feature_importance_stability, latency_p95_ms, mae,"),
    ("multiclass", {"quality__rmse": {"maximum": 1}}, "quality.rmse: not a gate of a multiclass model"),
    ("regression", {"data__target_min": 5, "data__target_max": 1},
     "data.target_min: must not exceed target_max 1.0 (got 5.0)"),
])
def test_the_policy_refuses_what_its_task_cannot_use(tmp_path: Path, task: str, edits: dict, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(_policy(tmp_path, task, **edits))
    assert message in str(caught.value)
