"""The model's outputs beside its inputs: prediction drift (the served or scored predictions against profile.json's
`prediction`) and, for regression, target drift (a current dataset's target against profile.json's `target`).

Both are counted over the profile's own bins, like a feature: from the servers' model_prediction_bin_total (their
increase in Prometheus, or their /metrics totals), so the check costs the same whatever the traffic, or from a
current dataset, which the production model scores (a dataset of features carries no predictions; one model load
and one vectorised predict per check). Scored with the policy's binned method (a raw method's binned companion, as
for a categorical feature: no raw sample of predictions is kept), against the policy's threshold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from steps._core.errors import UsageError
from steps._drift import binned, sources
from steps._storage.registry import Registry

PREDICTION, TARGET = "prediction", "target"  # their names in drift.json, its page and the Pushgateway
METRIC = sources.PREDICTION_METRIC

Outputs = dict[str, tuple[dict[str, Any], np.ndarray]]  # name -> (its profile entry, its count vector)


def from_counters(profile: Mapping[str, Any], counters: Mapping[str, float]) -> Outputs:
    """The prediction's count vector from per-bin counters (model_prediction_bin_total's `bin` label); nothing
    when the profile has no `prediction` (a bundle trained before profiling it). No counters count zero."""
    reference = profile.get(PREDICTION)
    if not reference:
        return {}
    try:
        counts = binned.counts_from_labels({"features": {PREDICTION: reference}}, {PREDICTION: dict(counters)})
    except ValueError as err:
        raise ValueError(f"{METRIC}: {err}") from err
    return {PREDICTION: (dict(reference), counts[PREDICTION])}


def from_dataset(profile: Mapping[str, Any], frame: pd.DataFrame, registry: Registry, model: str,
                 version: int) -> Outputs:
    """The prediction's counts (the production model scoring `frame`) when the profile has a `prediction`, and
    the target's counts when the profile has a `target` (regression) and `frame` carries the target column."""
    out: Outputs = {}
    contract = registry.manifest(model, version).get("contract") or {}
    target = contract.get("target")
    if profile.get(TARGET) and target and target in frame.columns:
        out[TARGET] = (dict(profile[TARGET]), binned.count_column(profile[TARGET], frame[target], str(target)))
    if profile.get(PREDICTION):
        values = predictions(registry, model, version, frame)
        out[PREDICTION] = (dict(profile[PREDICTION]), binned.count_column(profile[PREDICTION], values, PREDICTION))
    return out


def predictions(registry: Registry, model: str, version: int, frame: pd.DataFrame) -> pd.Series:
    """What the production version predicts for `frame`, as its profile's `prediction` bins them: the score
    (binary), the value (regression), the predicted class as the data writes it (multiclass)."""
    from steps._model import task as _task
    from steps._model.bundle import Bundle, BundleError
    from steps._model.skops import ModelError

    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as folder:
        try:
            bundle = Bundle.open(registry.fetch(model, version, folder))
            pipeline = bundle.pipeline
        except (BundleError, ModelError) as err:
            raise UsageError(f"{model} v{version}: cannot load the model to score the current data for "
                             f"prediction drift: {err}") from err
        names = [f.name for f in bundle.features]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise UsageError(f"current data: no column {missing[0]!r} (a feature of {model} v{version})")
        try:
            scores = _task.predict(pipeline, frame[names], bundle.task)
        except Exception as err:  # any failure to score: say which model and why
            raise UsageError(f"{model} v{version}: cannot score the current data for prediction drift: "
                             f"{type(err).__name__}: {err}") from err
    if bundle.task == "multiclass":
        return pd.Series(_task.labels_of(scores, bundle.classes or [], None, "multiclass"), dtype=object)
    return pd.Series(scores, dtype=np.float64)
