"""The demo's index page (DIR/index.html): every run with its page (run.html) and outcome, the reports (drift, each
run's gate report), the registry page and the logs, linked by relative path. Under the rules of steps/_core/html.py
(no scripts, relative links to files that are there), so it opens from disk or through Argo's artifact viewer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from steps._core.errors import StepError
from steps._core.files import write_text
from steps._core.html import esc, facts, page, table, tag, verdict
from steps._registry.page import write_report
from steps._storage.registry import Registry
from workflows.local.runpage import RUN_HTML, plain, write_run_page

INDEX = "index.html"
REGISTRY_PAGE = Path("reports") / "registry"
_TONES = {"Succeeded": "pass", "Failed": "fail", "Error": "fail"}
# A run's reports: the artifact as stored (`archive: none`), else the pod's own copy (an archived artifact is a .tgz).
_RUN_REPORTS = (
    ("gate report", ("artifacts/**/gate-report/index.html",
                     "pods/*-gate-*/volumes/emptyDir/tmp/gate-report/index.html")),
    ("validation report", ("artifacts/**/validation.json", "pods/*-validate-*/volumes/emptyDir/tmp/validation.json")),
    ("registry after this run", ("artifacts/**/registry-report/index.html",)),
)


def write_index(folder: Path, model: str, registry: str, headline: str, tone: str = "pass", detail: str = "") -> Path:
    """Write the registry page into DIR/reports/registry and the run pages that are missing, then DIR/index.html;
    returns its path. A page that cannot be written is left out with a warning; the demo's outcome stands."""
    try:
        if "://" in registry or Path(registry).exists():  # a demo that stopped before v1 has no registry yet
            write_report(Registry.open(registry), model, folder / REGISTRY_PAGE)
    except (OSError, StepError, ValueError) as err:
        print(f"mlops demo: warning: the registry page was not written: {err}", file=sys.stderr)
    runs = sorted(p.parent for p in (folder / ".mlops" / "runs").glob("*/run.json"))
    for run_dir in runs:
        if not (run_dir / RUN_HTML).is_file():
            try:
                write_run_page(run_dir)
            except (OSError, ValueError) as err:
                print(f"mlops demo: warning: {run_dir / RUN_HTML} was not written: {err}", file=sys.stderr)
    target = folder / INDEX
    write_text(target, index_page(folder, model, runs, headline, tone, detail))
    return target


def index_page(folder: Path, model: str, runs: list[Path], headline: str, tone: str, detail: str) -> str:
    body = [facts([("Model", f"<code>{esc(model)}</code>"), ("Folder", f"<code>{esc(folder)}</code>")])]
    body += ["<h2>Runs</h2>", _runs(folder, runs)]
    reports = _reports(folder)
    if reports:
        body += ["<h2>Reports</h2>", table(["Report", "Page"], reports)]
    logs = [[esc(p.stem), _link(folder, p)] for p in sorted((folder / "logs").glob("*.log"))]
    logs += [[esc(f"Sensor's workflow {p.stem}"), _link(folder, p)]
             for p in sorted((folder / "events").glob("*.log"))]
    if logs:
        body += ["<h2>Logs</h2>", table(["Process", "Log"], logs)]
    return page(f"mlops demo: {model}", "".join(body), verdict_html=verdict(headline, tone, detail))


def _runs(folder: Path, runs: list[Path]) -> str:
    rows = []
    for run_dir in runs:
        document = _json(run_dir / "run.json")
        phase = str(document.get("phase") or "?")
        parameters = document.get("parameters") or {}
        register = ((document.get("tasks") or {}).get("register") or {}).get("outputs") or {}
        version = (register.get("parameters") or {}).get("version")
        title = (document.get("annotations") or {}).get("workflows.argoproj.io/title") or document.get("name")
        page_link = _link(folder, run_dir / RUN_HTML, run_dir.name) if (run_dir / RUN_HTML).is_file() \
            else esc(run_dir.name)
        reports = [_link(folder, path, what) for what, patterns in _RUN_REPORTS
                   if (path := _first(run_dir, patterns)) is not None]
        rows.append([page_link + f"<br><span class='muted'>{esc(plain(str(title)))}</span>",
                     tag(phase, _TONES.get(phase, "info")), esc(parameters.get("reason", "")),
                     esc(f"v{version}" if version else ""), esc(_seconds(document.get("duration"))),
                     "<br>".join(reports)])
    if not rows:
        return "<p class='muted'>No run.</p>"
    return table(["Run", "Phase", "Reason", "Registered", "Duration", "Reports"], rows, numeric=(4,),
                 caption="Each run's page shows its graph and each task's log and artifacts.")


def _reports(folder: Path) -> list[list[str]]:
    found = [("registry: every version, its gates and lineage", _first(folder, ("reports/registry/index.html",))),
             ("drift check: the served traffic against the production version's training data",
              _first(folder, ("reports/drift/index.html",)))]
    return [[esc(what), _link(folder, path)] for what, path in found if path is not None]


def _first(root: Path, patterns: tuple[str, ...]) -> Path | None:
    """The first pattern's newest match (a retried task has a pod per attempt: the last one)."""
    for pattern in patterns:
        paths = [p for p in root.glob(pattern) if p.is_file()]
        if paths:
            return max(paths, key=lambda p: p.stat().st_mtime)
    return None


def _link(folder: Path, path: Path, text: str | None = None) -> str:
    relative = path.relative_to(folder).as_posix()
    return f"<a href='{esc(quote(relative))}'>{esc(text if text is not None else relative)}</a>"


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value:.0f}s" if value < 60 else f"{int(value) // 60}m {int(value) % 60:02d}s"
