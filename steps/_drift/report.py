"""The drift check's report: drift.json (steps._core.documents.DriftReport) for machines, and its page, index.html,
for people: the verdict first (drifted or not, the share of drifted features against drift_share, what was done:
the webhook called, a cooldown, no action), every feature's score, and a panel per feature (and per model output:
prediction, target) of reference against current proportions as inline SVG, in the shared page shell
(steps/_core/html.py), so it renders in Argo's artifact viewer (which opens a folder artifact at its index.html)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from steps._core import html as _html
from steps._core.documents import DriftReport, TriggerRecord
from steps._core.files import write_json, write_text
from steps._drift.rule import NO_RETRAIN, RETRAIN, DriftResult, FeatureDrift
from steps._drift.trigger import Trigger

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAGE, JSON = "index.html", "drift.json"
TESTS = ("ks", "chi_square")  # a test drifts when its p-value is below the threshold (rule.is_drifted)
_COLUMNS = 3  # panels per row in the picture: readable at 1000 px


def drift_report(model: str, version: int, source: str, result: DriftResult, outcome: Trigger | None,
                 window: str) -> DriftReport:
    """drift.json's content; a trigger that raised (the webhook failed after its retries) is status "error"."""
    return DriftReport(model=model, production_version=version, source=source, window=window,
                       checked_at=datetime.now(UTC).isoformat(), **result.to_dict(),
                       trigger=outcome.to_dict() if outcome else {"status": "error"})


def write_reports(folder: Path, doc: DriftReport, result: DriftResult) -> None:
    """drift.json and its page, index.html, in `folder`, each replaced whole."""
    write_json(folder / JSON, doc)
    write_text(folder / PAGE, render(doc, result))


def action(trigger: TriggerRecord) -> str:
    """What the check did about it, in words: the webhook called, a cooldown, or no action."""
    status, detail = trigger["status"], trigger.get("detail") or ""
    if status == "sent":
        key = trigger.get("idempotency_key")
        return (f"webhook called, retraining requested ({detail or 'delivered'}"
                + (f", idempotency key {key}" if key else "") + ")")
    if status == "cooldown":
        return f"no new request: cooldown ({detail})" if detail else "no new request: cooldown"
    if status == "not_configured":
        return "no action: retraining is due, but no webhook is configured"
    if status == "error":
        return "the webhook call failed after its retries: the next check sends the request again"
    return "no action"


def headline(doc: DriftReport) -> tuple[str, str, str]:
    """The verdict banner: (headline, tone, detail)."""
    drifted, total = len(doc["drifted_features"]), len(doc["features"])
    counted = (f"{drifted} of {total} features drifted: {doc['share']:.0%} of them, "
               f"{'over' if doc['decision'] == RETRAIN else 'within'} drift_share {doc['drift_share']:.0%}")
    done = action(doc["trigger"])
    if doc["decision"] == RETRAIN:
        text, tone = f"Drifted: {counted}; {done}", "fail" if doc["trigger"]["status"] == "error" else "warn"
    elif doc["decision"] == NO_RETRAIN:
        text, tone = f"No drift: {counted}; {done}", "pass"
    else:
        text, tone = f"Not decided: {doc['reason']}; {done}", "info"
    outputs = [o["name"] for o in (doc.get("prediction"), doc.get("target")) if o and o["drifted"]]
    detail = (f"{doc['model']} v{doc['production_version']}: {doc['samples']} current samples, method "
              f"{doc['method']}, threshold {doc['threshold']:g} per feature.")
    if outputs:
        detail += f" The model's {' and '.join(outputs)} drifted too (reported, not counted toward drift_share)."
    return text, tone, detail


def render(doc: DriftReport, result: DriftResult) -> str:
    text, tone, detail = headline(doc)
    trigger = doc["trigger"]
    about = _html.facts([
        ("model", _html.esc(f"{doc['model']} (production version {doc['production_version']})")),
        ("current data", _html.esc(doc["source"])),
        ("window", _html.esc(doc["window"])),
        ("checked at", _html.esc(doc["checked_at"])),
        ("rule", _html.esc(f"a feature drifts when its {_bound(doc['method'], doc['threshold'])}; retrain when the "
                           f"share of drifted features is over drift_share {doc['drift_share']:g}, with at least "
                           f"min_samples {doc['min_samples']} samples")),
        ("decision", _html.esc(f"{doc['decision']}: {doc['reason']}")),
        ("retrain request", _html.esc(f"{trigger['status']}: {action(trigger)}")),
        ("machine-readable", f"<a href='{JSON}'>{JSON}</a>"),
    ])
    # The drifted features first (largest score first), then the others in the profile's order.
    features = sorted(result.features, key=lambda f: (not f.drifted, -f.score if f.drifted else 0.0))
    body = about + "<h2>Features</h2>" + _table(features)
    outputs = [o for o in (result.prediction, result.target) if o is not None]
    if outputs:
        body += ("<h2>The model's outputs</h2><p class='muted'>Reported, not counted toward drift_share: "
                 "retraining is decided on the inputs.</p>" + _table(outputs))
    shown = [f for f in (*features, *outputs) if f.bins]
    if shown:
        body += ("<h2>Reference vs current, per feature</h2>"
                 + _html.figure(_html.svg_of(_bars(shown), "Reference vs current proportions per feature"),
                                "Each panel: the reference's share per bin (filled) against the current data's "
                                "(line, red when the feature drifted); drift.json lists the bins."))
    return _html.page(f"Drift report: {doc['model']} v{doc['production_version']}", body,
                      verdict_html=_html.verdict(text, tone, detail))


def _bound(method: str, threshold: float) -> str:
    if method in TESTS:
        return f"{method} test's p-value is below {threshold:g}"
    return f"{method} score is over {threshold:g}"


def _table(rows: Sequence[FeatureDrift]) -> str:
    return _html.table(["feature", "type", "method", "score", "p-value", "drifted", "values"], [
        [_html.esc(f.name), _html.esc(f.type), _html.esc(f.method), f"{f.score:.4f}",
         "" if f.p_value is None else f"{f.p_value:.4g}",
         _html.tag("drifted", "fail") if f.drifted else _html.tag("no", "pass"), str(f.count)]
        for f in rows], numeric=(3, 4, 6))


def _bars(shown: Sequence[FeatureDrift]) -> Figure:
    """A panel per feature: reference and current proportions per bin (drifted features in red)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rows = max(1, -(-len(shown) // _COLUMNS))
    fig = Figure(figsize=(4 * _COLUMNS, 2.4 * rows))
    axes = fig.subplots(rows, _COLUMNS, squeeze=False)
    for ax, f in zip(axes.flat, shown, strict=False):
        # One step patch per series, not one rectangle per bin: a tenth of the drawing time.
        edges = np.arange(len(f.bins) + 1)
        ax.stairs(f.reference, edges, fill=True, alpha=0.5, label="reference", color="tab:blue")
        ax.stairs(f.current, edges, linewidth=1.5, label="current", color="tab:red" if f.drifted else "tab:orange")
        # Bin labels would crowd the panel: the JSON report lists them.
        ax.set_xticks([])
        ax.set_title(f"{f.name} ({f.method} {f.score:.3f})", fontsize=10, color="red" if f.drifted else "black")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.subplots_adjust(hspace=0.4, wspace=0.2, left=0.04, right=0.99, top=0.97, bottom=0.02)
    return fig
