"""Rollout step: deploy a registered version as a canary and record the outcome in the registry.

    python -m steps.rollout --model M --version V [--registry LOC] [--policy FILE] --target kubernetes|local
                            [--namespace NS] [--timeout S] [--time-scale F] [--deploy-url URL] [--dataset URI]
                            [--prometheus URL] [--outcome-out FILE]

The version moves to `canary` first. Then:
- kubernetes: the model's Argo Rollout `<model>-server` gets the pod-template annotation `model-version: "<V>"`
  (its init container fetches that version), and the step watches it until Healthy (the canary steps and
  analyses passed), Degraded or aborted, or the timeout. Healthy: canary -> production (the previous production
  is archived). Degraded/aborted: -> rejected, with the failed analysis metrics in the history.
- local: the same schedule and thresholds against a local deployment (`mlops deploy`, steps/_canary/local/),
  the analysis computed from the servers' /metrics, or, with `--prometheus URL` or PROMETHEUS_URL, through the
  AnalysisTemplate's own queries and conditions on that Prometheus (over a time-scaled rate window; it must scrape
  the deployment: `mlops deploy --print-scrape-config`); without a running deployment the step starts one for its
  duration and replays traffic from a dataset. With no production version yet, the first version is promoted
  after a health check, as Argo Rollouts does with a first revision (no canary steps).

Exit 0 promoted; 1 rejected (recorded), or no verdict before the timeout (the version stays `canary`);
2 bad usage; 3 transient (Kubernetes API, Prometheus or storage unreachable).
`--outcome-out FILE` gets one word for the Workflow's outputs: `promoted`, `aborted` (the canary was rejected)
or `timed-out` (no verdict: the version stays `canary`); nothing on exit 2 or 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from steps._canary import argo
from steps._canary.outcome import Outcome, RolloutTimeout
from steps._core.documents import VersionRecord
from steps._core.errors import UsageError, run
from steps._core.files import write_text
from steps._core.policy import Policy, load_policy, policy_path
from steps._storage.registry import Registry, check_model

TARGETS = ("kubernetes", "local")
# The words --outcome-out writes (the training template's `outcome` output and the run's result label read them).
PROMOTED, ABORTED, TIMED_OUT = "promoted", "aborted", "timed-out"


def rollout(model: str, version: int, target: str, registry: Registry, policy: Policy, *,
            namespace: str | None = None, timeout: float | None = None, time_scale: float = 1.0,
            deploy_url: str | None = None, dataset: str | None = None, poll: float | None = None,
            prometheus: str | None = None) -> Outcome:
    """Move `version` to canary, deploy it on `target`, record production or rejected. Returns the outcome.
    `prometheus` (local only): run the canary analysis through the AnalysisTemplate's queries there."""
    check_model(model)
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: must be one of {', '.join(TARGETS)}")
    if prometheus and target != "local":
        raise UsageError(f"--prometheus {prometheus}: only for --target local; on Kubernetes the AnalysisTemplate "
                         "queries the policy's canary.analysis.prometheus_url")
    if policy.model_name != model:
        raise UsageError(f"--policy is for model {policy.model_name!r}, not --model {model!r}")
    record = registry.get(model, version)
    version = int(record["version"])
    if record["status"] == "production":
        return Outcome(True, f"{model} v{version} is already production")
    client = None
    if target == "kubernetes":
        from steps._canary.kubernetes import KubeClient

        client = KubeClient.from_environment(namespace)  # before any change: bad configuration changes nothing
    if prometheus:
        from steps._canary.analysis import QUERY_TIMEOUT_SECONDS
        from steps._core.prometheus import Prometheus

        # Unreachable: exit 3 before the version or the deployment changes.
        Prometheus(prometheus, timeout=QUERY_TIMEOUT_SECONDS).check()
    if target == "local":
        from steps._canary.local.controller import check_deployment

        check_deployment(model, deploy_url)  # a deployment that refuses our token: exit 2 before any change
    registry.promote(model, version, "canary", reason=f"rollout started ({target})")
    if client is not None:
        outcome = argo.watch(client, model, version, timeout or argo.default_timeout(policy),
                             poll=argo.POLL_SECONDS if poll is None else poll)
    else:
        from steps._canary.local.controller import local_rollout

        outcome = local_rollout(model, version, registry, policy, time_scale=time_scale, deploy_url=deploy_url,
                                dataset=dataset, prometheus_url=prometheus)
    record_outcome(registry, model, version, outcome)
    return outcome


