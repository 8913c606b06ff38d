"""The canary analysis' PromQL and its verdicts, in one place: workflows/serving.py renders these queries and
conditions into the AnalysisTemplate, and the local rollout runs the very same queries (over a time-scaled rate
window) against a Prometheus when one is given, judging each result as Argo Rollouts does.

Each query returns nothing when the canary served fewer than `min_requests` requests in the window; a condition
needs a non-empty, non-NaN result, so an idle or starting canary is Inconclusive, never a pass.
"""

from __future__ import annotations

import math
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

    @property
    def phase(self) -> str:
        """The measurement's phase for the step's failure/inconclusive counting: any Failed metric fails it,
        then any Inconclusive one leaves it inconclusive."""
        phases = (self.latency_phase, self.error_phase)
        if FAILED in phases:
            return FAILED
        return INCONCLUSIVE if INCONCLUSIVE in phases else SUCCESSFUL

    @property
    def metrics(self) -> dict[str, str]:
        """Each AnalysisTemplate metric's own phase, by the metric's name in the template."""
        return {LATENCY_METRIC: self.latency_phase, ERROR_METRIC: self.error_phase}


def judge(policy: Policy, latency: list[float], errors: list[float], requests: float, window: str) -> Reading:
    """The Reading of the two queries' results (`latency` in ms, `errors` a ratio; each empty when the traffic
    condition held them back), judged by the template's conditions."""
    analysis = policy.canary.analysis
    return Reading(latency_p95_ms=latency[0] if latency else math.nan,
                   error_ratio=errors[0] if errors else math.nan,
                   requests=requests,
                   latency_phase=verdict(latency, analysis.latency_p95_ms),
                   error_phase=verdict(errors, analysis.error_ratio),
                   window=window)


def read(prometheus: Prometheus, policy: Policy, seconds: int | None = None) -> Reading:
    """One measurement through Prometheus: the AnalysisTemplate's two queries (and the canary's request count,
    for the record) over `seconds` (default: the policy's window), judged by the template's conditions."""
    latency = prometheus.values(latency_query(policy, seconds))
    errors = prometheus.values(error_ratio_query(policy, seconds))
    requests = prometheus.values(requests_query(policy, seconds))
    return judge(policy, latency, errors, requests[0] if requests else 0.0, window(policy, seconds))
