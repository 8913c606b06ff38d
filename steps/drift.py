"""The drift check: the production version's reference against the live distribution, the policy's rule, and,
when it fires, one webhook call per drift episode (the cooldown is a compare-and-swap record in the registry).

    python -m steps.drift --model M [--registry LOC] [--policy FILE]
                          [--current DATASET | --prometheus URL | --metrics-url URL [--metrics-url URL ...]]
                          [--report-dir DIR] [--webhook URL] [--token-file F] [--pushgateway URL]

The current distribution comes from exactly one source: a dataset; Prometheus (the increase of the servers'
model_feature_bin_total over the policy's window, through prometheus-api-client); or the servers' own /metrics
pages (their totals since they started, summed), when no Prometheus runs. Without a source flag, Prometheus at
$MLOPS_PROMETHEUS_URL or $PROMETHEUS_URL.

Exit 0 whether or not retraining was triggered; 2 bad input; 3 transient (Prometheus, a server's /metrics,
storage, the webhook after its retries).
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import html
import io
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from steps._core.errors import TransientError, UsageError, run
from steps._core.policy import DriftPolicy, duration_seconds, load_policy, policy_path
from steps._drift import binned, ecdf, methods, rule
from steps._drift import webhook as _webhook
from steps._model.bundle import PROFILE_FILE
from steps._storage.registry import Registry

COOLDOWN_STATE = "drift-cooldown"
REASON = "automated_drift_detection"
METRIC = "model_feature_bin_total"
PROMETHEUS_ENV = ("MLOPS_PROMETHEUS_URL", "PROMETHEUS_URL")  # the default source, first one set
PROMETHEUS_RETRIES = 2
PROMETHEUS_BACKOFF = 0.5  # urllib3 retries once at once, then after 2 x this many seconds
# A claimed episode whose POST neither succeeded nor failed by then was abandoned (a killed pod): re-send it.
CLAIM_LEASE_SECONDS = 600
_CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class Trigger:
    """What happened to the retrain request: sent, cooldown (an episode is already on), not_configured, none."""

    status: str
    idempotency_key: str | None = None
    attempts: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "idempotency_key": self.idempotency_key, "attempts": self.attempts,
                "detail": self.detail}


# --- inputs ---------------------------------------------------------------------------------------------

def reference_profile(registry: Registry, model: str) -> tuple[int, dict[str, Any]]:
    """(production version, its profile.json), the file checked against the version's stored sha256."""
    version = registry.production(model)
    if version is None:
        raise UsageError(f"model {model!r}: no production version in the registry at {registry.location}")
    data = _version_file(registry, model, version, PROFILE_FILE)
    if data is None:
        raise UsageError(f"{model} v{version}: the bundle has no {PROFILE_FILE} (the reference for drift)")
    try:
        profile: dict[str, Any] = json.loads(data)
    except ValueError as err:
        raise UsageError(f"{model} v{version}: {PROFILE_FILE} is not valid JSON: {err}") from err
    return version, profile


def stored_ecdfs(registry: Registry, model: str, version: int, method: str) -> dict[str, ecdf.Ecdf]:
    """The version's reference ECDFs (reference_ecdf.npz, checked against its sha256), which the raw methods
    (wasserstein, ks) compare a current dataset with."""
    data = _version_file(registry, model, version, ecdf.ECDF_FILE)
    if data is None:
        raise UsageError(
            f"{model} v{version}: drift.method {method!r} compares raw values with the reference ECDFs "
            f"({ecdf.ECDF_FILE}), and this version was trained before bundles kept them: retrain the model "
            f"(mlops run training --model {model}) and promote the new version, or use drift.method psi or "
            "jensen_shannon, which need only profile.json"
        )
    try:
        return ecdf.load_ecdfs(data, f"{model} v{version} {ecdf.ECDF_FILE}")
    except ValueError as err:
        raise UsageError(str(err)) from err


def _version_file(registry: Registry, model: str, version: int, name: str) -> bytes | None:
    """A file of the version, checked against its sha256 in bundle.json; None when the bundle has no such file."""
    manifest = registry.manifest(model, version)
    expected = (manifest.get("files") or {}).get(name)
    if not expected:
        return None
    data, _ = registry.store.get(f"models/{model}/versions/{version}/{name}")
    if hashlib.sha256(data).hexdigest() != expected:
        raise UsageError(f"{model} v{version}: {name} does not match its sha256 in bundle.json")
    return data


