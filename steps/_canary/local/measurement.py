"""The local canary analysis: measurements of the canary, from its server's /metrics or through Prometheus, each a
steps._canary.analysis.Reading judged by the AnalysisTemplate's conditions, and the run of `count` of them that
passes, fails or stays inconclusive as an AnalysisRun does."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from steps._canary import analysis as _analysis
from steps._canary.local.client import DeployClient
from steps._canary.outcome import MeasurementRecord
from steps._core.policy import Policy
from steps._core.prometheus import Prometheus, parse_exposition
from steps._core.values import duration_seconds

REQUESTS, ERRORS, BUCKETS = ("model_requests_total", "model_inference_errors_total",
                             "model_inference_duration_seconds_bucket")
PREDICTIONS = _analysis.PREDICTION_METRIC  # the guard's counter by default (analysis.shift_metric picks it)
# Locally a measurement lasts interval x time scale, and longer (up to the unscaled interval) while fewer than
# min_requests arrived: scaling shortens the wait as far as traffic allows, never below the evidence needed.
_SLICE_SECONDS = 0.1
_SCRAPE_SECONDS = 1.0  # the scrape interval of `mlops deploy --print-scrape-config`


@dataclass(frozen=True)
class Snapshot:
    """A server's counters at one moment, summed over their labels."""

    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count), sorted
    predictions: tuple[tuple[str, float], ...] = ()  # the guard's counter per bin, sorted by bin


def snapshot(text: str, where: str = "metrics", predictions: str = PREDICTIONS) -> Snapshot:
    """The requests, errors, latency histogram and the bins of the counter `predictions` of a server's exposition
    (every series of each summed)."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    bins: dict[str, float] = {}
    for name, labels, value in parse_exposition(text, REQUESTS, ERRORS, BUCKETS, predictions, where=where):
        if name == REQUESTS:
            requests += value
        elif name == ERRORS:
            errors += value
        elif name == predictions:
            bins[labels.get("bin", "")] = bins.get(labels.get("bin", ""), 0.0) + value
        else:
            bound = float(labels["le"])  # float("+Inf") is inf
            buckets[bound] = buckets.get(bound, 0.0) + value
    return Snapshot(requests, errors, tuple(sorted(buckets.items())), tuple(sorted(bins.items())))


def shift(canary: tuple[Snapshot, Snapshot], stable: tuple[Snapshot, Snapshot]) -> float:
    """The prediction-shift guard's PSI over the window: each side's prediction counts between its two
    snapshots (steps._canary.analysis.psi, as its PromQL computes it); NaN when either side counted none."""
    def counted(before: Snapshot, after: Snapshot) -> dict[str, float]:
        earlier = dict(before.predictions)
        return {label: count - earlier.get(label, 0.0) for label, count in after.predictions}

    return _analysis.psi(counted(*canary), counted(*stable))


def quantile(q: float, before: Snapshot, after: Snapshot) -> float:
    """histogram_quantile over the window between two snapshots (linear within a bucket, as Prometheus does)."""
    earlier = dict(before.buckets)
    counts = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after.buckets]
    if not counts or counts[-1][1] <= 0:
        return math.nan
    rank = q * counts[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # Prometheus answers the highest finite bound
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 0.0)
        lower, below = bound, cumulative
    return lower


def reading(policy: Policy, before: Snapshot, after: Snapshot, seconds: float,
            stable: tuple[Snapshot, Snapshot] | None = None) -> _analysis.Reading:
    """What the AnalysisTemplate's queries would answer over the window between two snapshots: nothing while
    the canary served fewer than min_requests (their traffic condition), else the p95 in ms, the error ratio
    and, with the stable server's snapshots over the same window, the prediction shift; judged by the
    template's conditions."""
    requests = after.requests - before.requests
    enough = requests >= max(policy.canary.analysis.min_requests, 1)
    latency = [quantile(0.95, before, after) * 1000] if enough else []
    errors = [(after.errors - before.errors) / requests] if enough else []
    psi = shift((before, after), stable) if enough and stable is not None else math.nan
    return _analysis.judge(policy, latency, errors, requests, f"{seconds:.1f}s", [] if math.isnan(psi) else [psi])


