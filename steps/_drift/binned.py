"""Binned drift methods (psi, jensen_shannon, chi_square): the reference profile's proportions against current
counts over the very same bins, `missing` and the `other` bucket of unseen categories included.

The counts come from a dataset (`current_counts`) or from the servers' live counters, keyed by bin label
(`counts_from_labels`); one scoring function serves both, whole matrices of features at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from steps._core.categories import key as category_key
from steps._core.categories import keys as category_keys
from steps._drift import columns
from steps._drift.methods import BINNED_METHODS, DriftMethodError
from steps._model.profile import MISSING_LABEL, bin_labels

# An empty bin's proportion is replaced by EPSILON before PSI takes logarithms (as Evidently's psi does for
# bins empty on one side); a bin empty on both sides then contributes exactly 0.
EPSILON = 1e-4
# Jensen-Shannon distance in natural-log units, like Evidently's `jensenshannon` (scipy's default base), so
# an Evidently threshold carries over; base 2 would scale every distance by 1/sqrt(ln 2) = 1.20.
JS_BASE = math.e
# A text column is counted by its objects' identities (`tally`) when its first _MAX_OBJECTS values hold at most a
# quarter that many distinct objects and at most _LATE_OBJECTS others appear later; else by value.
_MAX_OBJECTS = 4096
_LATE_OBJECTS = 8
# Up to this many inner edges, counting `x <= edge` per edge (a few streaming passes) beats searchsorted.
_COMPARE_EDGES = 32


# --- distributions over the profile's bins ----------------------------------------------------------------

def labels(feature_profile: Mapping[str, Any]) -> list[str]:
    """The labels of a count vector: the profile's bins (`other` last for categories), then `missing`."""
    return [*bin_labels(dict(feature_profile)), MISSING_LABEL]


def reference_distribution(feature_profile: Mapping[str, Any]) -> np.ndarray:
    """The reference's proportions over `labels`: the bins scaled by the present share, then the missing share."""
    missing = float(feature_profile["missing"])
    return np.append(np.asarray(feature_profile["proportions"], dtype=np.float64) * (1.0 - missing), missing)


def reference_counts(feature_profile: Mapping[str, Any]) -> np.ndarray:
    """The reference's counts over `labels`, recovered from its proportions and row count."""
    rows = int(feature_profile["count"])
    missing = round(float(feature_profile["missing"]) * rows)
    bins = np.rint(np.asarray(feature_profile["proportions"], dtype=np.float64) * (rows - missing))
    return np.append(bins, missing)


