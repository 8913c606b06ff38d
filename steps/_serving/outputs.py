"""What a served model's predictions become, per task (binary, multiclass, regression): the check of a batch, the V1
predictions and the V2 output tensors, the V2 metadata's outputs, and the bins each prediction is counted in: the
reference profile's `prediction` bins (model_prediction_bin_total) and, for a score or a value, fixed bins that are
the same for every version (model_prediction_shift_bin_total, which the canary's prediction-shift guard compares).

A binary or regression predictor returns one float per row (P(positive), the value); a multiclass one returns k
probabilities per row, in the order of the contract's classes. Plain Python (the server imports this module).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from steps._core.categories import key as category_key
from steps._serving.contract import OTHER_LABEL, ContractError

TASKS = ("binary", "multiclass", "regression")
# A multiclass row's probabilities may miss 1 by the rounding of a softmax or of a forest's average, no more.
SUM_TOLERANCE = 1e-6

Label = str | int

# The prediction-shift guard compares the canary's and the stable's predictions bin by bin, so both must count in
# the same bins: a version's own profile bins (its holdout's quantiles) move with every retrain, and after a retrain
# on drifted data they would read the drift, not a disagreement between the models. These edges depend on nothing
# but the task. A multiclass model needs none: its profile bins are its classes, the same for every version.
# Binary: evenly spaced in logit space, -9 to 9 by 0.5 (p from 1.2e-4 to 0.99988): a fraud score sits mostly below
# 0.01, where evenly spaced probabilities would put nearly every prediction in one bin. 38 bins.
_LOGITS = [k / 2 for k in range(-18, 19)]
# Regression: signed and log-spaced, 0 and +-10^(k/5) for 10^-2 to 10^8: five bins a decade (each 58% wider than the
# last) whatever the target's unit, from cents to hundreds of millions, negative values mirrored. 104 bins; a
# value beyond 10^8 shares the outermost bin. Two models of equal quality on the same traffic read a PSI of ~0.003
# in them, a model of a shuffled target ~3.5 (demand-forecast, drifted retrain).
_DECADE_STEPS, _LOWEST, _HIGHEST = 5, -2, 8
_MAGNITUDES = [10.0 ** (k / _DECADE_STEPS) for k in range(_LOWEST * _DECADE_STEPS, _HIGHEST * _DECADE_STEPS + 1)]
SHIFT_EDGES: dict[str, tuple[float, ...]] = {
    "binary": tuple(1.0 / (1.0 + math.exp(-t)) for t in _LOGITS),
    "regression": (*(-m for m in reversed(_MAGNITUDES)), 0.0, *_MAGNITUDES),
    "multiclass": (),
}


def shift_labels(task: str) -> tuple[str, ...]:
    """The labels of model_prediction_shift_bin_total's bins for a task (its bins' indices; none for multiclass)."""
    edges = SHIFT_EDGES[task]
    return tuple(str(i) for i in range(len(edges) + 1)) if edges else ()


class PredictionBins:
    """The profile's `prediction` bins: `labels` as steps._model.profile.bin_labels names them, and where a
    prediction goes. Binary and regression: a numeric profile (edges[i] < x <= edges[i+1]); multiclass: a
    categorical one over the classes plus `other`, where the predicted class (its index) is counted.
    `shift_edges`: the task's fixed edges (SHIFT_EDGES; the same rule, edges[i-1] < x <= edges[i] in bin i), whose
    bins follow the profile's in the metrics table."""

    def __init__(self, labels: Sequence[str], inner_edges: Sequence[float] = (), table: Sequence[int] = (),
                 shift_edges: Sequence[float] = ()):
        self.labels = tuple(labels)
        self.inner_edges = list(inner_edges)
        self.table = list(table)  # multiclass: class index -> bin position
        self.shift_edges = list(shift_edges)


def prediction_bins(task: str, classes: Sequence[Label], profile: Mapping[str, Any] | None) -> PredictionBins | None:
    """The bins of profile.json's `prediction` entry (None when the profile has none: bundles trained before it).
    Raises ContractError naming the entry and what is wrong with it."""
    if not isinstance(profile, Mapping) or profile.get("prediction") is None:
        return None
    entry = profile["prediction"]
    where = "profile.json prediction"
    if not isinstance(entry, Mapping):
        raise ContractError(f"{where}: must be an object (a feature profile), got {type(entry).__name__}")
    if task == "multiclass":
        categories = entry.get("categories")
        if not isinstance(categories, list) or not categories or not all(type(c) in (str, int) for c in categories):
            raise ContractError(f"{where}.categories: a multiclass model's prediction profile must list its classes "
                                f"and other, got {categories!r}")
        positions = {category_key(c): i for i, c in enumerate(categories[:-1])}
        table = [positions.get(category_key(c), len(categories) - 1) for c in classes]
        return PredictionBins([*(str(i) for i in range(len(categories) - 1)), OTHER_LABEL], table=table)
    edges = entry.get("edges")
    if (not isinstance(edges, list) or len(edges) < 2
            or not all(type(e) in (int, float) and not math.isnan(e) for e in edges)):
        raise ContractError(f"{where}.edges: a {task} model's prediction profile must hold numeric edges, "
                            f"got {edges!r}")
    return PredictionBins([str(i) for i in range(len(edges) - 1)], inner_edges=[float(e) for e in edges[1:-1]],
                          shift_edges=SHIFT_EDGES[task])


def label_datatype(labels: Sequence[Label]) -> str:
    """The V2 datatype of a label tensor: INT64 when every class is a whole number, else BYTES."""
    return "INT64" if all(type(label) is int for label in labels) else "BYTES"


