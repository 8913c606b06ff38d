"""The drift check: the production version's reference against the live distribution, the policy's rule, and,
when it fires, one webhook call per drift episode (the cooldown is a compare-and-swap record in the registry).

    python -m steps.drift --model M [--registry LOC] [--policy FILE]
                          [--current DATASET | --prometheus URL | --metrics-url URL [--metrics-url URL ...]]
                          [--report-dir DIR] [--verdict-out FILE] [--webhook URL] [--token-file F]
                          [--pushgateway URL]

The current distribution comes from exactly one source: a dataset; Prometheus (the increase of the servers'
model_feature_bin_total over the policy's window, through prometheus-api-client); or the servers' own /metrics
pages (their totals since they started, summed), when no Prometheus runs. Without a source flag, Prometheus at
$MLOPS_PROMETHEUS_URL or $PROMETHEUS_URL.

Beside the features, the model's outputs (steps/_drift/outputs.py): prediction drift, from the servers'
model_prediction_bin_total or, with a dataset, from the production model scoring it; and for regression, target
drift when the dataset carries the target. Reported and pushed, not counted toward drift_share.

Exit 0 whether or not retraining was triggered; 2 bad input; 3 transient (Prometheus, a server's /metrics,
storage, the webhook after its retries).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from steps._core.errors import UsageError, run
from steps._core.files import write_text
from steps._core.policy import DriftPolicy, load_policy, policy_path
from steps._drift import binned, outputs, rule, sources, webhook
from steps._drift.methods import RAW_METHODS, DriftMethodError
from steps._drift.pushgateway import push_metrics
from steps._drift.reference import reference_profile, stored_ecdfs
from steps._drift.report import drift_report, headline, write_reports
from steps._drift.rule import DriftResult
from steps._drift.trigger import Trigger, trigger
from steps._storage.registry import Registry

PROMETHEUS_ENV = ("MLOPS_PROMETHEUS_URL", "PROMETHEUS_URL")  # the default source, first one set


def check(model: str, registry: Registry, policy: DriftPolicy, *, current: str | None = None,
          prometheus: str | None = None, metrics_urls: list[str] | None = None) -> tuple[int, DriftResult, str]:
    """(production version, the drift result, where the current data came from)."""
    given = [s for s in (current, prometheus, metrics_urls) if s]
    if len(given) != 1:
        raise UsageError("give exactly one source: --current DATASET, --prometheus URL (or $MLOPS_PROMETHEUS_URL "
                         "or $PROMETHEUS_URL) or --metrics-url URL")
    version, profile = reference_profile(registry, model)
    try:
        if current is not None:
            from steps._core.data import read_dataset

            reference = None
            numeric = any(fp["type"] != "categorical" for fp in profile["features"].values())
            if policy.method in RAW_METHODS and numeric:
                reference = stored_ecdfs(registry, model, version, policy.method)
            frame = read_dataset(current).frame
            scored = outputs.from_dataset(profile, frame, registry, model, version)
            return version, rule.check(profile, policy, current=frame, reference=reference, outputs=scored), current
        if prometheus is not None:
            counters = sources.prometheus_counters(prometheus, model, version, policy.window)
            predicted = (sources.prometheus_prediction_counters(prometheus, model, version, policy.window)
                         if profile.get(outputs.PREDICTION) else {})
            source = f"{prometheus} ({sources.METRIC}, {policy.window})"
        else:
            urls = list(metrics_urls or [])
            pages = sources.read_pages(urls)
            counters = sources.exposition_counters(urls, model, version, pages=pages)
            predicted = sources.exposition_prediction_counters(pages, model, version)
            source = f"{', '.join(urls)} ({sources.METRIC} since each server started)"
        counts = binned.counts_from_labels(profile, counters)
        scored = outputs.from_counters(profile, predicted)
        return version, rule.check(profile, policy, counts=counts, outputs=scored), source
    except (DriftMethodError, ValueError) as err:
        raise UsageError(str(err)) from err


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--registry", help="registry location (default: $MLOPS_REGISTRY, else .mlops/registry)")
    p.add_argument("--policy", help="policy file (default: gates/<model>.yaml)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--current", help="current data: CSV or Parquet (a path, file:// or s3://)")
    source.add_argument("--prometheus", help="Prometheus URL: the increase of the servers' model_feature_bin_total "
                        "over the policy's window (default: $MLOPS_PROMETHEUS_URL, else $PROMETHEUS_URL, when no "
                        "other source is given)")
    source.add_argument("--metrics-url", action="append", metavar="URL",
                        help="a model server's Prometheus page (its /metrics, or mlops deploy's /metrics/stable "
                        "and /metrics/canary), read directly; repeatable: the counters are summed")
    p.add_argument("--report-dir", type=Path, default=Path("drift-report"),
                   help="where drift.json and its page, index.html, go")
    p.add_argument("--verdict-out", type=Path, default=None,
                   help="write the page's verdict line here (the drift CronWorkflow's `verdict` output)")
    p.add_argument("--webhook", default=None, help="the retrain webhook URL (default: $MLOPS_WEBHOOK_URL)")
    p.add_argument("--token-file", help=f"file holding the webhook's bearer token (else ${webhook.TOKEN_ENV})")
    p.add_argument("--pushgateway", default=None, help="push drift metrics here (default: $MLOPS_PUSHGATEWAY_URL)")
    p.add_argument("--webhook-attempts", type=int, default=5, help="POST attempts before exit 3 (default 5)")
    p.add_argument("--webhook-backoff", type=float, default=0.5, help="first retry delay in seconds, doubling")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:  # `mlops drift check ...` passes its action along
        argv = argv[1:]
    args = _parser().parse_args(argv)

    def body() -> int:
        try:
            policy = load_policy(policy_path(args.model, args.policy))
        except ValueError as err:
            raise UsageError(str(err)) from err
        if policy.model_name != args.model:
            raise UsageError(f"--policy: model_name is {policy.model_name!r}, not --model {args.model!r}")
        prometheus = args.prometheus
        if not (prometheus or args.current or args.metrics_url):
            prometheus = next((os.environ[k] for k in PROMETHEUS_ENV if os.environ.get(k)), None)
        hook_url = args.webhook or os.environ.get("MLOPS_WEBHOOK_URL") or None
        pushgateway = args.pushgateway or os.environ.get("MLOPS_PUSHGATEWAY_URL") or None
        registry = Registry.open(args.registry)
        version, result, source = check(args.model, registry, policy.drift, current=args.current,
                                        prometheus=prometheus, metrics_urls=args.metrics_url)
        token = webhook.read_token(args.token_file) if hook_url and result.retrain else None
        outcome: Trigger | None = None
        try:
            outcome = trigger(registry, args.model, version, result, policy.drift, hook_url, token,
                              backoff=args.webhook_backoff, attempts=args.webhook_attempts)
        finally:
            # The report is written whatever the webhook did: a failed POST is in it (trigger "error").
            doc = drift_report(args.model, version, source, result, outcome, policy.drift.window)
            write_reports(args.report_dir, doc, result)
            if args.verdict_out is not None:  # the Workflow's output: what the check found and did, in one line
                write_text(args.verdict_out, headline(doc)[0])
            if pushgateway:
                push_metrics(pushgateway, args.model, version, result)
        print(f"drift: {args.model} v{version}: {result.reason}; decision {result.decision}; "
              f"trigger {outcome.status}" + (f" (idempotency key {outcome.idempotency_key})"
                                             if outcome.idempotency_key else ""))
        if result.drifted_features:
            print(f"drift: drifted features: {', '.join(result.drifted_features)}")
        for output in (result.prediction, result.target):
            if output is not None:
                print(f"drift: {output.name} {output.method} {output.score:.4f}: "
                      f"{'drifted' if output.drifted else 'no drift'} ({output.count} values; reported, not counted "
                      "toward drift_share)")
        return 0

    return run("drift", body)


if __name__ == "__main__":
    sys.exit(main())
