"""What a model predicts, by task: the target as the model learns it, and the model's predictions as every step
reads them (gate, serve through skops, drift). Plain numpy and pandas; scikit-learn objects come in fitted.

    binary      the target as 0/1 (1 = data.positive_label); predictions P(positive), shape [n]
    multiclass  the target as codes 0..k-1 (the index in contract.classes); predictions the k probabilities,
                shape [n, k], columns in contract.classes order
    regression  the target as float64; predictions the values, shape [n]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from steps._core.categories import CategoryError
from steps._core.categories import key as category_key
from steps._core.categories import keys as category_keys
from steps._core.errors import UsageError

TASKS = ("binary", "multiclass", "regression")


def task_of(record: Mapping[str, Any]) -> str:
    """The task of a bundle.json (or of its `contract`); bundles trained before recording it are binary."""
    contract = record.get("contract", record)
    task = contract.get("task", "binary") if isinstance(contract, Mapping) else "binary"
    return str(task)


def is_classifier(task: str) -> bool:
    return task != "regression"


def encode_target(values: pd.Series, contract: Mapping[str, Any], where: str = "--data") -> np.ndarray:
    """The target as the model learns it (see the module's docstring). Raises UsageError naming the column and the
    value for a value the task cannot take."""
    task = task_of(contract)
    name = contract.get("target", values.name)
    if task == "regression":
        try:
            numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{where}: target {name!r}: a regression target must be numbers ({err})") from err
        bad = ~np.isfinite(numbers)
        if bad.any():
            raise UsageError(f"{where}: target {name!r}: {int(bad.sum())} rows are missing or not finite "
                             f"(the first at row {int(np.flatnonzero(bad)[0])}); every row needs a value")
        return numbers
    try:
        value_keys = category_keys(values)
    except CategoryError as err:
        raise UsageError(f"{where}: target {name!r}: {err}") from err
    if task == "binary":
        binary: np.ndarray = (value_keys == category_key(contract.get("positive_label", 1))).astype(np.int64)
        return binary
    classes = list(contract["classes"])
    codes = pd.Index([category_key(c) for c in classes]).get_indexer(pd.Index(value_keys))
    if (codes < 0).any():
        first = int(np.flatnonzero(codes < 0)[0])
        raise UsageError(f"{where}: target {name!r}: value {values.iloc[first]!r} (row {first}) is not one of the "
                         f"classes {classes} (data.classes)")
    multiclass: np.ndarray = codes.astype(np.int64)
    return multiclass


def predict(model: Any, X: Any, task: str) -> np.ndarray:
    """A fitted model's predictions (see the module's docstring). A classifier's probability columns follow its
    `classes_`, which are the codes 0..k-1 (binary: 0, 1) since it learnt from `encode_target`."""
    if task == "regression":
        values: np.ndarray = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
        return values
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    classes = [int(c) for c in model.classes_]
    if task == "binary":
        scores: np.ndarray = proba[:, classes.index(1)]
        return scores
    if classes != list(range(len(classes))):
        raise ValueError(f"the model's classes {classes} are not the codes 0..{len(classes) - 1}")
    return proba


def labels_of(predictions: np.ndarray, classes: Sequence[Any], threshold: float | None, task: str) -> list[Any]:
    """The predicted class of each row, as the data writes it: binary classes[score >= threshold] (classes is
    [negative, positive]); multiclass the most probable class (ties: the first in class order)."""
    if task == "binary":
        cut = 0.5 if threshold is None else threshold
        return [classes[1] if s >= cut else classes[0] for s in predictions]
    if task == "multiclass":
        return [classes[i] for i in np.argmax(predictions, axis=1)]
    raise ValueError("a regression model predicts values, not labels")


def point_predictions(predictions: np.ndarray, task: str) -> np.ndarray:
    """One number per row for the drift reference: the score (binary), the predicted value (regression), the
    predicted class' code (multiclass)."""
    if task == "multiclass":
        codes: np.ndarray = np.argmax(predictions, axis=1)
        return codes
    return predictions
