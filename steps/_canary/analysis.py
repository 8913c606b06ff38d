"""The canary analysis' PromQL and its verdicts, in one place (latency, error ratio, and the optional
prediction-shift guard): workflows/serving.py renders these queries and conditions into the AnalysisTemplate, and
the local rollout runs the very same queries (over a time-scaled rate window) against a Prometheus when one is
given, judging each result as Argo Rollouts does.

Each query returns nothing when the canary served fewer than `min_requests` requests in the window; a condition
needs a non-empty, non-NaN result, so an idle or starting canary is Inconclusive, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from steps._core.policy import Policy
from steps._core.prometheus import Prometheus
from steps._core.values import duration_seconds

ROLE_LABEL = "role"  # the pod label Argo Rollouts sets (stable/canary); the scrape configuration keeps it
# Prometheus needs a rate window of a few scrape intervals; a shorter analysis interval still measures 1m.
MIN_WINDOW_SECONDS = 60
# A time-scaled local window still spans a few scrapes (`mlops deploy --print-scrape-config` scrapes every 1s).
LOCAL_MIN_WINDOW_SECONDS = 5
QUERY_TIMEOUT_SECONDS = 30  # each query's, in the AnalysisTemplate and in the local rollout
LATENCY_METRIC, ERROR_METRIC = "latency-p95-ms", "error-ratio"  # the AnalysisTemplate's metric names
SHIFT_METRIC = "prediction-shift"  # the optional guard's (policy canary.analysis.prediction_shift)
PREDICTION_METRIC = "model_prediction_bin_total"  # the servers' counts of predictions per profile bin
# ... and per fixed bin of a score or a value, the same for every version (steps/_serving/outputs.py SHIFT_EDGES).
SHIFT_BIN_METRIC = "model_prediction_shift_bin_total"
# An empty bin's share is floored at this before PSI takes logarithms (steps._drift.binned.EPSILON).
PSI_EPSILON = 1e-4
SUCCESSFUL, FAILED, INCONCLUSIVE = "Successful", "Failed", "Inconclusive"


# --- the queries ---------------------------------------------------------------------------------------------


def window_seconds(policy: Policy, scale: float = 1.0) -> int:
    """The rate window in seconds: the analysis interval (each measurement covers the time since the previous
    one), at least MIN_WINDOW_SECONDS; times `scale` for a time-scaled local rollout, at least
    LOCAL_MIN_WINDOW_SECONDS. With scale 1 this is the AnalysisTemplate's window."""
    seconds = max(duration_seconds(policy.canary.analysis.interval), MIN_WINDOW_SECONDS)
    # round() first: 60 * 0.1 is 6.000000000000001, which must not become a 7 s window.
    return max(math.ceil(round(seconds * scale, 6)), LOCAL_MIN_WINDOW_SECONDS)


def window(policy: Policy, seconds: int | None = None) -> str:
    """The window as PromQL writes it ('1m', '90s'); `seconds` overrides the policy's (the local rollout)."""
    seconds = window_seconds(policy) if seconds is None else seconds
    if seconds < 1:
        raise ValueError(f"rate window: must be at least 1 second, got {seconds}")
    return f"{seconds}s" if seconds % 60 else f"{seconds // 60}m"


def canary_selector(policy: Policy) -> str:
    """The series of this model's canary pods (`role` comes from the pod label, through scrape relabelling)."""
    return f'model="{policy.model_name}", {ROLE_LABEL}="canary"'


def requests_query(policy: Policy, seconds: int | None = None) -> str:
    """The canary's requests in the window."""
    return f"sum(increase(model_requests_total{{{canary_selector(policy)}}}[{window(policy, seconds)}]))"


def traffic_condition(policy: Policy, seconds: int | None = None) -> str:
    """Non-empty only when the canary served at least `min_requests` requests in the window."""
    return f"{requests_query(policy, seconds)} >= {policy.canary.analysis.min_requests}"