def prometheus_counters(url: str, model: str, version: int, window: str, timeout: int = 30
                        ) -> dict[str, dict[str, float]]:
    """feature -> bin -> increase of model_feature_bin_total over the window, for the production version only
    (bin numbers index that version's profile, so another version's counters would not line up)."""
    import requests
    from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
    from urllib3.util import Retry

    query = (f'sum by (feature, bin) (increase({METRIC}{{model="{model}",model_version="{version}"}}'
             f'[{window}]))')
    # A short retry here for a blip; a Prometheus that stays down is exit 3, and the workflow retries the step.
    # raise_on_status=False: a 5xx that outlasts the retries comes back as its response, with its status.
    retry = Retry(total=PROMETHEUS_RETRIES, backoff_factor=PROMETHEUS_BACKOFF, status_forcelist=(502, 503, 504),
                  raise_on_status=False)
    client = PrometheusConnect(url=url, disable_ssl=True, retry=retry, timeout=timeout)
    try:
        result = client.custom_query(query=query)
        series = [(s["metric"], float(s["value"][1])) for s in result]
    except PrometheusApiClientException as err:
        status, detail = _prometheus_error(str(err))
        if status is None or status >= 500:
            raise TransientError(f"prometheus {url}: {detail} for {query}") from err
        raise UsageError(f"prometheus {url}: the query was refused ({detail}): {query}") from err
    except requests.exceptions.JSONDecodeError as err:  # a ValueError and a RequestException: before both
        raise UsageError(f"prometheus {url}: the answer is not JSON ({err}): is this a Prometheus?") from err
    except requests.exceptions.RequestException as err:
        raise TransientError(f"prometheus {url}: unreachable: {err}") from err
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise UsageError(f"prometheus {url}: not an instant-query answer ({err!r}) for {query}") from err
    finally:
        client.close()
    counters: dict[str, dict[str, float]] = {}
    for labels, value in series:
        counters.setdefault(labels.get("feature", ""), {})[labels.get("bin", "")] = value
    return counters


