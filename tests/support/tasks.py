"""Multiclass and regression models for the tests: small tables with a learnable signal (numbers, whole numbers,
a category, missing values), their policies, and bundles trained once per session by steps.train's own code.

    trained_task_bundle(tmp_path_factory, "multiclass")  ->  Trained(bundle, holdout, policy)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import train
from steps._core.policy import load_policy
from steps._model import bundle as _bundle
from tests.support.models import Trained

CLASSES = ["billing", "outage", "sales", "spam"]
CHANNELS = ["email", "phone", "chat"]
ROWS = 4000
# Quick settings per task and estimator: each fits in about a second on ROWS rows.
ESTIMATORS: dict[str, dict[str, dict[str, float]]] = {
    "multiclass": {"hist_gradient_boosting": {"max_iter": 30}, "logistic_regression": {"max_iter": 500},
                   "random_forest": {"n_estimators": 20}},
    "regression": {"hist_gradient_boosting": {"max_iter": 30}, "ridge": {"alpha": 1.0},
                   "random_forest": {"n_estimators": 20}},
}
FEATURES = [
    {"name": "x1", "type": "numeric", "min": -10, "max": 10, "nullable": True},
    {"name": "x2", "type": "numeric", "min": -10, "max": 10},
    {"name": "count", "type": "integer", "min": 0, "max": 100},
    {"name": "channel", "type": "categorical", "categories": CHANNELS, "unknown": "other"},
]


def task_frame(task: str, rows: int = ROWS, seed: int = 0, shift: float = 0.0, shuffled: bool = False) -> pd.DataFrame:
    """A table whose target depends on every feature; `shift` moves x1 and x2 (drift); `shuffled` permutes the
    target (a model that learns nothing)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1.5, rows).clip(-10, 10)
    x2 = rng.normal(shift, 1.5, rows).clip(-10, 10)
    count = rng.poisson(5, rows).clip(0, 100)
    channel = rng.choice(CHANNELS, rows, p=[0.5, 0.3, 0.2])
    chat = (channel == "chat").astype(float)
    if task == "regression":
        target = 50 + 8 * x1 - 5 * x2 + 1.5 * count + 12 * chat + rng.normal(0, 4, rows)
        frame = pd.DataFrame({"x1": x1, "x2": x2, "count": count, "channel": channel, "demand": target.round(2)})
    else:
        logits = np.stack([1.2 * x1, -1.2 * x1 + 0.3 * count - 1.5, 1.4 * x2 + 0.8 * chat, -x2 - 1.0], axis=1)
        logits += rng.gumbel(size=logits.shape)
        frame = pd.DataFrame({"x1": x1, "x2": x2, "count": count, "channel": channel,
                              "queue": np.asarray(CLASSES, dtype=object)[np.argmax(logits, axis=1)]})
    frame.loc[rng.random(rows) < 0.03, "x1"] = np.nan
    target_column = frame.columns[-1]
    if shuffled:
        frame[target_column] = rng.permutation(frame[target_column].to_numpy())
    return frame


def task_policy(task: str, folder: Path, estimator: str = "hist_gradient_boosting",
                quality: dict[str, object] | None = None, model: str | None = None) -> Path:
    """gates/<model>.yaml for `task_frame(task)`, with gates the trained model passes."""
    name = model or ("ticket-queue" if task == "multiclass" else "demand")
    data: dict[str, object] = {"source": "data.csv", "target": "queue" if task == "multiclass" else "demand",
                               "features": FEATURES, "segment": "channel"}
    if task == "multiclass":
        data["classes"] = CLASSES
        gates = {"accuracy": {"minimum": 0.5}, "macro_f1": {"minimum": 0.4}, "log_loss_vs_prior": {"maximum": 0.9},
                 "log_loss": {"maximum": 1.2}}
    else:
        data.update(target_min=-1000, target_max=1000)
        gates = {"rmse": {"maximum": 10}, "mae": {"maximum": 8}, "r2": {"minimum": 0.5},
                 "rmse_vs_mean": {"maximum": 0.7}}
    document = {"model_name": name, "data": data,
                "model": {"task": task, "estimator": estimator, "params": ESTIMATORS[task][estimator], "seed": 7},
                "quality": quality if quality is not None else {**gates, "edge_cases": {"required": True}}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def validated_folder(frame: pd.DataFrame, folder: Path) -> Path:
    """What validate's --out holds (data.parquet, source.json), without running validate."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "data.parquet", index=False)
    source = {"uri": "generated", "sha256": _bundle.sha256_file(folder / "data.parquet"), "format": "parquet",
              "rows": len(frame)}
    (folder / "source.json").write_text(json.dumps(source))
    return folder


def trained_task_bundle(tmp_path_factory: pytest.TempPathFactory, task: str,
                        estimator: str = "hist_gradient_boosting", shuffled: bool = False) -> Trained:
    """A `task` model trained on task_frame(task), once per session and arguments."""
    root = tmp_path_factory.getbasetemp() / f"task-{task}-{estimator}{'-shuffled' if shuffled else ''}"
    policy = task_policy(task, root / "gates", estimator)
    done = Trained(root / "bundle", root / "holdout.parquet", policy)
    if (done.bundle / _bundle.MANIFEST).is_file():
        return done
    validated = validated_folder(task_frame(task, seed=3, shuffled=shuffled), root / "validated")
    result = train.train(validated, load_policy(policy), git_commit="0" * 40)
    result.write(done.bundle, done.holdout)
    return done
