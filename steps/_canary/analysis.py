"""The canary analysis' PromQL and its verdicts, in one place: workflows/serving.py renders these queries and
conditions into the AnalysisTemplate, and the local rollout runs the very same queries (over a time-scaled rate
window) against a Prometheus when one is given, judging each result as Argo Rollouts does.

Each query returns nothing when the canary served fewer than `min_requests` requests in the window; a condition
needs a non-empty, non-NaN result, so an idle or starting canary is Inconclusive, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from steps._core.errors import TransientError, UsageError
from steps._core.policy import Policy, duration_seconds

ROLE_LABEL = "role"  # the pod label Argo Rollouts sets (stable/canary); the scrape configuration keeps it
# Prometheus needs a rate window of a few scrape intervals; a shorter analysis interval still measures 1m.
MIN_WINDOW_SECONDS = 60
# A time-scaled local window still spans a few scrapes (`mlops deploy --print-scrape-config` scrapes every 1s).
LOCAL_MIN_WINDOW_SECONDS = 5
QUERY_TIMEOUT_SECONDS = 30
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


# --- running them against a Prometheus -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One measurement of both metrics through Prometheus: each query's first value (NaN when empty) and the
    phase its own conditions give, as the AnalysisRun would record them."""

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


class Prometheus:
    """Instant queries through prometheus-api-client (what Argo Rollouts users query with), errors as exit codes:
    unreachable or a 5xx is transient (3), a refused query is a usage error (2)."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_SECONDS):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[float]:
        """The values of an instant vector (or scalar) query; [] when it has no series."""
        import requests
        from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
        from urllib3.util.retry import Retry

        # The client's default retries back off for ~7 s per call; the step's own retry (exit 3) is the one
        # that waits, so fail fast here.
        retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504))
        client = PrometheusConnect(url=self.url, disable_ssl=True, retry=retry, timeout=int(self.timeout))
        try:
            result: Any = client.custom_query(query=promql)
        except requests.RequestException as err:
            raise TransientError(f"prometheus {self.url}: unreachable: {err}") from err
        except PrometheusApiClientException as err:
            if "Status Code 5" in str(err):
                raise TransientError(f"prometheus {self.url}: {err}") from err
            raise UsageError(f"prometheus {self.url}: query refused: {err} (query: {promql!r})") from err
        except ValueError as err:  # a 200 whose body is not JSON: not a Prometheus at that address
            raise UsageError(f"prometheus {self.url}: the answer is not a Prometheus query result: {err}") from err
        finally:
            client.close()
        return _values(self.url, promql, result)

    def check(self) -> None:
        """Fail now (TransientError naming the URL) rather than in the middle of a canary."""
        self.query("vector(1)")

    def read(self, policy: Policy, seconds: int | None = None) -> Reading:
        """One measurement: the AnalysisTemplate's two queries (and the canary's request count, for the record)
        over `seconds` (default: the policy's window), judged by the template's conditions."""
        analysis = policy.canary.analysis
        latency = self.query(latency_query(policy, seconds))
        errors = self.query(error_ratio_query(policy, seconds))
        requests = self.query(requests_query(policy, seconds))
        return Reading(latency_p95_ms=latency[0] if latency else math.nan,
                       error_ratio=errors[0] if errors else math.nan,
                       requests=requests[0] if requests else 0.0,
                       latency_phase=verdict(latency, analysis.latency_p95_ms),
                       error_phase=verdict(errors, analysis.error_ratio),
                       window=window(policy, seconds))


def _values(url: str, promql: str, result: Any) -> list[float]:
    # custom_query returns data.result: a list of {metric, value: [t, "v"]} for a vector, [t, "v"] for a scalar.
    try:
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            return [float(result[1])]
        return [float(sample["value"][1]) for sample in result]
    except (TypeError, KeyError, IndexError, ValueError) as err:
        raise UsageError(f"prometheus {url}: not an instant vector: {str(result)[:200]} (query: {promql!r})") from err
