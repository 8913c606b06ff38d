"""The registry page folder: index.html (the verdict, the versions as a timeline, a plot of each gated metric,
lineage) and versions/<n>.html (each version's gate report as the registry holds it), with registry.json beside
them. Written into a temporary folder and renamed into place, so a reader never finds half a page."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from steps._core.errors import UsageError
from steps._core.files import publish_folder
from steps._core.html import esc, facts, figure, page, table, tag, verdict
from steps._registry.plots import metric_svg
from steps._registry.views import RegistryView, VersionView, read
from steps._storage.registry import Registry

_STATUS_TONE = {"production": "pass", "canary": "info", "staged": "info", "archived": "warn", "rejected": "fail"}
_GATE_TONE = {"pass": "pass", "fail": "fail", "skipped": "warn"}


def write_report(reg: Registry, model: str, out: Path, flag: str = "--out") -> Path:
    """Write the page of `model` into the folder `out` (replaced whole); returns out/index.html. `flag` names
    `out` in errors as the caller's command line calls it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: exists and is not a folder")
    view = read(reg, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        (staging / "versions").mkdir()
        for version in view.versions:
            (staging / "versions" / f"{version.number}.html").write_text(version_page(view, version))
        (staging / "registry.json").write_text(json.dumps(
            {"model": model, "registry": view.location, "versions": [v.record for v in view.versions]},
            indent=2, sort_keys=True) + "\n")
        (staging / "index.html").write_text(index_page(view))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the page from a server running as another user
        publish_folder(staging, out, "index.html")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / "index.html"


# ---- index.html ---------------------------------------------------------------------------------------------


def headline(view: RegistryView) -> tuple[str, str, str]:
    """(the verdict line, its tone, the detail): who serves, how many versions, what became of the latest."""
    production, canary = view.holder("production"), view.holder("canary")
    latest = view.versions[-1]
    parts = [f"v{production.number} in production" if production else "no version in production"]
    if canary:
        parts.append(f"v{canary.number} in canary")
    count = len(view.versions)
    parts.append(f"{count} version{'s' if count != 1 else ''}")
    outcome = latest.status
    if latest.status == "rejected" and latest.record["gate"]["failed"]:
        outcome += f" (failed gates: {', '.join(latest.record['gate']['failed'])})"
    parts.append(f"latest v{latest.number} {outcome}")
    tone = "fail" if latest.status == "rejected" else "pass" if production else "warn"
    detail = "no version has been promoted yet"
    if production:
        last = production.record["history"][-1]
        detail = f"production since {_when(last['at'])} UTC, by {last['by']}: {last['why']}"
    return " · ".join(parts), tone, detail


def index_page(view: RegistryView) -> str:
    line, tone, detail = headline(view)
    names = view.gated_metrics
    plots = "".join(figure(metric_svg(view, name), _caption(view, name)) for name in names)
    body = (
        "<h2>Versions</h2><p class='muted'>Newest first. Each version links to its gate report as the registry "
        "holds it.</p>" + _timeline(view)
        + "<h2>Gated metrics across versions</h2>"
        + (f"<div class='grid'>{plots}</div>" if plots else "<p class='muted'>No gate reported a number.</p>")
        + "<h2>Lineage</h2>" + _lineage(view)
        + "<p class='muted'>The index as JSON: <a href='registry.json'>registry.json</a>.</p>"
    )
    return page(f"{view.model}: model registry", body, verdict_html=verdict(line, tone, detail),
                subtitle=f"the model registry at {view.location}")


def _caption(view: RegistryView, name: str) -> str:
    production = view.holder("production")
    gate = production.gate(name) if production else None
    if production and gate and gate.value is not None:
        return f"{name}: production v{production.number} at {gate.value:.4g}"
    return f"{name} of each version that measured it"


def _version_link(version: VersionView) -> str:
    return f"<a href='versions/{version.number}.html'>v{version.number}</a>"


def _timeline(view: RegistryView) -> str:
    rows = []
    for v in reversed(view.versions):
        gate = v.record["gate"]
        gates = tag("passed", "pass") if gate["passed"] else f"{tag('failed', 'fail')} {esc(', '.join(gate['failed']))}"
        moves = "<br>".join(
            f"{esc(_when(h['at']))} <b>{esc(h['to'])}</b> by <code>{esc(h['by'])}</code>: {esc(h['why'])}"
            for h in v.record["history"])
        rows.append([
            f"<b>{_version_link(v)}</b> {tag(v.status, _STATUS_TONE.get(v.status, 'info'))}",
            esc(v.trigger),
            f"<code>{esc((v.record['git_commit'] or '-')[:10])}</code><br>{esc(_when(v.record['created_at']))}",
            gates,
            moves or "-",
        ])
    return table(["Version", "Trigger", "Commit, created (UTC)", "Gates", "History: who or what moved it, why"], rows)


def _lineage(view: RegistryView) -> str:
    rows = [[
        _version_link(v),
        f"<code>{esc(v.record['fingerprint'][:16])}</code>",
        esc(v.data_fingerprint),
        esc(v.baseline),
        f"<code>{esc(v.record['bundle_sha256'][:16])}…</code>",
        esc((v.manifest or {}).get("estimator") or "-") if not v.problem else esc(v.problem),
    ] for v in reversed(view.versions)]
    return table(["Version", "Training fingerprint", "Data", "Baseline (parent)", "bundle.json sha256", "Estimator"],
                 rows)


def _when(at: str | None) -> str:
    return (at or "")[:16].replace("T", " ")


# ---- versions/<n>.html --------------------------------------------------------------------------------------


def version_page(view: RegistryView, v: VersionView) -> str:
    gate = v.record["gate"]
    if gate["passed"]:
        line, tone = f"v{v.number} passed its quality gates; now {v.status}", "pass"
    else:
        failed = ", ".join(gate["failed"]) or "the gate report did not pass"
        line, tone = f"v{v.number} rejected: failed gates: {failed}", "fail"
    report = v.gate_report or {}
    holdout = report.get("holdout_rows")
    about = facts([
        ("Status", tag(v.status, _STATUS_TONE.get(v.status, "info"))),
        ("Trigger", esc(v.trigger)),
        ("Commit", f"<code>{esc(v.record['git_commit'] or '-')}</code>"),
        ("Created (UTC)", esc(_when(v.record["created_at"]))),
        ("Baseline (parent)", esc(v.baseline)),
        ("Holdout rows", esc(f"{holdout:,}" if isinstance(holdout, int) else "-")),
        ("Training fingerprint", f"<code>{esc(v.record['fingerprint'])}</code>"),
        ("Data", esc(v.data_fingerprint)),
        ("bundle.json sha256", f"<code>{esc(v.record['bundle_sha256'])}</code>"),
    ])
    if v.gates:
        rows = [[esc(g.name), tag(g.status, _GATE_TONE.get(g.status, "info")), _num(g.value),
                 esc(f"{g.bound_kind} {_num(g.bound)}".strip() if g.bound is not None else g.bound_kind or "-"),
                 _num(g.baseline_value), esc(g.note or "-")] for g in v.gates]
        gates = table(["Gate", "Verdict", "Value", "Bound", "Baseline", "Note"], rows, numeric=(2, 4))
    else:
        gates = "<p class='muted'>The registry holds no gate entries for this version.</p>"
    if v.problem:  # the index's record still shows; the stored gate report and lineage do not
        gates = f"<p>{tag('stored bundle.json', 'warn')} {esc(v.problem)}; the gates below are the index's.</p>{gates}"
    history = table(["When (UTC)", "From", "To", "By", "Why"], [
        [esc(_when(h["at"])), esc(h["from"] or "new"), esc(h["to"]), f"<code>{esc(h['by'])}</code>", esc(h["why"])]
        for h in v.record["history"]])
    body = (f"<p><a href='../index.html'>← all versions of {esc(view.model)}</a></p>{about}"
            f"<h2>Quality gates</h2>{gates}<h2>History</h2>{history}")
    return page(f"{view.model} v{v.number}: gate report", body, verdict_html=verdict(line, tone),
                subtitle=f"as the registry at {view.location} holds it")


def _num(value: float | None) -> str:
    return "-" if value is None else esc(f"{value:.4g}")
