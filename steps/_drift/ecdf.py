"""Raw drift methods (wasserstein, ks) over empirical CDFs, and the bundle's reference ECDFs (reference_ecdf.npz).

A numeric sample is kept as its Ecdf: the distinct values and how many values are at or below each. Train
builds each numeric feature's reference Ecdf once (`reference_ecdfs`, thinned, `save_ecdfs`); the drift check
loads them (`load_ecdfs`) and compares a current dataset with them, exactly as scipy's ks_2samp and
wasserstein_distance would compare the two samples.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from steps._drift import columns
from steps._drift.methods import RAW_METHODS, DriftMethodError

# The bundle's file of reference ECDFs (numeric features), for the raw methods. NumPy arrays in a zip (np.load
# reads it with allow_pickle=False: nothing in it is code), written byte for byte the same by the same training.
ECDF_FILE = "reference_ecdf.npz"
ECDF_FORMAT = 1
# Past this many distinct values a stored ECDF is thinned (`thin`): its CDF stays within 2 / MAX_ECDF_VALUES of
# the exact one everywhere (a KS statistic moves by at most 0.0001; a normed Wasserstein distance, measured, by
# about 0.0002), and a bundle trained on millions of rows keeps at most ~320 kB per feature, not 16 bytes per row.
MAX_ECDF_VALUES = 20_000
# Normed Wasserstein divides by the reference's standard deviation, floored like Evidently's `wasserstein`.
MIN_STD = 0.001

# A numeric sample on a decimal grid (integers, or at most MAX_DECIMALS decimals) is counted, not sorted: over
# its range of grid steps when that has at most COUNT_SLOTS slots per value (plus MIN_COUNT_SLOTS), else by
# hashing. Either is a linear pass; sorting 1M values costs 3 to 10 times more (bench/drift/README.md).
MAX_DECIMALS = 6
COUNT_SLOTS = 4
MIN_COUNT_SLOTS = 1 << 16

# Up to this effective sample size the KS p-value is scipy's kstwo.sf (milliseconds); above, an approximation.
_EXACT_KS_SIZE = 1000


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
    """The Ecdf of a sample; missing values and infinities are left out (they have no place on the axis).

    Values on a decimal grid (integers, or numbers with at most MAX_DECIMALS decimals, as amounts, rounded
    measures and anything read from decimal text are) over a modest range are counted (one linear pass)
    instead of sorted; the Ecdf is the same, value for value, as sorting gives.
    """
    x = _present(columns.numbers(values, str(values.name)) if isinstance(values, pd.Series) else np.asarray(values))
    if len(x) == 0:
        return Ecdf(np.zeros(0), np.zeros(0, dtype=np.int64))
    counted = _counted(x)
    if counted is not None:
        return counted
    ordered = np.sort(x)
    last = np.flatnonzero(ordered[1:] != ordered[:-1])
    ends = np.append(last, len(ordered) - 1)
    return Ecdf(ordered[ends].astype(np.float64, copy=False), ends + 1)


def _counted(x: np.ndarray) -> Ecdf | None:
    """The Ecdf of present values counted on their decimal grid, or None when they are not on one."""
    grid = _grid(x)
    if grid is None:
        return None
    steps, scale, lo, hi = grid
    # Counts from 0 when they can, which spares shifting a copy of the values.
    start = 0 if lo >= 0 and hi <= len(x) else lo
    if hi - start <= COUNT_SLOTS * len(x) + MIN_COUNT_SLOTS:
        counts = np.bincount(_offset(steps, start), minlength=hi - start + 1)
        present = np.flatnonzero(counts)
        distinct, at_or_below = present + start, np.cumsum(counts[present])
    else:
        # A wide range: hash the grid steps (one pass), then sort only the distinct ones.
        tally = pd.Series(_offset(steps, 0), copy=False).value_counts(sort=False)
        keys = tally.index.to_numpy()
        order = np.argsort(keys)
        distinct, at_or_below = keys[order], np.cumsum(tally.to_numpy(dtype=np.int64)[order])
    values = distinct.astype(np.float64)
    if scale != 1.0:
        values /= scale  # k / 10^d: the very expression `_grid` checked every value against
    return Ecdf(values, at_or_below)


def _grid(x: np.ndarray) -> tuple[np.ndarray, float, int, int] | None:
    """(k, s, min k, max k): whole numbers k (as x's dtype, or float64) and a scale s = 10^d, the smallest
    d <= MAX_DECIMALS with k / s == x for every value (bit for bit), or None. Integers are their own grid."""
    if x.dtype.kind in "iub":
        return x, 1.0, int(x.min()), int(x.max())
    head = x[:1000]  # most columns give their grid (or the lack of one) away in their first values
    with np.errstate(over="ignore", invalid="ignore"):
        for decimals in range(MAX_DECIMALS + 1):
            scale = 10.0 ** decimals
            if np.array_equal(np.rint(head * scale) / scale if decimals else np.rint(head), head):
                break
        else:
            return None
        steps = np.multiply(x, scale) if decimals else x.copy()
        np.rint(steps, out=steps)
        exact = np.array_equal(steps / scale if decimals else steps, x)
    lo, hi = float(steps.min()), float(steps.max())
    # Below 2^52, distinct whole numbers are distinct floats and convert to integers exactly.
    if not exact or max(-lo, hi) >= 2.0 ** 52:
        return None
    return steps, scale, int(lo), int(hi)


def reference_ecdfs(profile: Mapping[str, Any], frame: pd.DataFrame, max_values: int | None = None
                    ) -> dict[str, Ecdf]:
    """The Ecdf of each numeric profile feature in the reference data, for the raw methods; with `max_values`,
    each one thinned to about that many values (`thin`), as train stores them."""
    out = {name: ecdf(columns.sample(frame, name)) for name, fp in profile["features"].items()
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
    # Capped at the size: k * (size / half) may round past it (e.g. 783617 / 10000 * 10000), naming no value.
    ranks = np.minimum(np.ceil(np.arange(1, half + 1) * (e.size / half)), e.size)
    grid = np.linspace(e.values[0], e.values[-1], half + 1)[1:]
    # The first value whose count reaches each rank, and the first value at or past each grid point; both end
    # at the last value, so the thinned sample still ends at the full size.
    keep = np.unique(np.concatenate((np.searchsorted(e.at_or_below, ranks, side="left"),
                                     np.searchsorted(e.values, grid, side="left"))))
    return Ecdf(e.values[keep], e.at_or_below[keep], sample_std=e.std)


def save_ecdfs(ecdfs: Mapping[str, Ecdf], path: Path) -> None:
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


def _present(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values
    values = values.astype(np.float64, copy=False)
    # Like Evidently, infinities are left out with the missing values: they have no place on the axis.
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]
