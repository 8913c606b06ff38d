"""The rollout step's local target: the policy's canary schedule run against a local deployment, as the Argo
Rollouts controller runs it against a Rollout: set the weight, pause, analyse (durations times the time scale),
promote or abort. The deployment is `mlops deploy`'s when one serves the model, else one started for the rollout
(with replayed traffic)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from contextlib import suppress

from steps._canary import analysis as _analysis
from steps._canary.local.client import DeployClient, reachable
from steps._canary.local.deployment import Deployment
from steps._canary.local.measurement import Measurement, analyse
from steps._canary.local.router import DEFAULT_URL, Router
from steps._canary.local.servers import Unhealthy
from steps._canary.local.traffic import Traffic, replay_rows
from steps._canary.outcome import AnalysisRecord, Outcome
from steps._core.errors import StepError, UsageError, ValidationFailed
from steps._core.policy import Policy
from steps._core.prometheus import Prometheus
from steps._core.values import duration_seconds
from steps._storage.registry import Registry


def check_deployment(model: str, deploy_url: str | None) -> None:
    """Before the rollout changes anything (the version's status): a deployment that answers at the URL but refuses
    our token, or one of another model at an explicit --deploy-url, is a usage error now, not after the version
    was moved to canary. Raises Unauthorized or UsageError."""
    url = deploy_url or DEFAULT_URL
    found = DeployClient(url).status().get("model") if reachable(url) else None
    if found is not None and found != model and deploy_url:
        raise UsageError(f"--deploy-url {deploy_url}: that local deployment serves {found!r}, not {model!r}")


def local_rollout(model: str, version: int, registry: Registry, policy: Policy, *, time_scale: float = 1.0,
                  deploy_url: str | None = None, dataset: str | None = None, prometheus_url: str | None = None,
                  say: Callable[[str], object] = print) -> Outcome:
    """Drive a local deployment through the canary schedule; returns its Outcome. With `prometheus_url`, each
    analysis runs the AnalysisTemplate's queries there (it must scrape the deployment:
    `mlops deploy --print-scrape-config`)."""
    prometheus = Prometheus(prometheus_url, timeout=_analysis.QUERY_TIMEOUT_SECONDS) if prometheus_url else None
    production = registry.production(model)
    owned: Router | None = None
    url = deploy_url or DEFAULT_URL
    found = DeployClient(url).status().get("model") if reachable(url) else None
    if found == model:
        client = DeployClient(url)
        say(f"rollout: using the local deployment at {url}")
    elif found is not None and deploy_url:
        raise UsageError(f"--deploy-url {deploy_url}: that local deployment serves {found!r}, not {model!r}")
    else:
        # Through Prometheus, the deployment must be where the scrape configuration points: the URL's own port.
        port = _loopback_port(url) if prometheus is not None and found is None else 0
        say(f"rollout: no local deployment of {model} at {url}; starting one for this rollout"
            + (f" on port {port}, where Prometheus scrapes it" if port else ""))
        owned = Router(Deployment(model, registry.location), port=port, publish_token=False).start()
        client = DeployClient(owned.url, owned.token)
    try:
        if production is None:
            try:
                client.set_stable(version)  # starts it and waits for /v1/health/ready
            except Unhealthy as err:
                return Outcome(False, f"first version failed its health check: {err}",
                               {"target": "local", "health_check": "failed"})
            return Outcome(True, "first version: healthy on the local deployment (no production to compare with)",
                           {"target": "local", "health_check": "passed"})
        if client.status().get("stable") is None:
            client.set_stable(production)
        traffic = Traffic(client.url, model, replay_rows(policy, dataset)).start() if owned or dataset else None
        try:
            if prometheus is not None:
                say(f"rollout: the canary analysis runs the AnalysisTemplate's queries on {prometheus.url} "
                    f"(rate window {_analysis.window(policy, _analysis.window_seconds(policy, time_scale))})")
            return _canary(client, model, version, policy, time_scale, say, prometheus)
        finally:
            if traffic:
                traffic.stop()
    finally:
        if owned:
            owned.close()


def _loopback_port(url: str) -> int:
    """The port of a loopback URL (a router this process can listen as), else 0 (any free port)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return 0
    try:
        return parts.port or 0
    except ValueError as err:
        raise UsageError(f"--deploy-url {url}: not a port: {err}") from err