def record_outcome(registry: Registry, model: str, version: int, outcome: Outcome) -> VersionRecord:
    to = "production" if outcome.promoted else "rejected"
    details = dict(outcome.details) if outcome.details else None
    return registry.transition(model, version, to, reason=outcome.reason, details=details)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.rollout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, help="the registry version (a number, or latest/canary)")
    p.add_argument("--registry", default=None, help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--policy", default=None, help="the model's policy (default gates/<model>.yaml)")
    p.add_argument("--target", required=True, choices=TARGETS)
    p.add_argument("--namespace", default=None, help="kubernetes: the Rollout's namespace (default: the pod's)")
    p.add_argument("--timeout", type=float, default=None,
                   help="kubernetes: seconds to wait for a verdict (default: the schedule's pauses and analyses "
                        "+ 30 min); locally the scaled schedule bounds the wait")
    p.add_argument("--time-scale", type=float, default=None,
                   help="local: multiply the schedule's pauses and intervals by F (default $MLOPS_ROLLOUT_TIME_SCALE "
                        "or 1)")
    p.add_argument("--deploy-url", default=None,
                   help="local: the `mlops deploy` address (default $MLOPS_DEPLOY_URL, else http://127.0.0.1:8700); "
                        "none running there: the step starts one for its duration")
    p.add_argument("--dataset", default=None,
                   help="local: rows to replay as traffic (default: the policy's data.source)")
    p.add_argument("--prometheus", default=None,
                   help="local: run the canary analysis through the AnalysisTemplate's queries on this Prometheus "
                        "(default $PROMETHEUS_URL; unset: from the servers' /metrics); it must scrape the "
                        "deployment: `mlops deploy --print-scrape-config`")
    p.add_argument("--outcome-out", type=Path, default=None,
                   help=f"write one word here: {PROMOTED}, {ABORTED} (rejected by the canary) or {TIMED_OUT} "
                        "(no verdict); nothing on bad usage or a transient failure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        scale_text = args.time_scale if args.time_scale is not None else os.environ.get("MLOPS_ROLLOUT_TIME_SCALE", "1")
        try:
            scale = float(scale_text)
        except ValueError as err:
            raise UsageError(f"--time-scale {scale_text!r}: must be a number") from err
        if not scale > 0:
            raise UsageError(f"--time-scale {scale_text!r}: must be greater than 0")
        if args.timeout is not None and not args.timeout > 0:
            raise UsageError(f"--timeout {args.timeout!r}: must be greater than 0 seconds")
        prometheus = _prometheus_url(args.prometheus, args.target, os.environ.get("PROMETHEUS_URL"))
        policy = load_policy(Path(policy_path(args.model, args.policy)))
        registry = Registry.open(args.registry or None)
        version = registry.resolve(args.model, args.version)
        try:
            outcome = rollout(args.model, version, args.target, registry, policy,
                              namespace=args.namespace, timeout=args.timeout, time_scale=scale,
                              deploy_url=args.deploy_url or os.environ.get("MLOPS_DEPLOY_URL") or None,
                              dataset=args.dataset or None, prometheus=prometheus)
        except RolloutTimeout:
            _write_outcome(args.outcome_out, TIMED_OUT)
            raise
        _write_outcome(args.outcome_out, PROMOTED if outcome.promoted else ABORTED)
        verdict = "production" if outcome.promoted else "rejected"
        print(f"rollout: {args.model} v{version}: {verdict}: {outcome.reason}")
        return 0 if outcome.promoted else 1

    return run("rollout", body)


def _write_outcome(path: Path | None, word: str) -> None:
    if path is None:
        return
    try:
        write_text(path, word)
    except OSError as err:
        raise UsageError(f"--outcome-out {path}: cannot write: {err}") from err


def _prometheus_url(flag: str | None, target: str, env: str | None) -> str | None:
    """--prometheus, else $PROMETHEUS_URL for the local target (a pod's environment does not switch the
    Kubernetes target, whose analysis Argo Rollouts runs), checked to be an http(s) URL."""
    name, url = ("--prometheus", flag) if flag else ("$PROMETHEUS_URL", env if target == "local" else None)
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{name} {url!r}: must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9090")
    return url


if __name__ == "__main__":
    sys.exit(main())