class Outputs:
    """One task's answers. Subclasses: BinaryOutputs, MulticlassOutputs, RegressionOutputs."""

    task = ""

    def __init__(self, bins: PredictionBins | None):
        self.bins = bins

    def problem(self, predictions: Sequence[Any], n: int) -> str | None:
        """What is wrong with a batch's predictions for `n` rows (a broken model), or None."""
        raise NotImplementedError

    def v1(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def v2(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def metadata(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The V2 model metadata's `outputs` and `parameters`."""
        raise NotImplementedError

    def count(self, predictions: Sequence[Any], counts: Any, offset: int) -> None:
        """Add 1 per prediction to `counts[offset + its bin]` (the metrics' shared table) and to its fixed shift
        bin's, which the table keeps right after the profile's bins; nothing without bins."""
        bins = self.bins
        if bins is None:
            return
        inner, fixed, after = bins.inner_edges, bins.shift_edges, offset + len(bins.labels)
        for value in predictions:
            counts[offset + bisect_left(inner, value)] += 1
            counts[after + bisect_left(fixed, value)] += 1


class BinaryOutputs(Outputs):
    """P(positive) per row: `score`, and `label`, the positive class at or above the threshold."""

    task = "binary"

    def __init__(self, threshold: float, labels: tuple[Label, Label], bins: PredictionBins | None = None):
        super().__init__(bins)
        self.threshold, self.labels = threshold, labels
        self.datatype = label_datatype(labels)

    def problem(self, predictions: Sequence[Any], n: int) -> str | None:
        if len(predictions) != n or not all(0.0 <= s <= 1.0 for s in predictions):
            return f"the model returned {len(predictions)} scores for {n} rows, or a score outside [0, 1]"
        return None

    def v1(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        threshold, labels = self.threshold, self.labels
        return [{"score": s, "label": labels[s >= threshold]} for s in predictions]

    def v2(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        threshold, labels = self.threshold, self.labels
        n = len(predictions)
        return [{"name": "score", "datatype": "FP64", "shape": [n], "data": predictions},
                {"name": "label", "datatype": self.datatype, "shape": [n],
                 "data": [labels[s >= threshold] for s in predictions]}]

    def metadata(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # The score is the positive class' probability; a row is labelled positive at or above the threshold.
        return ([{"name": "score", "datatype": "FP64", "shape": [-1]},
                 {"name": "label", "datatype": self.datatype, "shape": [-1]}],
                {"task": self.task, "threshold": self.threshold, "classes": list(self.labels),
                 "positive_label": self.labels[1]})


class RegressionOutputs(Outputs):
    """The predicted value per row: `value`."""

    task = "regression"

    def problem(self, predictions: Sequence[Any], n: int) -> str | None:
        if len(predictions) != n or not all(type(v) is float and math.isfinite(v) for v in predictions):
            return f"the model returned {len(predictions)} values for {n} rows, or a value that is not a finite number"
        return None

    def v1(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"value": v} for v in predictions]

    def v2(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"name": "value", "datatype": "FP64", "shape": [len(predictions)], "data": predictions}]

    def metadata(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}], {"task": self.task}


class MulticlassOutputs(Outputs):
    """k probabilities per row, in class order: `label` (the most probable class; a tie goes to the first, as
    numpy's argmax) and `probabilities` ({class: p} in V1; one [n, k] tensor in V2, classes in the metadata)."""

    task = "multiclass"

    def __init__(self, classes: Sequence[Label], bins: PredictionBins | None = None):
        super().__init__(bins)
        self.classes = tuple(classes)
        self.keys = [str(c) for c in self.classes]  # JSON object keys are text: the class 3 is "3"
        self.datatype = label_datatype(self.classes)
        self._columns = range(len(self.classes))

    def problem(self, predictions: Sequence[Any], n: int) -> str | None:
        k = len(self.classes)
        if len(predictions) != n:
            return f"the model returned {len(predictions)} rows of probabilities for {n} rows"
        for i, row in enumerate(predictions):
            if len(row) != k or not all(0.0 <= p <= 1.0 for p in row) or abs(math.fsum(row) - 1.0) > SUM_TOLERANCE:
                return (f"the model's probabilities for row {i} are not {k} numbers in [0, 1] summing to 1 "
                        f"(got {len(row)} summing to {math.fsum(row) if len(row) else 0.0!r})")
        return None

    def best(self, predictions: Sequence[Any]) -> list[int]:
        columns = self._columns
        return [max(columns, key=row.__getitem__) for row in predictions]

    def v1(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        classes, keys = self.classes, self.keys
        return [{"label": classes[j], "probabilities": dict(zip(keys, row, strict=True))}
                for j, row in zip(self.best(predictions), predictions, strict=True)]

    def v2(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        classes = self.classes
        n = len(predictions)
        # Open Inference Protocol JSON: a tensor's data is flat, in row-major order.
        return [{"name": "label", "datatype": self.datatype, "shape": [n],
                 "data": [classes[j] for j in self.best(predictions)]},
                {"name": "probabilities", "datatype": "FP64", "shape": [n, len(classes)],
                 "data": [p for row in predictions for p in row]}]

    def metadata(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # probabilities' columns are the classes, in the order of `classes`.
        return ([{"name": "label", "datatype": self.datatype, "shape": [-1]},
                 {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.classes)]}],
                {"task": self.task, "classes": list(self.classes)})

    def count(self, predictions: Sequence[Any], counts: Any, offset: int) -> None:
        bins = self.bins
        if bins is None:
            return
        table = bins.table
        for j in self.best(predictions):
            counts[offset + table[j]] += 1