def _canary(client: DeployClient, model: str, version: int, policy: Policy, scale: float,
            say: Callable[[str], object], prometheus: Prometheus | None = None) -> Outcome:
    analyses: list[AnalysisRecord] = []
    try:
        for number, step in enumerate(policy.canary.steps, 1):
            if step.set_weight >= 100:
                break
            try:
                client.set_canary(version, step.set_weight)
            except Unhealthy as err:
                return Outcome(False, f"canary never became healthy: {err}", {"target": "local", "analysis": analyses})
            say(f"rollout: step {number}: canary v{version} at weight {step.set_weight}")
            if step.pause:
                time.sleep(duration_seconds(step.pause) * scale)
            if step.analysis:
                passed, results, verdict = analyse(client, policy, scale, say, prometheus)
                analyses.append({"step": number, "weight": step.set_weight, "verdict": verdict,
                                 "measurements": [r.record() for r in results]})
                if not passed:
                    client.abort()
                    worst = next((r for r in results if r.phase == _analysis.FAILED), results[-1])
                    reason = _reason(policy, verdict, step.set_weight, worst)
                    if verdict == "inconclusive":
                        raise ValidationFailed(f"{model} v{version}: {reason}; the canary was aborted, the version "
                                               "stays canary (send traffic and run the rollout again)")
                    return Outcome(False, reason, {"target": "local", "analysis": analyses})
    except BaseException:
        with suppress(StepError):
            client.abort()  # whatever happened, the stable version keeps serving alone
        raise
    client.promote()
    return Outcome(True, f"local canary passed {len(analyses)} analyses; v{version} now serves all traffic",
                   {"target": "local", "analysis": analyses})


def _reason(policy: Policy, verdict: str, weight: int, m: Measurement) -> str:
    a = policy.canary.analysis
    if verdict == "inconclusive":
        if (m.metrics.get(_analysis.SHIFT_METRIC) == _analysis.INCONCLUSIVE
                and m.metrics.get(_analysis.ERROR_METRIC) != _analysis.INCONCLUSIVE):
            return (f"canary analysis inconclusive at weight {weight}: the prediction-shift guard measured nothing "
                    f"(the canary or the stable server counted no {_analysis.shift_metric(policy)}: a bundle whose "
                    "profile.json has no `prediction`; retrain it, or unset canary.analysis.prediction_shift)")
        where = ""
        if m.source.startswith("prometheus"):
            where = (f" in {m.source} (does it scrape the deployment's /metrics/canary with role=\"canary\"? "
                     "see `mlops deploy --print-scrape-config`)")
        return (f"canary analysis inconclusive at weight {weight}: fewer than {a.min_requests} requests per "
                f"window{where}")
    broken = []
    if m.metrics.get(_analysis.LATENCY_METRIC) == _analysis.FAILED:
        broken.append(f"latency p95 {m.latency_p95_ms:.1f} ms > {a.latency_p95_ms:g} ms")
    if m.metrics.get(_analysis.ERROR_METRIC) == _analysis.FAILED:
        broken.append(f"error ratio {m.error_ratio:.4f} > {a.error_ratio:g}")
    if m.metrics.get(_analysis.SHIFT_METRIC) == _analysis.FAILED:
        broken.append(f"prediction shift (PSI vs stable) {m.prediction_shift:.4f} > {a.prediction_shift:g}")
    return (f"canary analysis failed at weight {weight}: {', '.join(broken)} "
            f"({m.requests:.0f} requests, from {m.source}); rolled back, the stable version kept serving")