def latency_query(policy: Policy, seconds: int | None = None) -> str:
    """p95 request latency in milliseconds over the canary's pods only (their histograms summed by bucket)."""
    sel, w = canary_selector(policy), window(policy, seconds)
    return (f"histogram_quantile(0.95, sum by (le) (rate(model_inference_duration_seconds_bucket{{{sel}}}[{w}])))"
            f" * 1000\nand on() ({traffic_condition(policy, seconds)})\n")


def error_ratio_query(policy: Policy, seconds: int | None = None) -> str:
    """Server errors / requests of the canary's pods: a ratio, so it does not grow with the traffic.

    A server that has not failed yet may not export the error counter: `or on() vector(0)` counts that as
    no errors rather than no data.
    """
    sel, w = canary_selector(policy), window(policy, seconds)
    return (f"(sum(increase(model_inference_errors_total{{{sel}}}[{w}])) or on() vector(0))\n"
            f"/ sum(increase(model_requests_total{{{sel}}}[{w}]))\nand on() ({traffic_condition(policy, seconds)})\n")


def stable_selector(policy: Policy) -> str:
    """The series of this model's stable pods."""
    return f'model="{policy.model_name}", {ROLE_LABEL}="stable"'


def shift_metric(policy: Policy) -> str:
    """The counter the guard compares, by the policy's task: both versions must count in the same bins. A
    multiclass model's profile bins are its classes (the same for every version); a score's or a value's profile
    bins are its own holdout's quantiles, which move with every retrain, so those count in fixed bins too."""
    return PREDICTION_METRIC if policy.model.task == "multiclass" else SHIFT_BIN_METRIC


def prediction_shift_query(policy: Policy, seconds: int | None = None) -> str:
    """The PSI between the canary's and the stable's served predictions over the window (the optional guard).

    Each side's shares per bin of shift_metric(policy) (summed over its pods and versions), a bin only one side has
    counted as 0 on the other, shares floored at PSI_EPSILON, then sum((c - s) * ln(c / s)). The bins are the
    same for both versions: a multiclass model's classes (model_prediction_bin_total, `bin` "0", ..., "other"),
    else the task's fixed bins of the score or the value (model_prediction_shift_bin_total), so a retrain on
    drifted data reads as the same traffic scored alike, not as its drift. Nothing (Inconclusive) below the
    canary's traffic condition or while either side has counted no prediction (a bundle profiled before
    predictions were), never a pass.
    """
    w = window(policy, seconds)
    canary, stable = canary_selector(policy), stable_selector(policy)
    metric = shift_metric(policy)

    def total(sel: str) -> str:
        return f"sum(increase({metric}{{{sel}}}[{w}]))"

    def shares(sel: str) -> str:
        return f"sum by (bin) (increase({metric}{{{sel}}}[{w}])) / scalar({total(sel)})"

    def floored(one: str, other: str) -> str:
        return f"clamp_min(({shares(one)} or {shares(other)} * 0), {number(PSI_EPSILON)})"

    c, s = floored(canary, stable), floored(stable, canary)
    return (f"sum(\n  ({c} - {s})\n  * ln({c} / {s})\n)\n"
            f"and on() ({traffic_condition(policy, seconds)})\n"
            f"and on() ({total(canary)} > 0) and on() ({total(stable)} > 0)\n")


# --- the verdicts --------------------------------------------------------------------------------------------


def conditions(threshold: float) -> tuple[str, str]:
    """(successCondition, failureCondition) for "result at most threshold". An empty or NaN result meets
    neither, which Argo Rollouts records as Inconclusive; `len` and `isNaN` are functions of its expr."""
    measured = "len(result) > 0 && !isNaN(result[0])"
    value = number(threshold)
    return f"{measured} && result[0] <= {value}", f"{measured} && result[0] > {value}"


