"""Drift statistics: per-feature scores of current data against the reference, and the policy's decision rule.

Binned methods (psi, jensen_shannon, chi_square) compare the reference profile's proportions with current
counts over the very same bins, `missing` and the `other` bucket of unseen categories included, whether the
counts come from a dataset (`current_counts`) or from the server's live counters (`counts_from_labels`): one
scoring function for both. Raw methods (wasserstein, ks) compare a reference sample with a current sample of
a numeric feature; they need a current dataset and the reference's values, kept by train as each numeric
feature's empirical CDF (`reference_ecdfs`, `save_ecdfs`: the bundle's reference_ecdf.npz); a categorical
feature falls back to its binned companion.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from steps._core.policy import DriftPolicy
from steps._model.profile import MISSING_LABEL, bin_labels

# An empty bin's proportion is replaced by EPSILON before PSI takes logarithms (as Evidently's psi does for
# bins empty on one side); a bin empty on both sides then contributes exactly 0.
EPSILON = 1e-4
# Jensen-Shannon distance in natural-log units, like Evidently's `jensenshannon` (scipy's default base), so
# an Evidently threshold carries over; base 2 would scale every distance by 1/sqrt(ln 2) = 1.20.
JS_BASE = math.e
# Normed Wasserstein divides by the reference's standard deviation, floored like Evidently's `wasserstein`.
MIN_STD = 0.001

BINNED_METHODS = ("psi", "jensen_shannon", "chi_square")
RAW_METHODS = ("wasserstein", "ks")
P_VALUE_METHODS = ("ks", "chi_square")
# The method a categorical feature gets when the policy's method only applies to numbers: a distance
# for a distance and a test for a test, so one threshold keeps one meaning.
CATEGORICAL_METHOD = {"psi": "psi", "jensen_shannon": "jensen_shannon", "chi_square": "chi_square",
                      "wasserstein": "jensen_shannon", "ks": "chi_square"}

WAITING = "waiting_for_more_data"
RETRAIN = "retrain"
NO_RETRAIN = "no_retrain"

# The bundle's file of reference ECDFs (numeric features), for the raw methods. NumPy arrays in a zip (np.load
# reads it with allow_pickle=False: nothing in it is code), written byte for byte the same by the same training.
ECDF_FILE = "reference_ecdf.npz"
ECDF_FORMAT = 1
# Past this many distinct values a stored ECDF is thinned (`thin`): its CDF stays within 2 / MAX_ECDF_VALUES of
# the exact one everywhere (a KS statistic moves by at most 0.0001; a normed Wasserstein distance, measured, by
# about 0.0002), and a bundle trained on millions of rows keeps at most ~320 kB per feature, not 16 bytes per row.
MAX_ECDF_VALUES = 20_000

# Up to this effective sample size the KS p-value is scipy's kstwo.sf (milliseconds); above, an approximation.
_EXACT_KS_SIZE = 1000
# Up to this many inner edges, counting `x <= edge` per edge (a few streaming passes) beats searchsorted.
_COMPARE_EDGES = 32


class DriftMethodError(ValueError):
    """The method cannot run on the data at hand (e.g. a raw-data test with only bin counters)."""


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    type: str
    method: str
    score: float  # psi, Jensen-Shannon or normed Wasserstein distance; the statistic for ks and chi_square
    p_value: float | None  # ks and chi_square only
    drifted: bool
    count: int  # current values seen for this feature, missing ones included
    bins: tuple[str, ...] = ()  # bin labels, then "missing"; empty when the distributions were not computed
    reference: tuple[float, ...] = ()  # reference proportions per bin (they sum to 1 with missing)
    current: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "method": self.method, "score": _finite(self.score),
            "p_value": None if self.p_value is None else _finite(self.p_value), "drifted": self.drifted,
            "count": self.count, "bins": list(self.bins), "reference": list(self.reference),
            "current": list(self.current),
        }


@dataclass(frozen=True)
class DriftResult:
    method: str
    threshold: float
    drift_share: float  # the policy's bound on the share of drifted features
    min_samples: int
    samples: int
    features: tuple[FeatureDrift, ...]
    share: float  # the share of features that drifted
    decision: str  # WAITING | RETRAIN | NO_RETRAIN
    reason: str

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def retrain(self) -> bool:
        return self.decision == RETRAIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "threshold": self.threshold, "drift_share": self.drift_share,
            "min_samples": self.min_samples, "samples": self.samples, "share": self.share,
            "decision": self.decision, "reason": self.reason, "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
        }


# --- the policy's rule ------------------------------------------------------------------------------------

def check(
    profile: Mapping[str, Any],
    policy: DriftPolicy,
    *,
    current: pd.DataFrame | None = None,
    counts: Mapping[str, np.ndarray] | None = None,
    reference: pd.DataFrame | Mapping[str, Ecdf] | None = None,
    distributions: bool = True,
    threads: int = 1,
) -> DriftResult:
    """Score every feature of the profile and apply the policy's rule.

    The current distribution is a dataset (`current`) or per-bin counts (`counts`, e.g. from
    `counts_from_labels`). Binned methods take the reference from the profile; raw methods (wasserstein,
    ks) need a `current` dataset and take numeric features from `reference`: a dataset, or the Ecdfs
    `reference_ecdfs` built from it once (at training time, like the profile).
    `distributions=False` skips the per-bin proportions that a report draws and a raw method does not
    need. `threads` > 1 works on that many features at once: it pays on idle cores; on the 2 shared
    vCPUs of bench/drift it did not (pandas' string hashing holds the GIL), hence the default of 1.
    """
    if (current is None) == (counts is None):
        raise ValueError("give exactly one of current (a dataset) or counts (per-bin counters)")
    features = profile["features"]
    methods = {name: feature_method(fp, policy.method) for name, fp in features.items()}
    raw = [name for name, m in methods.items() if m in RAW_METHODS]
    tasks: list[Callable[[], tuple[str, str, Any]]] = []
    if raw:
        if current is None or reference is None:
            have = "only bin counters" if current is None else "no reference dataset"
            raise DriftMethodError(
                f"drift.method {policy.method!r} compares raw values and needs a reference and a current "
                f"dataset (here: {have}); with bin counters use psi or jensen_shannon"
            )
        for name in raw:
            a = _sample(reference, name) if isinstance(reference, pd.DataFrame) else _ecdf_of(reference, name)
            tasks.append(partial(_raw_task, name, a, _sample(current, name), policy.method))
    vectors: dict[str, np.ndarray] = dict(counts or {})
    if current is not None:
        wanted = [name for name in features if name not in raw or distributions]
        for name in wanted:
            if name not in current.columns:
                raise ValueError(f"current data: no column {name!r} (a feature of the reference profile)")
            tasks.append(partial(_count_task, name, features[name], current[name]))
    # Raw features first: they take longest, and with threads their NumPy work can overlap the counting.
    scores: dict[str, tuple[float, float | None]] = {}
    for kind, name, value in _run(tasks, threads):
        (scores if kind == "score" else vectors)[name] = value
    binned = [name for name in features if name not in raw]
    for m in sorted({methods[name] for name in binned}):
        names = [name for name in binned if methods[name] == m]
        scored = score_counts([features[n] for n in names], [_counts_of(vectors, n) for n in names], m)
        scores.update(zip(names, scored, strict=True))

    out = []
    for name, fp in features.items():
        score, p_value = scores[name]
        vector = vectors.get(name)
        count = round(float(vector.sum())) if vector is not None else len(current) if current is not None else 0
        shown = distributions and vector is not None
        out.append(FeatureDrift(
            name=name, type=fp["type"], method=methods[name], score=score, p_value=p_value,
            drifted=is_drifted(score, p_value, policy.threshold), count=count,
            bins=tuple(labels(fp)) if shown else (),
            reference=tuple(float(v) for v in reference_distribution(fp)) if shown else (),
            current=tuple(float(v) for v in _proportions(vector)) if vector is not None and shown else (),
        ))
    samples = len(current) if current is not None else _samples(vectors)
    return decide(out, policy, samples)


def feature_method(feature_profile: Mapping[str, Any], method: str) -> str:
    """The method a feature is scored with: the policy's, or its binned companion for a categorical feature."""
    if method not in CATEGORICAL_METHOD:
        raise DriftMethodError(f"drift.method: unknown method {method!r} (known: {sorted(CATEGORICAL_METHOD)})")
    return CATEGORICAL_METHOD[method] if feature_profile["type"] == "categorical" else method


def _ecdf_of(reference: Mapping[str, Ecdf], name: str) -> Ecdf:
    if name not in reference:
        raise ValueError(f"reference: no Ecdf for feature {name!r} (reference_ecdfs builds one per numeric feature)")
    return reference[name]


def _raw_task(name: str, a: np.ndarray | Ecdf, b: np.ndarray, method: str) -> tuple[str, str, Any]:
    return "score", name, score_raw(a, b, method)


def _count_task(name: str, fp: Mapping[str, Any], values: pd.Series) -> tuple[str, str, Any]:
    return "counts", name, _count_column(fp, values, name)


def _run(tasks: Sequence[Callable[[], tuple[str, str, Any]]], threads: int) -> list[tuple[str, str, Any]]:
    workers = max(1, min(threads, len(tasks)))
    if workers == 1:
        return [task() for task in tasks]
    # NumPy releases the GIL in most of its loops, so features can overlap; pandas' hashing of strings cannot.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _counts_of(vectors: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in vectors:
        raise ValueError(f"counts: none for feature {name!r} (counts_from_labels gives every profile feature)")
    return np.asarray(vectors[name], dtype=np.float64)


def is_drifted(score: float, p_value: float | None, threshold: float) -> bool:
    """A distance drifts above the threshold; a test drifts when its p-value is below it (alpha).
    A NaN (no current values) is no drift."""
    if p_value is not None:
        return bool(p_value < threshold)
    return bool(score > threshold)


def decide(features: Sequence[FeatureDrift], policy: DriftPolicy, samples: int) -> DriftResult:
    """The rule of the policy's `drift` section over scored features."""
    drifted = sum(f.drifted for f in features)
    share = drifted / len(features) if features else 0.0
    if samples < policy.min_samples:
        decision, reason = WAITING, f"waiting for more data: {samples} samples < min_samples {policy.min_samples}"
    elif share > policy.drift_share:
        decision = RETRAIN
        reason = f"{drifted} of {len(features)} features drifted ({share:.3f} > drift_share {policy.drift_share})"
    else:
        decision = NO_RETRAIN
        reason = f"{drifted} of {len(features)} features drifted ({share:.3f} <= drift_share {policy.drift_share})"
    return DriftResult(
        method=policy.method, threshold=policy.threshold, drift_share=policy.drift_share,
        min_samples=policy.min_samples, samples=samples, features=tuple(features), share=share,
        decision=decision, reason=reason,
    )


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
        out[name] = _count_column(fp, frame[name], name)
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


def _count_column(fp: Mapping[str, Any], values: pd.Series, name: str) -> np.ndarray:
    if "categories" in fp:
        # Count the distinct values once (a hash pass over the column), then place the few distinct ones.
        tally = values.value_counts(dropna=False, sort=False)
        keys = np.asarray(tally.index.to_numpy(dtype=object), dtype=object)
        n_bins = len(fp["categories"])
        index = pd.Index(fp["categories"][:-1]).get_indexer(keys)
        index[index < 0] = n_bins - 1  # unseen values go to `other`, as bin_index does
        index[pd.isna(keys)] = n_bins  # the missing bucket
        return np.bincount(index, weights=tally.to_numpy(dtype=np.float64), minlength=n_bins + 1)
    numbers = _numbers(values, name)
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


def _samples(counts: Mapping[str, np.ndarray]) -> int:
    # Serving counts one bin (or `missing`) per feature per row, so every feature's total is the row count.
    return round(max((float(v.sum()) for v in counts.values()), default=0.0))


def _proportions(vector: np.ndarray) -> np.ndarray:
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
        return np.where(total > 0, matrix / total, np.nan)


def psi_rows(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Population stability index per row: sum((c - r) * ln(c / r)) over proportions, EPSILON for empty bins.

    Rows are distributions or counts (each is normalised); a row with no current values scores NaN.
    """
    r, c = _normalise(np.atleast_2d(reference)), _normalise(np.atleast_2d(current))
    r, c = np.where(r == 0, EPSILON, r), np.where(c == 0, EPSILON, c)
    return np.sum((c - r) * np.log(c / r), axis=-1)


def jensen_shannon_rows(reference: np.ndarray, current: np.ndarray, base: float = JS_BASE) -> np.ndarray:
    """Jensen-Shannon distance per row (scipy's `jensenshannon` with `base`); NaN for a row with no values."""
    r, c = _normalise(np.atleast_2d(reference)), _normalise(np.atleast_2d(current))
    m = (r + c) / 2.0
    divergence = (special.rel_entr(r, m).sum(axis=-1) + special.rel_entr(c, m).sum(axis=-1)) / 2.0
    return np.sqrt(np.maximum(divergence, 0.0) / math.log(base))


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


# --- raw scores: a reference sample against a current sample ----------------------------------------------

@dataclass(frozen=True, eq=False)
class Ecdf:
    """A numeric sample as its empirical CDF: the distinct values, ascending, and how many values are at or
    below each. Exact, and as small as the sample's distinct values (rounded amounts, counts, ratios repeat).
    The reference's can be built once (`reference_ecdfs`) and kept, like the binned profile."""

    values: np.ndarray  # float64
    at_or_below: np.ndarray  # int64, ending at the sample size
    # The whole sample's standard deviation when `values` were thinned (`thin`): the thinned steps would give
    # a slightly different one, and the normed Wasserstein divides by it.
    sample_std: float | None = None

    @property
    def size(self) -> int:
        return int(self.at_or_below[-1]) if len(self.at_or_below) else 0

    @cached_property
    def std(self) -> float:
        """The sample's standard deviation (population, like np.std); kept once computed."""
        if self.sample_std is not None:
            return self.sample_std
        if not self.size:
            return math.nan
        counts = np.diff(self.at_or_below, prepend=0)
        mean = float(np.sum(self.values * counts)) / self.size
        return math.sqrt(float(np.sum(counts * (self.values - mean) ** 2)) / self.size)


def ecdf(values: np.ndarray | pd.Series) -> Ecdf:
    """The Ecdf of a sample; missing values and infinities are left out (they have no place on the axis)."""
    x = _present(_numbers(values, str(values.name)) if isinstance(values, pd.Series) else np.asarray(values))
    if len(x) == 0:
        return Ecdf(np.zeros(0), np.zeros(0, dtype=np.int64))
    if _integral(x):
        lo, hi = int(x.min()), int(x.max())
        # Counts from 0 when they can, which spares shifting a copy of the values.
        start = 0 if lo >= 0 and hi <= len(x) else lo
        if hi - start <= len(x):
            # Integers over a modest range: counting is linear where sorting is not.
            counts = np.bincount(_offset(x, start), minlength=hi - start + 1)
            present = np.flatnonzero(counts)
            return Ecdf((present + start).astype(np.float64), np.cumsum(counts)[present])
    ordered = np.sort(x)
    last = np.flatnonzero(ordered[1:] != ordered[:-1])
    ends = np.append(last, len(ordered) - 1)
    return Ecdf(ordered[ends].astype(np.float64, copy=False), ends + 1)


def reference_ecdfs(profile: Mapping[str, Any], frame: pd.DataFrame, max_values: int | None = None
                    ) -> dict[str, Ecdf]:
    """The Ecdf of each numeric profile feature in the reference data, for the raw methods; with `max_values`,
    each one thinned to about that many values (`thin`), as train stores them."""
    out = {name: ecdf(_sample(frame, name)) for name, fp in profile["features"].items()
           if fp["type"] != "categorical"}
    for e in out.values():
        _ = e.std  # the normed Wasserstein's denominator, computed with the rest
    if max_values is not None:
        out = {name: thin(e, max_values) for name, e in out.items()}
    return out


def thin(e: Ecdf, max_values: int = MAX_ECDF_VALUES) -> Ecdf:
    """The Ecdf kept at no more than `max_values` values (every value when it has no more than that).

    Half are evenly spaced ranks, so the thinned CDF is never more than 2 / max_values below the exact one (a
    KS statistic moves by at most that); half are evenly spaced over the range of values, so a long tail keeps
    its shape (the Wasserstein distance moves the mass of each gap at most the gap's width). Each kept value
    keeps its exact count at or below it, so the sample size (a KS p-value's n) is unchanged, and the standard
    deviation is the exact sample's.
    """
    if max_values < 2:
        raise ValueError(f"max_values: must be at least 2 (got {max_values})")
    if len(e.values) <= max_values:
        return e
    half = max_values // 2
    ranks = np.ceil(np.arange(1, half + 1) * (e.size / half))
    grid = np.linspace(e.values[0], e.values[-1], half + 1)[1:]
    # The first value whose count reaches each rank, and the first value at or past each grid point; both end
    # at the last value, so the thinned sample still ends at the full size.
    keep = np.unique(np.concatenate((np.searchsorted(e.at_or_below, ranks, side="left"),
                                     np.searchsorted(e.values, grid, side="left"))))
    return Ecdf(e.values[keep], e.at_or_below[keep], sample_std=e.std)


def save_ecdfs(ecdfs: Mapping[str, Ecdf], path: Any) -> None:
    """Write Ecdfs as ECDF_FILE: every feature's values and counts end to end, with offsets and std per feature.

    A plain zip of .npy arrays (what np.savez writes), with fixed timestamps so equal Ecdfs give equal bytes.
    """
    names = list(ecdfs)
    arrays = {
        "format_version": np.array([ECDF_FORMAT], dtype=np.int64),
        "features": np.array(names, dtype=np.str_),
        "offsets": np.cumsum([0, *(len(ecdfs[n].values) for n in names)]).astype(np.int64),
        "values": np.concatenate([np.zeros(0), *(ecdfs[n].values for n in names)]).astype(np.float64),
        "at_or_below": np.concatenate([np.zeros(0, dtype=np.int64),
                                       *(ecdfs[n].at_or_below for n in names)]).astype(np.int64),
        "std": np.array([ecdfs[n].std for n in names], dtype=np.float64),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=False)


def load_ecdfs(data: bytes, where: str = ECDF_FILE) -> dict[str, Ecdf]:
    """Ecdfs from the bytes of an ECDF_FILE (never unpickling); ValueError naming `where` and the problem."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{where}: not a readable ECDF file ({err})") from err
    wanted = ("format_version", "features", "offsets", "values", "at_or_below", "std")
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise ValueError(f"{where}: arrays {missing} are missing")
    version = arrays["format_version"].tolist()
    if version != [ECDF_FORMAT]:
        raise ValueError(f"{where}: format_version {version} is not {ECDF_FORMAT}")
    names = [str(n) for n in arrays["features"].tolist()]
    offsets, values, counts, stds = arrays["offsets"], arrays["values"], arrays["at_or_below"], arrays["std"]
    if (len(offsets) != len(names) + 1 or len(stds) != len(names) or len(values) != len(counts)
            or offsets[0] != 0 or offsets[-1] != len(values) or np.any(np.diff(offsets) < 0)):
        raise ValueError(f"{where}: the offsets, values, counts and std of {len(names)} features do not line up")
    out = {}
    for i, name in enumerate(names):
        v = values[offsets[i]:offsets[i + 1]].astype(np.float64)
        c = counts[offsets[i]:offsets[i + 1]].astype(np.int64)
        if np.any(np.diff(v) <= 0) or np.any(np.diff(c) <= 0) or (len(c) and c[0] <= 0):
            raise ValueError(f"{where}: feature {name!r}: values and counts must both increase")
        out[name] = Ecdf(v, c, sample_std=float(stds[i]))
    return out


def score_raw(reference: np.ndarray | Ecdf, current: np.ndarray | Ecdf, method: str) -> tuple[float, float | None]:
    """(score, p-value or None) of two samples (or their Ecdfs) of a numeric feature, missing values left out.

    wasserstein: the first Wasserstein distance over the reference's standard deviation (floored at
    MIN_STD). ks: the two-sample Kolmogorov-Smirnov statistic and its asymptotic two-sided p-value
    (scipy's ks_2samp with method="asymp"). A sample with no values against one with values is drift.
    """
    if method not in RAW_METHODS:
        raise DriftMethodError(f"{method!r} is not a raw-data method (raw methods: {RAW_METHODS})")
    a = reference if isinstance(reference, Ecdf) else ecdf(reference)
    b = current if isinstance(current, Ecdf) else ecdf(current)
    if a.size == 0 or b.size == 0:
        same = a.size == b.size
        if method == "ks":
            return (0.0, 1.0) if same else (1.0, 0.0)
        return (0.0, None) if same else (math.inf, None)
    if method == "ks":
        statistic = ks_statistic(a, b)
        return statistic, ks_p_value(statistic, a.size, b.size)
    return wasserstein_distance(a, b) / max(a.std, MIN_STD), None


def ks_statistic(a: Ecdf, b: Ecdf) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (exactly
    as scipy's ks_2samp)."""
    gap, _ = _gap(a, b)
    return float(gap.max()) / (a.size * b.size)


def wasserstein_distance(a: Ecdf, b: Ecdf) -> float:
    """The first Wasserstein distance: the area between the two empirical CDFs (exactly as scipy's
    wasserstein_distance)."""
    n, m = a.size, b.size
    if n == m == len(a.values) == len(b.values):
        # Equal sizes and no repeated value: the area is the mean gap between the sorted samples.
        return float(np.mean(np.abs(a.values - b.values)))
    gap, widths = _gap(a, b)
    # A plain sum, not np.dot: BLAS may wake its threads for one vector product, which costs more than it saves.
    return float(np.sum(gap[:-1] * widths)) / (n * m)


def _gap(a: Ecdf, b: Ecdf) -> tuple[np.ndarray, np.ndarray]:
    """|F_a - F_b| * n * m (exact integers, in float64) at each distinct value of the pooled sample, and the
    widths of the steps between consecutive distinct values."""
    n, m = a.size, b.size
    pooled = np.concatenate((a.values, b.values))
    # Two sorted runs: a stable argsort is a merge, and it tells which sample each pooled value came from.
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    own = len(a.values)
    steps_a = np.concatenate((np.diff(a.at_or_below, prepend=0), np.zeros(len(b.values), dtype=np.int64)))
    steps_b = np.concatenate((np.zeros(own, dtype=np.int64), np.diff(b.at_or_below, prepend=0)))
    count_a = np.cumsum(steps_a[order])
    count_b = np.cumsum(steps_b[order])
    # A CDF is read after the last of equal values: keep the positions where the pooled values step up.
    widths = np.diff(values)
    up = np.append(widths > 0, True)
    gap = np.abs(count_a[up] * m - count_b[up] * n).astype(np.float64)
    return gap, widths[widths > 0]


def _offset(x: np.ndarray, start: int) -> np.ndarray:
    shifted = x if start == 0 else x - start
    return shifted.astype(np.intp, copy=False)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic, for the effective size en = n * m / (n + m).

    Up to en = 1000 it is scipy's ks_2samp(method="asymp") exactly: kstwo.sf(D, en). Above, kstwo.sf can take
    a second or more per call, so the Kolmogorov limit with Stephens' correction stands in:
    Q((sqrt(en) + 0.12 + 0.11 / sqrt(en)) * D), within 0.5% of kstwo.sf for p from 0.001 to 0.5 at en = 10^4,
    and within 0.1% at 5 x 10^5.
    """
    en = round(n * m / (n + m))
    if en <= _EXACT_KS_SIZE:
        from scipy.stats import kstwo  # slow to import, and only small samples need it

        return float(np.clip(kstwo.sf(statistic, en), 0.0, 1.0))
    root = math.sqrt(en)
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))


def _integral(x: np.ndarray) -> bool:
    if x.dtype.kind in "iub":
        return True
    head = x[:1000]  # most float columns give themselves away in their first values
    return bool(np.all(np.floor(head) == head)) and bool(np.all(np.floor(x) == x))


def _present(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values
    values = values.astype(np.float64, copy=False)
    # Like Evidently, infinities are left out with the missing values: they have no place on the axis.
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


def _sample(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise ValueError(f"no column {name!r} (a feature of the reference profile) in the data")
    return _numbers(frame[name], name)


def _numbers(values: pd.Series, name: str) -> np.ndarray:
    """A column as a NumPy array of numbers: integers as they are, anything else as float with NaN."""
    if values.dtype.kind in "iu":
        return values.to_numpy()
    if values.dtype.kind == "b":
        return values.to_numpy(dtype=np.int64)
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"feature {name!r}: expected numbers ({err})") from err


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