def _prometheus_error(message: str) -> tuple[int | None, str]:
    """(HTTP status, what Prometheus said) from prometheus-api-client's exception, whose message is
    "HTTP Status Code <n> (b'<body>')": Prometheus' JSON error body, as a bytes literal."""
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b(['\"]).*\3)\)", message, flags=re.DOTALL)
    if match is None:
        return None, message[:300]
    detail = f"HTTP {match.group(1)}"
    try:
        body = json.loads(ast.literal_eval(match.group(2)))
        detail += f": {body['errorType']}: {body['error']}"
    except (ValueError, SyntaxError, TypeError, KeyError):  # not Prometheus' JSON: its first bytes say enough
        detail += f": {match.group(2)[:200]}"
    return int(match.group(1)), detail


def exposition_counters(urls: list[str], model: str, version: int, timeout: float = 10.0
                        ) -> dict[str, dict[str, float]]:
    """feature -> bin -> model_feature_bin_total for this model and version, summed over the servers' /metrics
    pages (each server counts what it scored since it started; other models and versions are left out)."""
    counters: dict[str, dict[str, float]] = {}
    found = False
    others: set[str] = set()
    for url in dict.fromkeys(urls):  # the same page twice would count its rows twice
        for labels, value in parse_exposition(_get_metrics(url, timeout), METRIC, url):
            if labels.get("model") != model:
                continue
            if labels.get("model_version") != str(version):
                others.add(labels.get("model_version", "?"))
                continue
            found = True
            bins = counters.setdefault(labels.get("feature", ""), {})
            label = labels.get("bin", "")
            bins[label] = bins.get(label, 0.0) + value
    if not found:
        seen = f"only versions {sorted(others)} of it" if others else "no counters for it at all"
        raise UsageError(f"--metrics-url {' '.join(urls)}: no {METRIC} for {model} v{version} (the production "
                         f"version) there: the pages have {seen}")
    return counters


def _get_metrics(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as err:
        if err.code >= 500:
            raise TransientError(f"metrics {url}: HTTP {err.code}") from err
        raise UsageError(f"metrics {url}: HTTP {err.code}: {err.read()[:200]!r}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"metrics {url}: unreachable: {getattr(err, 'reason', err)}") from err
    except ValueError as err:  # not an http(s) URL
        raise UsageError(f"--metrics-url {url!r}: {err}") from err
    return data.decode("utf-8", errors="replace")


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?[ \t]*$")
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(?:,[ \t]*|$)')
_ESCAPE = re.compile(r'\\(.)')


def parse_exposition(text: str, metric: str, where: str = "metrics") -> list[tuple[dict[str, str], float]]:
    """The samples of one metric in a Prometheus text exposition (format 0.0.4): (labels, value) each.

    Only `metric`'s lines are read (the rest may use anything the format allows); one of them that does not
    parse is an error naming `where` and the line.
    """
    out = []
    for line in text.splitlines():
        if not line.startswith(metric) or line[len(metric):len(metric) + 1] not in ("{", " ", "\t"):
            continue
        match = _SAMPLE.match(line)
        labels = _labels(match.group(2) or "") if match and match.group(1) == metric else None
        try:
            value = float(match.group(3)) if match else math.nan
        except ValueError:
            labels = None
        if labels is None:
            raise UsageError(f"{where}: not a Prometheus sample line: {line[:200]!r}")
        out.append((labels, value))
    return out


def _labels(text: str) -> dict[str, str] | None:
    """`a="x",b="y\"z"` as a dict (escapes undone); None when it is not a label list."""
    labels: dict[str, str] = {}
    text, position = text.strip(), 0
    while position < len(text):
        pair = _PAIR.match(text, position)
        if pair is None:
            return None
        labels[pair.group(1)] = _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), pair.group(2))
        position = pair.end()
    return labels


# --- the check ------------------------------------------------------------------------------------------

def check(model: str, registry: Registry, policy: DriftPolicy, *, current: str | None = None,
          prometheus: str | None = None, metrics_urls: list[str] | None = None
          ) -> tuple[int, rule.DriftResult, str]:
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
            if policy.method in methods.RAW_METHODS and numeric:
                reference = stored_ecdfs(registry, model, version, policy.method)
            frame = read_dataset(current).frame
            return version, rule.check(profile, policy, current=frame, reference=reference), current
        if prometheus is not None:
            counters = prometheus_counters(prometheus, model, version, policy.window)
            source = f"{prometheus} ({METRIC}, {policy.window})"
        else:
            urls = list(metrics_urls or [])
            counters = exposition_counters(urls, model, version)
            source = f"{', '.join(urls)} ({METRIC} since each server started)"
        counts = binned.counts_from_labels(profile, counters)
        return version, rule.check(profile, policy, counts=counts), source
    except (methods.DriftMethodError, ValueError) as err:
        raise UsageError(str(err)) from err


# --- the cooldown and the webhook -----------------------------------------------------------------------

def episode_key(model: str, version: int, started: str) -> str:
    """12 hex characters naming a drift episode: the Workflow's name is `<model>-retrain-<key>` (<= 63)."""
    return hashlib.sha256(f"{model}\n{version}\n{started}".encode()).hexdigest()[:12]


def claim(registry: Registry, model: str, version: int, cooldown: str, now: datetime
          ) -> tuple[str, dict[str, Any]] | None:
    """Claim the right to send this episode's retrain request; None when another check owns it (cooldown).

    The record is written by compare-and-swap before any POST, so of any number of concurrent checks exactly
    one sends; a later check re-sends the same key only when the earlier POST failed or was abandoned.
    """
    for _ in range(_CAS_ATTEMPTS):
        record, etag = registry.read_state(model, COOLDOWN_STATE)
        if record and _parse(record.get("until")) > now:
            failed = record.get("status") == "failed"
            abandoned = (record.get("status") == "claimed"
                         and _parse(record.get("claimed_at")) + timedelta(seconds=CLAIM_LEASE_SECONDS) <= now)
            if not (failed or abandoned):
                return None
            updated = {**record, "status": "claimed", "claimed_at": now.isoformat(),
                       "attempts": int(record.get("attempts", 0)) + 1}
        else:
            started = now.isoformat()
            updated = {
                "model": model, "production_version": version, "episode_start": started,
                "until": (now + timedelta(seconds=duration_seconds(cooldown))).isoformat(),
                "idempotency_key": episode_key(model, version, started), "status": "claimed",
                "claimed_at": started, "attempts": 1,
            }
        if registry.cas_state(model, COOLDOWN_STATE, updated, etag):
            return str(updated["idempotency_key"]), updated
    raise TransientError(f"{model}: state/{COOLDOWN_STATE} kept changing during {_CAS_ATTEMPTS} attempts")


def _settle(registry: Registry, model: str, key: str, status: str, detail: str) -> None:
    """Record the POST's outcome on the episode, unless a newer episode replaced it meanwhile."""
    for _ in range(_CAS_ATTEMPTS):
        record, etag = registry.read_state(model, COOLDOWN_STATE)
        if not record or record.get("idempotency_key") != key:
            return
        if registry.cas_state(model, COOLDOWN_STATE, {**record, "status": status, "detail": detail}, etag):
            return


def retrain_body(model: str, version: int, result: rule.DriftResult, key: str, window: str) -> dict[str, Any]:
    """The webhook body: DESIGN.md's table (the Sensor maps it to the training Workflow's parameters)."""
    return {
        "model": model, "reason": REASON, "drifted_features": result.drifted_features, "idempotency_key": key,
        "production_version": version, "drift_share": result.share, "samples": result.samples, "window": window,
    }


def trigger(registry: Registry, model: str, version: int, result: rule.DriftResult, policy: DriftPolicy,
            webhook: str | None, token: str | None, *, now: datetime | None = None, backoff: float = 0.5,
            attempts: int = 5) -> Trigger:
    if not result.retrain:
        return Trigger("none", detail=result.reason)
    if not webhook or token is None:
        return Trigger("not_configured", detail="retraining is due, but no --webhook is configured")
    claimed = claim(registry, model, version, policy.cooldown, now or datetime.now(UTC))
    if claimed is None:
        record, _ = registry.read_state(model, COOLDOWN_STATE)
        record = record or {}
        return Trigger("cooldown", record.get("idempotency_key"),
                       detail=f"a drift episode is already handled until {record.get('until')}")
    key, _ = claimed
    body = retrain_body(model, version, result, key, policy.window)
    try:
        delivery = _webhook.post(webhook, body, token, attempts=attempts, backoff=backoff,
                                 log=lambda line: print(f"drift: {line}", file=sys.stderr))
    except (TransientError, UsageError) as err:
        _settle(registry, model, key, "failed", str(err))
        raise
    _settle(registry, model, key, "sent", f"HTTP {delivery.status}")
    return Trigger("sent", key, delivery.attempts, f"HTTP {delivery.status}")


def _parse(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # an unreadable time is treated as long past


# --- outputs --------------------------------------------------------------------------------------------

def report(model: str, version: int, source: str, result: rule.DriftResult, outcome: Trigger | None,
           window: str) -> dict[str, Any]:
    return {"model": model, "production_version": version, "source": source, "window": window,
            "checked_at": datetime.now(UTC).isoformat(), **result.to_dict(),
            "trigger": outcome.to_dict() if outcome else {"status": "error"}}


def write_reports(folder: Path, doc: dict[str, Any], result: rule.DriftResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("drift.json", json.dumps(doc, indent=2, default=str) + "\n"),
                       ("drift.html", _html(doc, result))):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)


def _html(doc: dict[str, Any], result: rule.DriftResult) -> str:
    rows = "".join(
        f"<tr{' class=drifted' if f.drifted else ''}><td>{html.escape(f.name)}</td><td>{f.method}</td>"
        f"<td>{f.score:.4f}</td><td>{'' if f.p_value is None else f'{f.p_value:.4g}'}</td>"
        f"<td>{'yes' if f.drifted else 'no'}</td><td>{f.count}</td></tr>"
        for f in result.features)
    trig = doc["trigger"]
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Drift report: "
        f"{html.escape(doc['model'])}</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px}}"
        ".drifted{background:#fdd}</style></head><body>"
        f"<h1>Drift: {html.escape(doc['model'])} v{doc['production_version']}</h1>"
        f"<p>{html.escape(result.reason)}. Decision: <b>{result.decision}</b>; trigger: "
        f"<b>{html.escape(str(trig['status']))}</b> {html.escape(str(trig.get('detail') or ''))}</p>"
        f"<p>Current data: {html.escape(doc['source'])}; {result.samples} samples; method {result.method}, "
        f"threshold {result.threshold}, drift_share {result.drift_share}.</p>"
        "<table><tr><th>feature</th><th>method</th><th>score</th><th>p-value</th><th>drifted</th><th>count</th>"
        f"</tr>{rows}</table><h2>Reference vs current, per feature</h2>"
        f"<img alt='reference vs current per feature' src='data:image/png;base64,{_bars(result)}'>"
        "</body></html>\n"
    )


def _bars(result: rule.DriftResult) -> str:
    """One PNG, a panel per feature: reference and current proportions per bin (drifted features in red)."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    shown = [f for f in result.features if f.bins]
    cols = 4
    rows = max(1, -(-len(shown) // cols))
    fig = Figure(figsize=(4 * cols, 2.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, f in zip(axes.flat, shown, strict=False):
        # One step patch per series, not one rectangle per bin: a tenth of the drawing time.
        edges = np.arange(len(f.bins) + 1)
        ax.stairs(f.reference, edges, fill=True, alpha=0.5, label="reference", color="tab:blue")
        ax.stairs(f.current, edges, linewidth=1.5, label="current", color="tab:red" if f.drifted else "tab:orange")
        # Bin labels would cost more to draw than the bars: the JSON report lists them.
        ax.set_xticks([])
        ax.set_title(f"{f.name} ({f.method} {f.score:.3f})", fontsize=8, color="red" if f.drifted else "black")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    if shown:
        axes.flat[0].legend(fontsize=6)
    fig.subplots_adjust(hspace=0.35, wspace=0.2, left=0.03, right=0.99, top=0.97, bottom=0.02)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return base64.b64encode(buffer.getvalue()).decode()


def push_metrics(url: str, model: str, version: int, result: rule.DriftResult, timeout: float = 10.0) -> None:
    """Replace this model's drift metrics on a Prometheus Pushgateway (job mlops-drift, grouped by model)."""
    lines = ["# TYPE mlops_drift_score gauge"]
    for f in result.features:
        if f.score == f.score and abs(f.score) != float("inf"):
            lines.append(f'mlops_drift_score{{feature="{f.name}",method="{f.method}",'
                         f'model_version="{version}"}} {f.score!r}')
    lines += ["# TYPE mlops_drift_share gauge", f'mlops_drift_share{{model_version="{version}"}} {result.share!r}',
              "# TYPE mlops_drift_samples gauge", f'mlops_drift_samples{{model_version="{version}"}} {result.samples}',
              "# TYPE mlops_drift_retrain gauge",
              f'mlops_drift_retrain{{model_version="{version}"}} {1 if result.retrain else 0}']
    address = f"{url.rstrip('/')}/metrics/job/mlops-drift/model/{urllib.parse.quote(model, safe='')}"
    request = urllib.request.Request(address, data=("\n".join(lines) + "\n").encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        raise UsageError(f"pushgateway {url}: HTTP {err.code}: {err.read()[:200]!r}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"pushgateway {url}: unreachable: {getattr(err, 'reason', err)}") from err


# --- the command line -----------------------------------------------------------------------------------

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
    p.add_argument("--report-dir", type=Path, default=Path("drift-report"), help="where drift.json/html go")
    p.add_argument("--webhook", default=None, help="the retrain webhook URL (default: $MLOPS_WEBHOOK_URL)")
    p.add_argument("--token-file", help=f"file holding the webhook's bearer token (else ${_webhook.TOKEN_ENV})")
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
        webhook = args.webhook or os.environ.get("MLOPS_WEBHOOK_URL") or None
        pushgateway = args.pushgateway or os.environ.get("MLOPS_PUSHGATEWAY_URL") or None
        registry = Registry.open(args.registry)
        version, result, source = check(args.model, registry, policy.drift, current=args.current,
                                        prometheus=prometheus, metrics_urls=args.metrics_url)
        token = _webhook.read_token(args.token_file) if webhook and result.retrain else None
        outcome: Trigger | None = None
        try:
            outcome = trigger(registry, args.model, version, result, policy.drift, webhook, token,
                              backoff=args.webhook_backoff, attempts=args.webhook_attempts)
        finally:
            # The report is written whatever the webhook did: a failed POST is in it (trigger "error").
            write_reports(args.report_dir, report(args.model, version, source, result, outcome,
                                                  policy.drift.window), result)
            if pushgateway:
                push_metrics(pushgateway, args.model, version, result)
        print(f"drift: {args.model} v{version}: {result.reason}; decision {result.decision}; "
              f"trigger {outcome.status}" + (f" (idempotency key {outcome.idempotency_key})"
                                             if outcome.idempotency_key else ""))
        if result.drifted_features:
            print(f"drift: drifted features: {', '.join(result.drifted_features)}")
        return 0

    return run("drift", body)


if __name__ == "__main__":
    sys.exit(main())