def current_counts(profile: Mapping[str, Any], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each profile feature's values in `frame`, counted over `labels` exactly as the profile bins them."""
    out = {}
    for name, fp in profile["features"].items():
        if name not in frame.columns:
            raise ValueError(f"current data: no column {name!r} (a feature of the reference profile)")
        out[name] = count_column(fp, frame[name], name)
    return out


def counts_from_labels(
    profile: Mapping[str, Any], counters: Mapping[str, Mapping[str, float]]
) -> dict[str, np.ndarray]:
    """Per-bin counters keyed by feature and bin label (`model_feature_bin_total`'s labels) as count vectors.

    A feature with no counters counts zero everywhere; a feature or bin the profile does not know is an error.
    """
    features = profile["features"]
    unknown = sorted(set(counters) - set(features))
    if unknown:
        raise ValueError(f"counters: features {unknown} are not in the reference profile")
    out = {}
    for name, fp in features.items():
        names = labels(fp)
        index = {label: i for i, label in enumerate(names)}
        vector = np.zeros(len(names), dtype=np.float64)
        for label, value in counters.get(name, {}).items():
            if label not in index:
                raise ValueError(f"counters for feature {name!r}: unknown bin {label!r} (expected one of {names})")
            number = float(value)
            if not number >= 0:
                raise ValueError(f"counters for feature {name!r}, bin {label!r}: must be >= 0 (got {value!r})")
            vector[index[label]] += number
        out[name] = vector
    return out


def count_column(fp: Mapping[str, Any], values: pd.Series, name: str) -> np.ndarray:
    """One column's values counted over the feature's `labels`, exactly as the profile bins them."""
    if "categories" in fp:
        # Count the distinct values once (a hash pass over the column), then place the few distinct ones.
        distinct, counts = tally(values)
        # By key (steps._core.categories): a CSV's integer codes meet a contract's, whatever type each was read as.
        keys = category_keys(distinct)
        n_bins = len(fp["categories"])
        index = pd.Index([category_key(c) for c in fp["categories"][:-1]]).get_indexer(pd.Index(keys))
        index[index < 0] = n_bins - 1  # unseen values go to `other`, as bin_index does
        index[keys == None] = n_bins  # noqa: E711 - the missing bucket (an elementwise comparison)
        return np.bincount(index, weights=counts, minlength=n_bins + 1)
    numbers = columns.numbers(values, name)
    inner = np.asarray(fp["edges"][1:-1], dtype=np.float64)
    missing = int(np.count_nonzero(np.isnan(numbers))) if numbers.dtype.kind == "f" else 0
    present = len(numbers) - missing
    if len(inner) <= _COMPARE_EDGES:
        # Bins are right-closed: the values at or below edge k fill bins 0..k. NaN compares False.
        below = np.fromiter((np.count_nonzero(numbers <= e) for e in inner), dtype=np.int64, count=len(inner))
        bins = np.diff(np.append(below, present), prepend=0)
    else:
        kept = numbers[~np.isnan(numbers)] if missing else numbers
        bins = np.bincount(np.searchsorted(inner, kept, side="left"), minlength=len(inner) + 1)
    return np.append(bins, missing).astype(np.float64)


def tally(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column's distinct values (an object array, missing ones included) and how often each occurs (float64).
    A value may be listed more than once, as distinct objects holding equal values: their counts add up."""
    array = values.to_numpy()
    if array.dtype == object and array.flags.c_contiguous and len(array) > _MAX_OBJECTS:
        # Readers give a text column's equal values one object (Arrow's to_pandas, pandas' CSV parser), so the
        # objects' addresses, hashed as plain integers without a Python call per value, find the few distinct
        # objects about 3x faster than hashing the values; each then stands for the value it holds.
        addresses = np.frombuffer(array, dtype=np.intp)
        seen, where = np.unique(addresses[:_MAX_OBJECTS], return_index=True)
        if len(seen) <= _MAX_OBJECTS // 4:
            counted = pd.Series(addresses, copy=False).value_counts(sort=False)
            first = dict(zip(seen.tolist(), where.tolist(), strict=True))
            found = counted.index.tolist()
            late = [a for a in found if a not in first]
            if len(late) <= _LATE_OBJECTS:
                for a in late:  # an object first met past the head: one search for it
                    first[a] = int(np.argmax(addresses == a))
                return array[[first[a] for a in found]], counted.to_numpy(dtype=np.float64)
    counted = values.value_counts(dropna=False, sort=False)
    return counted.index.to_numpy(dtype=object), counted.to_numpy(dtype=np.float64)


def total_samples(counts: Mapping[str, np.ndarray]) -> int:
    """The rows behind per-feature count vectors."""
    # Serving counts one bin (or `missing`) per feature per row, so every feature's total is the row count.
    return round(max((float(v.sum()) for v in counts.values()), default=0.0))


def proportions(vector: np.ndarray) -> np.ndarray:
    """A count vector as proportions; all zeros when it counts nothing."""
    total = float(vector.sum())
    return vector / total if total > 0 else np.zeros_like(vector, dtype=np.float64)


# --- binned scores, whole matrices at once --------------------------------------------------------------

def score_counts(
    feature_profiles: Sequence[Mapping[str, Any]], counts: Sequence[np.ndarray], method: str
) -> list[tuple[float, float | None]]:
    """(score, p-value or None) per feature, from the profiles' reference and the current counts."""
    if method not in BINNED_METHODS:
        raise DriftMethodError(
            f"drift.method {method!r} compares raw values, not bin counts (binned methods: {BINNED_METHODS})"
        )
    if not feature_profiles:
        return []
    for fp, c in zip(feature_profiles, counts, strict=True):
        if len(c) != len(labels(fp)):
            raise ValueError(f"counts: {len(c)} values for {len(labels(fp))} bins ({labels(fp)})")
    if method == "chi_square":
        ref = _pad([reference_counts(fp) for fp in feature_profiles])
        stat, p = chi_square_rows(ref, _pad(counts))
        return [(float(s), float(q)) for s, q in zip(stat, p, strict=True)]
    ref = _pad([reference_distribution(fp) for fp in feature_profiles])
    cur = _pad(counts)
    score = psi_rows(ref, cur) if method == "psi" else jensen_shannon_rows(ref, cur)
    return [(float(s), None) for s in score]


def _pad(rows: Sequence[np.ndarray]) -> np.ndarray:
    # Features have different bin counts; zero padding adds nothing to any of the scores.
    matrix = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.float64)
    for i, r in enumerate(rows):
        matrix[i, : len(r)] = r
    return matrix


def _normalise(matrix: np.ndarray) -> np.ndarray:
    total = matrix.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised: np.ndarray = np.where(total > 0, matrix / total, np.nan)
    return normalised


def psi_rows(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Population stability index per row: sum((c - r) * ln(c / r)) over proportions, EPSILON for empty bins.

    Rows are distributions or counts (each is normalised); a row with no current values scores NaN.
    """
    r, c = _normalise(np.atleast_2d(reference)), _normalise(np.atleast_2d(current))
    r, c = np.where(r == 0, EPSILON, r), np.where(c == 0, EPSILON, c)
    psi: np.ndarray = np.sum((c - r) * np.log(c / r), axis=-1)
    return psi


def jensen_shannon_rows(reference: np.ndarray, current: np.ndarray, base: float = JS_BASE) -> np.ndarray:
    """Jensen-Shannon distance per row (scipy's `jensenshannon` with `base`); NaN for a row with no values."""
    r, c = _normalise(np.atleast_2d(reference)), _normalise(np.atleast_2d(current))
    m = (r + c) / 2.0
    divergence = (special.rel_entr(r, m).sum(axis=-1) + special.rel_entr(c, m).sum(axis=-1)) / 2.0
    distance: np.ndarray = np.sqrt(np.maximum(divergence, 0.0) / math.log(base))
    return distance


def chi_square_rows(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's chi-square test of homogeneity per row, a 2 x k table of counts (scipy's chi2_contingency).

    Bins empty on both sides are left out of the table; with one degree of freedom Yates' correction
    applies, as in chi2_contingency. A row with no reference or no current values gets NaN.
    """
    ref, cur = np.atleast_2d(reference).astype(np.float64), np.atleast_2d(current).astype(np.float64)
    column = ref + cur
    used = column > 0
    dof = used.sum(axis=-1) - 1
    n_ref, n_cur = ref.sum(axis=-1, keepdims=True), cur.sum(axis=-1, keepdims=True)
    total = n_ref + n_cur
    with np.errstate(invalid="ignore", divide="ignore"):
        expected_ref, expected_cur = n_ref * column / total, n_cur * column / total
        stat = np.zeros(len(ref))
        for observed, expected in ((ref, expected_ref), (cur, expected_cur)):
            diff = np.abs(observed - expected)
            diff = np.where((dof == 1)[:, None], diff - np.minimum(0.5, diff), diff)
            stat += np.where(used, diff * diff / np.where(used, expected, 1.0), 0.0).sum(axis=-1)
        p = np.where(dof > 0, special.chdtrc(np.maximum(dof, 1), stat), 1.0)
    empty = (n_ref[:, 0] == 0) | (n_cur[:, 0] == 0)
    return np.where(empty, np.nan, stat), np.where(empty, np.nan, p)
