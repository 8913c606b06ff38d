"""How a rollout ended, whichever target ran it (Argo Rollouts on Kubernetes, or the local deployment), and the
evidence the rollout step records with it in the registry's history (`details` of the production or rejected
transition; docs/steps.md describes the fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict

from steps._core.errors import ValidationFailed


class RolloutTimeout(ValidationFailed):
    """No verdict in time: the version stays canary (the Rollout may still finish); exit 1."""


# --- the local target --------------------------------------------------------------------------------------


class MeasurementRecord(TypedDict):
    """One measurement of the canary (steps/_canary/local/measurement.py)."""

    phase: str  # Successful | Failed | Inconclusive
    requests: float
    latency_p95_ms: float  # NaN when not measured (too few requests)
    error_ratio: float
    window_seconds: float
    source: str  # "/metrics" or "prometheus <url> [<rate window>]"
    metrics: dict[str, str]  # each AnalysisTemplate metric's phase: {"latency-p95-ms": ..., "error-ratio": ...}
    prediction_shift: NotRequired[float]  # the guard's PSI, when the policy sets canary.analysis.prediction_shift


class AnalysisRecord(TypedDict):
    """One canary step's analysis."""

    step: int
    weight: int
    verdict: str  # successful | failed | inconclusive
    measurements: list[MeasurementRecord]


class LocalDetails(TypedDict):
    target: Literal["local"]
    health_check: NotRequired[str]  # passed | failed: a first version (no canary steps)
    analysis: NotRequired[list[AnalysisRecord]]


# --- the Kubernetes target ---------------------------------------------------------------------------------


class MetricResultRecord(TypedDict):
    """An AnalysisRun metric that did not succeed, with its last measurement."""

    name: str | None
    phase: str | None
    message: str | None
    value: str | None
    failed: int
    inconclusive: int


class AnalysisRunRecord(TypedDict):
    """The newest unsuccessful AnalysisRun of the Rollout."""

    run: str | None
    phase: str | None
    message: str | None
    metrics: list[MetricResultRecord]


class KubernetesDetails(TypedDict):
    target: Literal["kubernetes"]
    rollout: str
    namespace: str
    phase: NotRequired[str | None]
    abort: NotRequired[bool]
    message: NotRequired[str | None]
    analysis: NotRequired[AnalysisRunRecord | None]


RolloutDetails = LocalDetails | KubernetesDetails


@dataclass
class Outcome:
    """`promoted` or not, the reason a person reads in the registry's history, and the evidence (`details`;
    None when the rollout had nothing to do)."""

    promoted: bool
    reason: str
    details: RolloutDetails | None = field(default=None)
