"""Train time: a fitted HistGradientBoosting Pipeline read into the trees file's plain data (steps._model.trees_format).

Exports the binary classifier (logit link), the multiclass classifier (k trees per iteration, softmax) and the
regressor whose loss has the identity link (squared_error, absolute_error, quantile) or the log link (poisson,
gamma). Anything else raises ExportError saying why; the bundle is then served through skops.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from steps._model.trees_format import (
    FORMAT,
    FORMAT_VERSION,
    MAX_CATEGORY_CODE,
    TREE_KEYS,
    ExportError,
    TreesError,
    check,
)

# scikit-learn's link classes -> the trees file's link, for a regressor.
_REGRESSION_LINKS = {"IdentityLink": "identity", "LogLink": "log"}


def export_trees(pipeline: Any, task: str | None = None) -> dict[str, Any]:
    """The fitted Pipeline (ContractEncoder, HistGradientBoosting estimator) as plain data. `task`, when given,
    must be what the estimator predicts. Raises ExportError."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from steps._model.features import ContractEncoder

    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise ExportError("only a Pipeline of the contract encoder and one estimator can be exported")
    encoder, model = steps[0][1], steps[1][1]
    if not isinstance(encoder, ContractEncoder) or not isinstance(
        model, HistGradientBoostingClassifier | HistGradientBoostingRegressor
    ):
        raise ExportError(f"{type(model).__name__}: only HistGradientBoostingClassifier and "
                          "HistGradientBoostingRegressor export as trees")
    if isinstance(model, HistGradientBoostingRegressor):
        found, classes, link = "regression", None, _regression_link(model)
    else:
        found, classes, link = _classifier_head(model)
    if task is not None and task != found:
        raise ExportError(f"the model's task is {task}, but its estimator is a {found} "
                          f"{type(model).__name__}")

    names = list(encoder.feature_names_)
    inputs = _export_inputs(model, len(names))
    # scikit-learn's order: iteration by iteration, one tree per output (class) within each.
    trees = [_export_tree(p, inputs) for iteration in model._predictors for p in iteration]
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": found,
        "classes": classes,
        "link": link,
        "baseline": [float(b) for b in model._baseline_prediction.ravel()],
        "features": names,
        "inputs": inputs,
        "trees": trees,
    }
    try:
        check(doc, "export")
    except TreesError as err:
        raise ExportError(str(err)) from err
    return doc


def _classifier_head(model: Any) -> tuple[str, int, str]:
    """(task, classes, link) of a fitted classifier, whose classes must be the codes 0..k-1 the target encodes to."""
    classes = list(model.classes_)
    loss = type(model._loss).__name__
    if not all(isinstance(c, numbers.Real) and c == i for i, c in enumerate(classes)):
        raise ExportError(f"only a classifier of the class codes 0..k-1 exports (classes {[str(c) for c in classes]})")
    if len(classes) == 2:
        if model.n_trees_per_iteration_ != 1 or loss != "HalfBinomialLoss":
            raise ExportError(f"loss {loss}: only the binary log loss (logit link) exports for two classes")
        return "binary", 2, "logit"
    if model.n_trees_per_iteration_ != len(classes) or loss != "HalfMultinomialLoss":
        raise ExportError(f"loss {loss}: only the multinomial log loss (softmax) exports for {len(classes)} classes")
    return "multiclass", len(classes), "softmax"


def _regression_link(model: Any) -> str:
    loss = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
    link = type(model._loss.link).__name__
    if link not in _REGRESSION_LINKS or model.n_trees_per_iteration_ != 1:
        raise ExportError(f"loss {loss!r}: its link {link} does not compile (only the identity link of "
                          "squared_error, absolute_error and quantile, and the log link of poisson and gamma)")
    return _REGRESSION_LINKS[link]


def _export_inputs(model: Any, n_features: int) -> list[dict[str, Any]]:
    """Tree input j -> the contract column it reads, and for a categorical input the contract code of each
    of the estimator's own category codes (its internal OrdinalEncoder puts categorical columns first)."""
    mask = model.is_categorical_
    if mask is None:
        return [{"column": j} for j in range(n_features)]
    if len(mask) != n_features:
        raise ExportError(f"the estimator has {len(mask)} inputs, the contract encoder {n_features}")
    pre = model._preprocessor
    encoder = pre.named_transformers_["encoder"]
    categorical = [int(i) for i, flag in enumerate(mask) if flag]
    numeric = [int(i) for i, flag in enumerate(mask) if not flag]
    expected = {"encoder": slice(0, len(categorical)), "numerical": slice(len(categorical), n_features)}
    for name, where in expected.items():
        got = pre.output_indices_.get(name)
        if got is not None and (got.start, got.stop) != (where.start, where.stop) and got.stop > got.start:
            raise ExportError(f"the estimator's preprocessor puts {name!r} at {got}, expected {where}")
    inputs: list[dict[str, Any]] = []
    for column, categories in zip(categorical, encoder.categories_, strict=True):
        codes = []
        for value in categories:
            value = float(value)
            if math.isnan(value):  # missing values sort last; the trees route them by missing_left
                continue
            if not value.is_integer() or value < 0:
                raise ExportError(f"column {column}: category code {value!r} is not a contract code")
            codes.append(int(value))
        inputs.append({"column": column, "codes": codes})
    inputs.extend({"column": column} for column in numeric)
    return inputs


def _export_tree(predictor: Any, inputs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
    tree: dict[str, list[Any]] = {key: [] for key in TREE_KEYS}
    for node in nodes:
        leaf = bool(node["is_leaf"])
        tree["leaf"].append(leaf)
        tree["value"].append(float(node["value"]) if leaf else 0.0)
        tree["feature"].append(0 if leaf else int(node["feature_idx"]))
        tree["left"].append(0 if leaf else int(node["left"]))
        tree["right"].append(0 if leaf else int(node["right"]))
        tree["missing_left"].append(False if leaf else bool(node["missing_go_to_left"]))
        threshold = float(node["num_threshold"])
        tree["threshold"].append(0.0 if leaf or node["is_categorical"] else _threshold_out(threshold))
        if not leaf and node["is_categorical"]:
            words = bitsets[int(node["bitset_idx"])]
            tree["left_codes"].append(
                [k for k in range(MAX_CATEGORY_CODE + 1) if (int(words[k >> 5]) >> (k & 31)) & 1]
            )
        else:
            tree["left_codes"].append(None)
    return tree


def _threshold_out(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
