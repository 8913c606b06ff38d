"""The reference profile for drift: each feature's training distribution as bins and proportions.

Numbers get ~10 quantile bins; bin i holds edges[i] < x <= edges[i+1], the first edge is -inf and the last
+inf, so every live value lands in a bin. Categories keep the contract's list plus a last `other` bucket
for unseen values. `proportions` are shares of the non-missing values (they sum to 1 when any value is
present), `missing` is the share of missing values, `count` the number of rows seen. `bin_index` and
`bin_counts` map live values onto the same bins, vectorised, so serving can count them and drift compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from steps._core.categories import key as category_key
from steps._core.categories import keys as category_keys
from steps._core.policy import Feature

MISSING = -1  # bin_index of a missing value
MISSING_LABEL = "missing"
OTHER_LABEL = "other"


def build_profile(frame: pd.DataFrame, features: Iterable[Feature], bins: int = 10) -> dict[str, Any]:
    """profile.json's content for the contract's features of `frame`."""
    if bins < 1:
        raise ValueError(f"bins: must be at least 1 (got {bins})")
    return {
        "features": {f.name: feature_profile(frame[f.name], f, bins) for f in features},
        "rows": len(frame),
    }


def prediction_profile(points: np.ndarray, task: str, classes: Sequence[Any] | None,
                       bins: int = 10) -> dict[str, Any]:
    """The reference distribution of a model's predictions (profile.json `prediction`), in the shape of a feature's
    profile so that serving counts live predictions into the same bins: the score or the predicted value in
    quantile bins; for multiclass the predicted class (`points` are class codes) over the classes."""
    if task == "multiclass":
        labels = [str(c) for c in (classes or [])]
        spec = Feature(name="prediction", type="categorical", categories=tuple(labels))
        return feature_profile(pd.Series(np.asarray(labels, dtype=object)[np.asarray(points, dtype=np.intp)],
                                         dtype=object), spec, bins)
    return value_profile(points, bins)


def value_profile(values: np.ndarray | pd.Series, bins: int = 10) -> dict[str, Any]:
    """A numeric profile (quantile bins) of any values: predictions, or a regression target."""
    return feature_profile(pd.Series(np.asarray(values, dtype=np.float64)), Feature(name="value", type="numeric"),
                           bins)


def feature_profile(values: pd.Series, feature: Feature, bins: int = 10) -> dict[str, Any]:
    count = len(values)
    profile: dict[str, Any] = {"type": feature.type}
    binned: pd.Series | np.ndarray = values
    if feature.type == "categorical":
        profile["categories"] = [*feature.categories, OTHER_LABEL]
        if isinstance(values.dtype, pd.CategoricalDtype):
            missing_count = int((values.cat.codes.to_numpy() < 0).sum())
        else:
            missing_count = int(pd.isna(values.to_numpy(dtype=object)).sum())
    else:
        numbers = _as_float(values)
        missing = np.isnan(numbers)
        missing_count = int(missing.sum())
        present = numbers[~missing]
        # Quantiles of the training values; ties (integers, zero-heavy counts) collapse, hence the dedupe.
        quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if len(present) else []
        profile["edges"] = [float("-inf"), *(float(e) for e in np.unique(quantiles)), float("inf")]
        binned = numbers
    indices = bin_index(profile, binned)
    n_bins = len(profile["categories"]) if feature.type == "categorical" else len(profile["edges"]) - 1
    counts = np.bincount(indices[indices != MISSING], minlength=n_bins)
    present_n = int(counts.sum())
    profile["proportions"] = [float(c / present_n) if present_n else 0.0 for c in counts]
    profile["missing"] = float(missing_count / count) if count else 0.0
    profile["count"] = int(count)
    return profile


def bin_index(feature_profile: dict[str, Any], values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    """The bin of each value (an index into the profile's proportions), MISSING (-1) for a missing value.

    Categorical: the index of the category in the profile's list; an unseen value gets the last index,
    the `other` bucket. Numeric: edges[i] < x <= edges[i+1]; a value that is not a number raises ValueError.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype) and (
            "categories" in feature_profile):
        # Each category binned once; the missing values' code -1 picks the MISSING at the end.
        table = np.append(bin_index(feature_profile, values.cat.categories.to_numpy(dtype=object)), MISSING)
        by_code: np.ndarray = table[values.cat.codes.to_numpy()]
        return by_code
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and "edges" in feature_profile:
        inner = np.asarray(feature_profile["edges"][1:-1], dtype=np.float64)
        binned: np.ndarray = np.searchsorted(inner, values, side="left").astype(np.int64)
        binned[np.isnan(values)] = MISSING
        return binned
    array = (
        values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    )
    missing = pd.isna(array)
    if "categories" in feature_profile:
        categories = feature_profile["categories"]
        # Only the contract's categories are looked up, by their keys (steps._core.categories: the integer 1, the
        # float 1.0 and the text "1" are one value): a live value spelled "other" is unseen too.
        value_keys = category_keys(array)
        missing = value_keys == None  # noqa: E711 - an elementwise comparison
        index = pd.Index([category_key(c) for c in categories[:-1]]).get_indexer(pd.Index(value_keys))
        index[index < 0] = len(categories) - 1
    else:
        numbers = _as_float(pd.Series(array, dtype=object))
        inner = np.asarray(feature_profile["edges"][1:-1], dtype=np.float64)
        index = np.searchsorted(inner, numbers, side="left")
    out: np.ndarray = index.astype(np.int64)
    out[missing] = MISSING
    return out


def bin_labels(feature_profile: dict[str, Any]) -> list[str]:
    """Labels for the bins, aligned with `proportions`: "0", "1", ...; `other` for the unseen bucket."""
    if "categories" in feature_profile:
        n = len(feature_profile["categories"])
        return [str(i) for i in range(n - 1)] + [OTHER_LABEL]
    return [str(i) for i in range(len(feature_profile["edges"]) - 1)]


def bin_counts(
    feature_profile: dict[str, Any], values: Sequence[Any] | np.ndarray | pd.Series
) -> dict[str, int]:
    """How many values fall in each bin, by label (`bin_labels`, plus "missing"); empty bins are left out."""
    index = bin_index(feature_profile, values)
    labels = bin_labels(feature_profile)
    counts = np.bincount(index[index != MISSING], minlength=len(labels))
    out = {labels[i]: int(c) for i, c in enumerate(counts) if c}
    n_missing = int((index == MISSING).sum())
    if n_missing:
        out[MISSING_LABEL] = n_missing
    return out


def _as_float(values: pd.Series) -> np.ndarray:
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{values.name or 'values'}: expected numbers ({err})") from err