def verdict(result: list[float], threshold: float) -> str:
    """What Argo Rollouts records for `conditions(threshold)` on `result`: the success condition is checked
    first, then the failure condition; neither (empty, NaN) is Inconclusive."""
    if not result or math.isnan(result[0]):
        return INCONCLUSIVE
    return SUCCESSFUL if result[0] <= threshold else FAILED


def number(value: float) -> str:
    """100.0 -> '100', 0.01 -> '0.01': plain decimals (no exponent) for expr and environment variables."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


# --- one measurement -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One measurement of both metrics: each query's first value (NaN when empty) and the phase its own
    conditions give, as the AnalysisRun would record them. The local rollout reads the same from the canary's
    /metrics (steps/_canary/local/measurement.py)."""

    latency_p95_ms: float
    error_ratio: float
    requests: float
    latency_phase: str
    error_phase: str
    window: str
    prediction_shift: float = math.nan  # the PSI of the optional guard; NaN when not measured
    shift_phase: str | None = None  # None: the guard is off (policy canary.analysis.prediction_shift unset)

    @property
    def phase(self) -> str:
        """The measurement's phase for the step's failure/inconclusive counting: any Failed metric fails it,
        then any Inconclusive one leaves it inconclusive."""
        phases = tuple(self.metrics.values())
        if FAILED in phases:
            return FAILED
        return INCONCLUSIVE if INCONCLUSIVE in phases else SUCCESSFUL

    @property
    def metrics(self) -> dict[str, str]:
        """Each AnalysisTemplate metric's own phase, by the metric's name in the template."""
        out = {LATENCY_METRIC: self.latency_phase, ERROR_METRIC: self.error_phase}
        if self.shift_phase is not None:
            out[SHIFT_METRIC] = self.shift_phase
        return out


def judge(policy: Policy, latency: list[float], errors: list[float], requests: float, window: str,
          shift: list[float] | None = None) -> Reading:
    """The Reading of the queries' results (`latency` in ms, `errors` a ratio, `shift` the PSI of the guard;
    each empty when the traffic condition held them back), judged by the template's conditions. The guard is
    judged only when the policy sets canary.analysis.prediction_shift."""
    analysis = policy.canary.analysis
    limit = analysis.prediction_shift
    return Reading(latency_p95_ms=latency[0] if latency else math.nan,
                   error_ratio=errors[0] if errors else math.nan,
                   requests=requests,
                   latency_phase=verdict(latency, analysis.latency_p95_ms),
                   error_phase=verdict(errors, analysis.error_ratio),
                   window=window,
                   prediction_shift=shift[0] if shift and limit is not None else math.nan,
                   shift_phase=None if limit is None else verdict(shift or [], limit))


def read(prometheus: Prometheus, policy: Policy, seconds: int | None = None) -> Reading:
    """One measurement through Prometheus: the AnalysisTemplate's queries (and the canary's request count, for
    the record) over `seconds` (default: the policy's window), judged by the template's conditions."""
    latency = prometheus.values(latency_query(policy, seconds))
    errors = prometheus.values(error_ratio_query(policy, seconds))
    requests = prometheus.values(requests_query(policy, seconds))
    shift = (prometheus.values(prediction_shift_query(policy, seconds))
             if policy.canary.analysis.prediction_shift is not None else None)
    return judge(policy, latency, errors, requests[0] if requests else 0.0, window(policy, seconds), shift)


def psi(canary: Mapping[str, float], stable: Mapping[str, float]) -> float:
    """prediction_shift_query's PSI over two sides' prediction counts per bin (the local rollout reads them off
    the servers' /metrics): a bin one side lacks counts 0 there; NaN when either side counted nothing."""
    c_total, s_total = sum(canary.values()), sum(stable.values())
    if not c_total > 0 or not s_total > 0:
        return math.nan
    out = 0.0
    for label in {*canary, *stable}:
        c = max(canary.get(label, 0.0) / c_total, PSI_EPSILON)
        s = max(stable.get(label, 0.0) / s_total, PSI_EPSILON)
        out += (c - s) * math.log(c / s)
    return out