@dataclass
class Measurement:
    phase: str  # Successful | Failed | Inconclusive
    requests: float
    latency_p95_ms: float
    error_ratio: float
    window_seconds: float
    source: str = "/metrics"  # or "prometheus <url> [<rate window>]"
    # Each AnalysisTemplate metric's own phase, {"latency-p95-ms": ..., "error-ratio": ...}.
    metrics: dict[str, str] = field(default_factory=dict)
    prediction_shift: float = math.nan  # the guard's PSI (NaN when off or not measured)

    @classmethod
    def of(cls, found: _analysis.Reading, seconds: float, source: str) -> Measurement:
        return cls(found.phase, found.requests, found.latency_p95_ms, found.error_ratio, seconds, source,
                   found.metrics, found.prediction_shift)

    def describe(self) -> str:
        guard = (f", prediction shift (PSI) {self.prediction_shift:.4f}"
                 if _analysis.SHIFT_METRIC in self.metrics else "")
        return (f"{self.phase}: {self.requests:.0f} requests, p95 {self.latency_p95_ms:.1f} ms, error ratio "
                f"{self.error_ratio:.4f}{guard} over {self.window_seconds:.1f}s from {self.source}")

    def record(self) -> MeasurementRecord:
        out: MeasurementRecord = {
            "phase": self.phase, "requests": self.requests, "latency_p95_ms": self.latency_p95_ms,
            "error_ratio": self.error_ratio, "window_seconds": self.window_seconds, "source": self.source,
            "metrics": dict(self.metrics)}
        if _analysis.SHIFT_METRIC in self.metrics:
            out["prediction_shift"] = self.prediction_shift
        return out


def measure(client: DeployClient, policy: Policy, window: float, longest: float) -> Measurement:
    """One measurement of the canary: its metrics now and after `window` seconds (longer, up to `longest`, while
    fewer than min_requests arrived)."""
    guard = policy.canary.analysis.prediction_shift is not None
    counter = _analysis.shift_metric(policy)

    def stable_now() -> Snapshot | None:  # the guard compares with the stable server over the same window
        return snapshot(client.metrics("stable"), f"{client.url}/metrics/stable", counter) if guard else None

    where = f"{client.url}/metrics/canary"
    before, stable_before = snapshot(client.metrics("canary"), where, counter), stable_now()
    started = time.monotonic()
    time.sleep(window)
    while True:
        after, stable_after = snapshot(client.metrics("canary"), where, counter), stable_now()
        elapsed = time.monotonic() - started
        if after.requests - before.requests >= policy.canary.analysis.min_requests or elapsed >= longest:
            stable = (stable_before, stable_after) if stable_before and stable_after else None
            return Measurement.of(reading(policy, before, after, elapsed, stable), elapsed, "/metrics")
        time.sleep(_SLICE_SECONDS)


def measure_prometheus(prometheus: Prometheus, policy: Policy, window: float, longest: float,
                       scale: float) -> Measurement:
    """One measurement through Prometheus, after `window` seconds: the AnalysisTemplate's queries over the
    time-scaled rate window, judged by its conditions. While that is Inconclusive (too few requests yet, or the
    last scrape not in), it is asked again over the time since the measurement began, up to `longest`."""
    rate_window = _analysis.window_seconds(policy, scale)
    started = time.monotonic()
    time.sleep(window)
    while True:
        elapsed = time.monotonic() - started
        found = _analysis.read(prometheus, policy, max(rate_window, round(elapsed)))
        if found.phase != _analysis.INCONCLUSIVE or elapsed >= longest:
            return Measurement.of(found, elapsed, f"prometheus {prometheus.url} [{found.window}]")
        time.sleep(_SCRAPE_SECONDS)


def analyse(client: DeployClient, policy: Policy, scale: float, say: Callable[[str], object],
            prometheus: Prometheus | None = None) -> tuple[bool, list[Measurement], str]:
    """One analysis run: `count` measurements (from the canary's /metrics, or through Prometheus when given);
    more than failure_limit failures fails it, more than inconclusive_limit inconclusive ones leaves it
    undecided (Argo pauses for a person). Returns (passed, measurements, 'failed' | 'inconclusive' | 'successful')."""
    a = policy.canary.analysis
    interval = duration_seconds(a.interval)
    results: list[Measurement] = []
    for _ in range(a.count):
        wait, longest = max(interval * scale, 0.2), max(interval, 1.0)
        if prometheus is not None:
            result = measure_prometheus(prometheus, policy, wait, longest, scale)
        else:
            result = measure(client, policy, wait, longest)
        say(f"rollout: canary measurement {len(results) + 1}/{a.count}: {result.describe()}")
        results.append(result)
        failed = sum(r.phase == _analysis.FAILED for r in results)
        inconclusive = sum(r.phase == _analysis.INCONCLUSIVE for r in results)
        if failed > a.failure_limit:
            return False, results, "failed"
        if inconclusive > a.inconclusive_limit:
            return False, results, "inconclusive"
    return True, results, "successful"
