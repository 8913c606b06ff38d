"""The drift check's rule: score every feature of the reference profile against the current data (binned or raw,
as the policy's method says), then decide as the policy's `drift` section says: wait, retrain or not."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from steps._core.documents import DriftResultRecord, FeatureDriftRecord
from steps._core.policy import DriftPolicy
from steps._drift import binned, columns
from steps._drift.ecdf import Ecdf, score_raw
from steps._drift.methods import RAW_METHODS, DriftMethodError, feature_method, output_method

WAITING = "waiting_for_more_data"
RETRAIN = "retrain"
NO_RETRAIN = "no_retrain"

Scored = tuple[float, float | None]  # (score, p-value or None)
T = TypeVar("T")


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

    def to_dict(self) -> FeatureDriftRecord:
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
    # The model's outputs, reported beside the features and never counted in `share`: drift_share keeps its
    # meaning (a share of the features), and retraining stays a matter of the inputs; a prediction that moves
    # while the features hold is a signal for a person (and the Pushgateway's alerts), not a retrain by itself.
    prediction: FeatureDrift | None = None
    target: FeatureDrift | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def retrain(self) -> bool:
        return self.decision == RETRAIN

    def to_dict(self) -> DriftResultRecord:
        return {
            "method": self.method, "threshold": self.threshold, "drift_share": self.drift_share,
            "min_samples": self.min_samples, "samples": self.samples, "share": self.share,
            "decision": self.decision, "reason": self.reason, "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
        }

    @property
    def drifted_outputs(self) -> list[str]:
        """`prediction` and `target` when they drifted (reported, not counted toward drift_share)."""
        return [o.name for o in (self.prediction, self.target) if o is not None and o.drifted]


def check(
    profile: Mapping[str, Any],
    policy: DriftPolicy,
    *,
    current: pd.DataFrame | None = None,
    counts: Mapping[str, np.ndarray] | None = None,
    reference: pd.DataFrame | Mapping[str, Ecdf] | None = None,
    distributions: bool = True,
    threads: int = 1,
    outputs: Mapping[str, tuple[Mapping[str, Any], np.ndarray]] | None = None,
) -> DriftResult:
    """Score every feature of the profile and apply the policy's rule.

    The current distribution is a dataset (`current`) or per-bin counts (`counts`, e.g. from
    `binned.counts_from_labels`). Binned methods take the reference from the profile; raw methods (wasserstein,
    ks) need a `current` dataset and take numeric features from `reference`: a dataset, or the Ecdfs
    `reference_ecdfs` built from it once (at training time, like the profile).
    `outputs` are the model's outputs counted over their own profiles (steps._drift.outputs: `prediction`,
    `target`), scored with the policy's binned method and threshold and reported beside the features.
    `distributions=False` skips the per-bin proportions that a report draws and a raw method does not
    need. `threads` > 1 works on that many features at once: it pays on idle cores; on the 2 shared
    vCPUs of bench/drift it did not (pandas' string hashing holds the GIL), hence the default of 1.
    """
    if (current is None) == (counts is None):
        raise ValueError("give exactly one of current (a dataset) or counts (per-bin counters)")
    features = profile["features"]
    methods = {name: feature_method(fp, policy.method) for name, fp in features.items()}
    raw = [name for name, m in methods.items() if m in RAW_METHODS]
    tasks: list[Callable[[], tuple[str, Scored | np.ndarray]]] = []
    if raw:
        if current is None or reference is None:
            have = "only bin counters" if current is None else "no reference dataset"
            raise DriftMethodError(
                f"drift.method {policy.method!r} compares raw values and needs a reference and a current "
                f"dataset (here: {have}); with bin counters use psi or jensen_shannon"
            )
        for name in raw:
            a = columns.sample(reference, name) if isinstance(reference, pd.DataFrame) else _ecdf_of(reference, name)
            tasks.append(partial(_raw_task, name, a, columns.sample(current, name), policy.method))
    vectors: dict[str, np.ndarray] = dict(counts or {})
    if current is not None:
        wanted = [name for name in features if name not in raw or distributions]
        for name in wanted:
            if name not in current.columns:
                raise ValueError(f"current data: no column {name!r} (a feature of the reference profile)")
            tasks.append(partial(_count_task, name, features[name], current[name]))
    # Raw features first: they take longest, and with threads their NumPy work can overlap the counting.
    scores: dict[str, Scored] = {}
    for name, value in _run(tasks, threads):
        if isinstance(value, np.ndarray):
            vectors[name] = value
        else:
            scores[name] = value
    binned_names = [name for name in features if name not in raw]
    for m in sorted({methods[name] for name in binned_names}):
        names = [name for name in binned_names if methods[name] == m]
        scored = binned.score_counts([features[n] for n in names], [_counts_of(vectors, n) for n in names], m)
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
            bins=tuple(binned.labels(fp)) if shown else (),
            reference=tuple(float(v) for v in binned.reference_distribution(fp)) if shown else (),
            current=tuple(float(v) for v in binned.proportions(vector)) if vector is not None and shown else (),
        ))
    samples = len(current) if current is not None else binned.total_samples(vectors)
    result = decide(out, policy, samples)
    measured = {name: score_output(name, fp, vector, policy, distributions)
                for name, (fp, vector) in (outputs or {}).items()}
    return dataclasses.replace(result, prediction=measured.get("prediction"), target=measured.get("target"))


def score_output(name: str, fp: Mapping[str, Any], vector: np.ndarray, policy: DriftPolicy,
                 distributions: bool = True) -> FeatureDrift:
    """One model output (`prediction`, `target`) against its profile entry, with the policy's binned method."""
    method = output_method(policy.method)
    [(score, p_value)] = binned.score_counts([fp], [np.asarray(vector, dtype=np.float64)], method)
    return FeatureDrift(
        name=name, type=str(fp["type"]), method=method, score=score, p_value=p_value,
        drifted=is_drifted(score, p_value, policy.threshold), count=round(float(np.sum(vector))),
        bins=tuple(binned.labels(fp)) if distributions else (),
        reference=tuple(float(v) for v in binned.reference_distribution(fp)) if distributions else (),
        current=tuple(float(v) for v in binned.proportions(vector)) if distributions else (),
    )


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


def _ecdf_of(reference: Mapping[str, Ecdf], name: str) -> Ecdf:
    if name not in reference:
        raise ValueError(f"reference: no Ecdf for feature {name!r} (reference_ecdfs builds one per numeric feature)")
    return reference[name]


def _raw_task(name: str, a: np.ndarray | Ecdf, b: np.ndarray, method: str) -> tuple[str, Scored | np.ndarray]:
    return name, score_raw(a, b, method)


def _count_task(name: str, fp: Mapping[str, Any], values: pd.Series) -> tuple[str, Scored | np.ndarray]:
    return name, binned.count_column(fp, values, name)


def _run(tasks: Sequence[Callable[[], T]], threads: int) -> list[T]:
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


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
