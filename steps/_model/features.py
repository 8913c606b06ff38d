"""The model's preprocessing, built from the feature contract: one transform for train, gate and serve.

`build_pipeline` returns a scikit-learn Pipeline (contract encoder, estimator-specific encoding, estimator)
that takes a DataFrame with the contract's columns, so the saved model.skops carries its own preprocessing
and serving cannot skew from training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from steps._core.categories import CategoryError, lookup
from steps._core.categories import key as category_key
from steps._core.categories import keys as category_keys
from steps._core.errors import UsageError
from steps._core.policy import Feature
from steps._model.contract import feature_to_dict

ESTIMATOR_CLASSES: dict[str, type[BaseEstimator]] = {
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
}
# A regression model's estimators (logistic_regression classifies only; ridge regresses only).
REGRESSOR_CLASSES: dict[str, type[BaseEstimator]] = {
    "hist_gradient_boosting": HistGradientBoostingRegressor,
    "random_forest": RandomForestRegressor,
    "ridge": Ridge,
}


def estimator_class(estimator: str, task: str = "binary") -> type[BaseEstimator]:
    """The scikit-learn class of the policy's `model.estimator` for `model.task`. Raises UsageError."""
    table = REGRESSOR_CLASSES if task == "regression" else ESTIMATOR_CLASSES
    if estimator not in table:
        raise UsageError(f"model.estimator: a {task} model is fit by one of {', '.join(table)} (got {estimator!r})")
    return table[estimator]

# Parameters derived from the contract or the policy's seed; a policy that sets them would silently fight us.
_RESERVED_PARAMS = {
    "categorical_features": "set from the contract's categorical features",
    "random_state": "set from model.seed",
}


# Up to this many rows `transform` converts the frame to one object array (a single-row request is fastest so);
# past it, column by column from each column's dtype (no Python object per value): the same codes either way.
ROW_PATH_ROWS = 64


def code_count(f: Feature) -> int:
    """How many codes ContractEncoder gives a categorical feature (`other` included); 0 for numbers."""
    if f.type != "categorical":
        return 0
    return len(f.categories) + (1 if f.unknown == "other" else 0)


def model_input(frame: pd.DataFrame, features: Iterable[Feature], where: str = "input") -> pd.DataFrame:
    """The contract's columns in contract order; a missing column is an error naming it and `where`."""
    names = [f.name for f in features]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise UsageError(f"{where}: columns {missing} required by the feature contract are missing")
    return frame[names]


def target_vector(values: pd.Series, positive_label: Any) -> np.ndarray:  # binary; any task: steps._model.task
    """1 where the target is the policy's positive label (compared by key: a CSV's 1 is the label 1 or "1"), else 0."""
    vector: np.ndarray = (category_keys(values) == category_key(positive_label)).astype(np.int64)
    return vector


class ContractEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """Contract columns (a DataFrame) -> one float64 matrix, one column per feature in contract order.

    Numbers become floats, missing -> NaN. A category becomes its index in the contract's list; an unseen
    value becomes the extra code len(categories) when the contract says `unknown: other`, else NaN (serving
    rejects it before it gets here); missing -> NaN. Nothing is learned from the data: the contract fixes
    every code, so the transform is the same in training and serving.
    """

    def __init__(self, features: Sequence[Mapping[str, Any]] = ()):
        self.features = features

    def fit(self, X: pd.DataFrame, y: Any = None) -> ContractEncoder:
        if not self.features:
            raise ValueError("ContractEncoder: `features` must list at least one contract feature")
        names: list[str] = []
        codes: list[dict[str, int] | None] = []  # None for a numeric feature
        other_codes: list[float] = []
        for f in self.features:
            if f["type"] == "categorical":
                if not f.get("categories"):
                    raise ValueError(f"feature {f['name']!r}: categorical without categories")
                codes.append(lookup(f["categories"]))
                other_codes.append(float(len(f["categories"])) if f.get("unknown") == "other" else np.nan)
            else:
                codes.append(None)
                other_codes.append(np.nan)
            names.append(str(f["name"]))
        self.feature_names_ = names
        self.codes_ = codes
        self.other_codes_ = other_codes
        self.n_features_in_ = len(names)
        self._check_columns(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        self._check_columns(X)
        if len(X) > ROW_PATH_ROWS:
            out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
            for j, name in enumerate(self.feature_names_):
                out[:, j] = self.encode_column(j, X[name])
            return out
        # One conversion to a plain object array: per-column pandas access took a third of the time of a
        # single-row prediction (the requests serving sees). A copy, because missing values are overwritten.
        values = X[self.feature_names_].to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = np.nan
        out = np.empty(values.shape, dtype=np.float64)
        for j in range(len(self.feature_names_)):
            out[:, j] = self._encode_objects(j, values[:, j])
        return out

    def encode_column(self, j: int, column: pd.Series) -> np.ndarray:
        """The codes of the j-th feature's column (a Series of any length): the same numbers `transform` gives,
        read from the column's own dtype (numbers, or pandas' `category`: each category keyed once)."""
        check_is_fitted(self, "feature_names_")
        codes = self.codes_[j]
        if codes is None and pd.api.types.is_numeric_dtype(column.dtype) and column.dtype.kind != "c":
            numbers: np.ndarray = column.to_numpy(dtype=np.float64, na_value=np.nan)
            return numbers
        if codes is not None and isinstance(column.dtype, pd.CategoricalDtype):
            # One code per category, and NaN at the end for the missing values' position -1.
            table = np.append(self._encode_objects(j, column.cat.categories.to_numpy(dtype=object)), np.nan)
            coded: np.ndarray = table[column.cat.codes.to_numpy()]
            return coded
        values = column.to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = np.nan
        return self._encode_objects(j, values)

    def _encode_objects(self, j: int, values: np.ndarray) -> np.ndarray:
        """The codes of the j-th feature's values (an object array, missing values as NaN)."""
        name, codes, other = self.feature_names_[j], self.codes_[j], self.other_codes_[j]
        if codes is None:
            try:
                numbers: np.ndarray = values.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"feature {name!r}: expected numbers ({err})") from err
            return numbers
        try:
            column = category_keys(values)
        except CategoryError as err:  # e.g. a list
            raise ValueError(f"feature {name!r}: expected a category ({err})") from err
        positions = pd.Index(list(codes)).get_indexer(pd.Index(column))  # -1: unseen, or missing
        coded: np.ndarray = np.where(positions >= 0, np.asarray(list(codes.values()), dtype=np.float64)[positions],
                                     other)
        coded[column == None] = np.nan  # noqa: E711 - an elementwise comparison
        return coded

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)

    def _check_columns(self, X: Any) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"ContractEncoder expects a pandas DataFrame with the contract's columns, "
                f"got {type(X).__name__}"
            )
        missing = [n for n in self.feature_names_ if n not in X.columns]
        if missing:
            raise ValueError(f"columns {missing} required by the feature contract are missing")


def check_params(estimator: str, params: Mapping[str, Any], task: str = "binary") -> None:
    """model.params against the estimator's own rules (names, types, ranges), before any data is read: a typo is
    a UsageError naming the key and the rule now, not a failed fit after validation. Raises UsageError."""
    from sklearn.utils._param_validation import InvalidParameterError

    cls = estimator_class(estimator, task)
    allowed = set(cls().get_params())
    for key in params:
        if key in _RESERVED_PARAMS:
            raise UsageError(f"model.params.{key}: {_RESERVED_PARAMS[key]}; remove it from the policy")
        if key not in allowed:
            raise UsageError(
                f"model.params.{key}: not a parameter of {cls.__name__} "
                f"(allowed: {', '.join(sorted(allowed - set(_RESERVED_PARAMS)))})"
            )
    try:
        cls(**params)._validate_params()  # scikit-learn's declared constraints, as fit would check them
    except InvalidParameterError as err:
        raise UsageError(f"model.params: {err}") from err


def build_pipeline(
    features: Sequence[Feature], estimator: str, params: Mapping[str, Any], seed: int, task: str = "binary"
) -> Pipeline:
    """The unfitted Pipeline for `estimator`: contract encoding, what that estimator needs, the estimator.

    hist_gradient_boosting takes the codes as they are (categorical columns flagged, NaN handled natively);
    the others (logistic_regression, ridge, random_forest) get median imputation with missing indicators and
    one-hot categories (an unseen or missing category is all zeros), plus scaling for the linear models.
    """
    cls = estimator_class(estimator, task)
    check_params(estimator, params, task)
    encoder = ContractEncoder([feature_to_dict(f) for f in features])
    codes = [code_count(f) for f in features]
    numeric = [i for i, n in enumerate(codes) if n == 0]
    categorical = [i for i, n in enumerate(codes) if n > 0]

    if estimator == "hist_gradient_boosting":
        max_bins = params.get("max_bins", 255)
        max_bins = max_bins if isinstance(max_bins, int) else 255  # a bad value is sklearn's to reject at fit
        # HGB refuses categorical columns with more codes than bins; those stay ordinal numbers.
        mask = [0 < n <= max_bins for n in codes]
        model = cls(**params, categorical_features=mask if any(mask) else None, random_state=seed)
        return Pipeline([("contract", encoder), ("model", model)])

    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if estimator in ("logistic_regression", "ridge"):
        numeric_steps.append(("scale", StandardScaler()))
    dense = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            (
                "categorical",
                OneHotEncoder(
                    categories=[np.arange(codes[i], dtype=np.float64) for i in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                categorical,
            ),
        ],
        remainder="drop",
    )
    model = cls(**params, random_state=seed)
    return Pipeline([("contract", encoder), ("encode", dense), ("model", model)])
