"""The drift check's report: drift.json (steps._core.documents.DriftReport) for machines, and drift.html, with a
panel per feature (and per model output: prediction, target) of reference against current proportions, for people."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from steps._core.documents import DriftReport
from steps._core.files import write_json, write_text
from steps._drift.rule import DriftResult
from steps._drift.trigger import Trigger


def drift_report(model: str, version: int, source: str, result: DriftResult, outcome: Trigger | None,
                 window: str) -> DriftReport:
    """drift.json's content; a trigger that raised (the webhook failed after its retries) is status "error"."""
    return DriftReport(model=model, production_version=version, source=source, window=window,
                       checked_at=datetime.now(UTC).isoformat(), **result.to_dict(),
                       trigger=outcome.to_dict() if outcome else {"status": "error"})


def write_reports(folder: Path, doc: DriftReport, result: DriftResult) -> None:
    """drift.json and drift.html in `folder`, each replaced whole."""
    write_json(folder / "drift.json", doc)
    write_text(folder / "drift.html", _html(doc, result))


def _html(doc: DriftReport, result: DriftResult) -> str:
    rows = "".join(
        f"<tr{' class=drifted' if f.drifted else ''}><td>{html.escape(f.name)}</td><td>{f.method}</td>"
        f"<td>{f.score:.4f}</td><td>{'' if f.p_value is None else f'{f.p_value:.4g}'}</td>"
        f"<td>{'yes' if f.drifted else 'no'}</td><td>{f.count}</td></tr>"
        for f in result.features)
    outputs = [o for o in (result.prediction, result.target) if o is not None]
    if outputs:
        rows += ("<tr><th colspan=6>the model's outputs: reported, not counted toward drift_share</th></tr>" + "".join(
            f"<tr{' class=drifted' if o.drifted else ''}><td>{o.name}</td><td>{o.method}</td><td>{o.score:.4f}</td>"
            f"<td>{'' if o.p_value is None else f'{o.p_value:.4g}'}</td><td>{'yes' if o.drifted else 'no'}</td>"
            f"<td>{o.count}</td></tr>" for o in outputs))
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


def _bars(result: DriftResult) -> str:
    """One PNG, a panel per feature: reference and current proportions per bin (drifted features in red)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    shown = [f for f in (*result.features, result.prediction, result.target) if f is not None and f.bins]
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

