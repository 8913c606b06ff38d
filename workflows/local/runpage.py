"""run.html: a local run's page, what Argo's UI shows of a Workflow, as a static page in its run folder: the title and
description, the phase first, the labels and outputs, the DAG with each node's phase and duration, and each task's
log and artifacts linked by relative path. It follows the rules of steps/_core/html.py (no scripts, inline SVG)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from steps._core.files import write_text
from steps._core.html import esc, facts, figure, page, table, tag, verdict
from workflows.local.engine.nodes import fnv32a

RUN_HTML = "run.html"
TITLE = "workflows.argoproj.io/title"
DESCRIPTION = "workflows.argoproj.io/description"

_TONES = {"Succeeded": "pass", "Failed": "fail", "Error": "fail", "Running": "info", "Pending": "info"}
# Argo UI's colours for a node's phase (the box's outline and its phase line).
_COLOURS = {"Succeeded": "#1a7f37", "Failed": "#cf222e", "Error": "#cf222e", "Running": "#0969da",
            "Pending": "#9a6700"}
_GREY = "#6e7781"
_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 196, 46, 22, 34
_MAX_ROW = 12  # nodes side by side in the graph: more (a wide fan-out) would be too small to read at 1000 px


def write_run_page(run_dir: Path) -> Path:
    """Write `run.html` in `run_dir` from its run.json and workflow.yaml (atomically); returns its path."""
    document = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    target = run_dir / RUN_HTML
    write_text(target, run_page(run_dir, document, _workflow(run_dir / "workflow.yaml")))
    return target


def run_page(run_dir: Path, document: dict[str, Any], workflow: dict[str, Any] | None) -> str:
    """The page's HTML; links are relative to `run_dir` and only to files that are there."""
    metadata = (workflow or {}).get("metadata") or {}
    annotations = document.get("annotations")
    if annotations is None:  # a run.json from before annotations were recorded: the YAML's own, when literal
        annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if "{{" not in str(v)}
    name = str(document.get("name") or metadata.get("name") or run_dir.name)
    title = plain(str(annotations.get(TITLE) or name))
    nodes = _nodes(document)
    body = [markdown(str(annotations[DESCRIPTION])) if annotations.get(DESCRIPTION) else "",
            _summary(run_dir, document, name), _labels(document.get("labels")),
            _outputs(run_dir, document.get("outputs"))]
    if nodes:
        order = _order(nodes)
        caption = ("Each node's phase and duration; edges lead from a task to the tasks that depend on it. "
                   "Click a node for its row.")
        widest = max(Counter(_layers(nodes).values()).values())
        graph = figure(_graph_svg(nodes, order, document), caption) if widest <= _MAX_ROW else (
            f"<p class='muted'>Not drawn: {widest} nodes side by side would not be readable; the table has them "
            "all, in the same order.</p>")
        body += ["<h2>Graph</h2>", graph, "<h2>Nodes</h2>", _node_table(run_dir, document, nodes, order)]
    body.append(_parameters(document.get("parameters") or {}))
    return page(title, "".join(body), verdict_html=_verdict(document, nodes))


# -- the parts of the page --

def _verdict(document: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> str:
    phase = str(document.get("phase") or "Unknown")
    failed = [n["displayName"] for n in nodes.values()
              if n.get("phase") in ("Failed", "Error") and n.get("type") in ("Pod", "Retry")
              and not _is_attempt(n, nodes)]
    detail = str(document.get("message") or "")
    if failed:
        detail = f"failed: {', '.join(dict.fromkeys(failed))}" + (f"; {detail}" if detail else "")
    duration = document.get("duration")
    headline = phase + (f" in {_seconds(float(duration))}" if duration is not None and phase != "Running" else "")
    return verdict(headline, _TONES.get(phase, "warn"), detail)


def _summary(run_dir: Path, document: dict[str, Any], name: str) -> str:
    rows = [("Workflow", f"<code>{esc(name)}</code>")]
    workflow_node = (document.get("nodes") or {}).get(name) or {}
    if workflow_node.get("startedAt"):
        rows.append(("Started", esc(_when(workflow_node["startedAt"]))))
    if workflow_node.get("finishedAt"):
        rows.append(("Finished", esc(_when(workflow_node["finishedAt"]))))
    if document.get("duration") is not None:
        rows.append(("Duration", esc(_seconds(float(document["duration"])))))
    files = [_link(f) for f in ("workflow.yaml", "run.json", "configmaps.yaml") if (run_dir / f).exists()]
    rows.append(("Files", " · ".join(files)))
    return facts(rows)


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    return "<h2>Labels</h2><p>" + " ".join(tag(f"{k}={v}", "info") for k, v in sorted(labels.items())) + "</p>"


def _outputs(run_dir: Path, outputs: dict[str, Any] | None) -> str:
    """The workflow's outputs (the entrypoint's, as the UI's outputs panel shows them)."""
    parameters, artifacts = _named((outputs or {}).get("parameters")), _named((outputs or {}).get("artifacts"))
    if not parameters and not artifacts:
        return ""
    rows = [[esc(k), "parameter", f"<code>{esc(v)}</code>" if v is not None else "<span class='muted'>none</span>"]
            for k, v in parameters.items()]
    rows += [[esc(k), "artifact", _artifact(run_dir, k, v)] for k, v in artifacts.items()]
    return "<h2>Outputs</h2>" + table(["Name", "Kind", "Value"], rows)


def _parameters(parameters: dict[str, str]) -> str:
    if not parameters:
        return ""
    rows = [[f"<code>{esc(k)}</code>", f"<code>{esc(v)}</code>"] for k, v in parameters.items()]
    return "<h2>Parameters</h2>" + table(["Name", "Value"], rows)


def _node_table(run_dir: Path, document: dict[str, Any], nodes: dict[str, dict[str, Any]], order: list[str]) -> str:
    rows = []
    for ident in order:
        node = nodes[ident]
        rows.append(_node_row(run_dir, node, _record(node, document), depth=0, nodes=nodes))
        if node["type"] == "Retry" and len(node.get("children") or []) > 1:
            rows += [_node_row(run_dir, nodes[c], None, depth=1, nodes=nodes)
                     for c in node["children"] if c in nodes]
    return table(["Node", "Phase", "Started", "Duration", "Memory · CPU", "Outputs", "Log"], rows,
                 numeric=(2, 3, 4), caption="Started in UTC; memory: the peak resident memory of the task's "
                 "largest process; CPU: its processes' CPU time.")


def _node_row(run_dir: Path, node: dict[str, Any], record: dict[str, Any] | None, depth: int,
              nodes: dict[str, dict[str, Any]]) -> list[str]:
    ident = str(node["id"])
    name = ("↳ " if depth else "") + str(node["displayName"])
    kind = " · ".join(str(p) for p in (node.get("type"), node.get("templateName")) if p)
    outputs = node.get("outputs") or {}
    parts = [f"<code title='{esc(v)}'>{esc(k)}={esc(_short(str(v), 18))}</code>"
             for k, v in _named(outputs.get("parameters")).items() if v is not None]
    parts += [_artifact(run_dir, k, v) for k, v in _named(outputs.get("artifacts")).items()]
    used = ""
    if record and record.get("maxRSSBytes") is not None:
        used = f"{record['maxRSSBytes'] / 2**20:.0f} MiB · {float(record.get('cpuSeconds') or 0):.1f} s"
    started = _parse(node.get("startedAt"))
    return [f"<span id='{esc(_anchor(ident))}'>{esc(name)}</span><br><span class='muted'>{esc(kind)}</span>",
            tag(str(node.get("phase") or "?"), _TONES.get(str(node.get("phase")), "info"))
            + (f"<br><span class='muted'>{esc(node['message'])}</span>" if node.get("message") else ""),
            esc(started.strftime("%H:%M:%S") if started else ""), esc(_duration(node, record)), esc(used),
            "<br>".join(parts), _log(run_dir, node, nodes)]


def _record(node: dict[str, Any], document: dict[str, Any]) -> dict[str, Any] | None:
    """run.json's measured record of a node: a task's (duration to the millisecond, memory, CPU), the workflow's."""
    if node["id"] == document.get("name") and document.get("duration") is not None:
        return {"duration": document["duration"]}
    if node["type"] in ("Pod", "Retry"):
        record = (document.get("tasks") or {}).get(node["displayName"])
        return record if isinstance(record, dict) else None
    return None


def _log(run_dir: Path, node: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> str:
    """A Pod's log file (a Retry node: its last attempt's)."""
    pod = node
    if node.get("type") == "Retry":
        attempts = [nodes[c] for c in node.get("children") or [] if c in nodes]
        if not attempts:
            return ""
        pod = attempts[-1]
    if pod.get("type") != "Pod":
        return ""
    found = sorted((run_dir / "pods").glob(f"*-{fnv32a(str(pod['name']))}/log"))
    return _link(found[0].relative_to(run_dir).as_posix(), "log") if found else ""


def _artifact(run_dir: Path, name: str, key: Any) -> str:
    """A link to an artifact as the run's repository holds it: a report folder opens at its index.html."""
    if not key:
        return f"{esc(name)} <span class='muted'>(not saved)</span>"
    path = run_dir / "artifacts" / str(key)
    if path.is_dir() and (path / "index.html").is_file():
        path = path / "index.html"
    if not path.exists():
        return f"{esc(name)} <span class='muted'>(not in this folder)</span>"
    target = path.relative_to(run_dir).as_posix() + ("/" if path.is_dir() else "")
    kind = " (tgz)" if path.name.endswith((".tgz", ".tar.gz")) else ""
    return _link(target, name + kind)


def _link(relative: str, text: str | None = None) -> str:
    return f"<a href='{esc(quote(relative))}'>{esc(text if text is not None else relative)}</a>"


# -- the graph --

def _nodes(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nodes = document.get("nodes") or {}
    return {str(k): {**v, "id": str(v.get("id") or k), "displayName": str(v.get("displayName") or v.get("name") or k),
                     "type": str(v.get("type") or "")} for k, v in nodes.items() if isinstance(v, dict)}


def _is_attempt(node: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> bool:
    return any(n["type"] == "Retry" and node["id"] in (n.get("children") or []) for n in nodes.values())


def _edges(nodes: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What the UI draws: a Retry node stands for its attempts, whose children are the tasks that follow."""
    attempts = {c for n in nodes.values() if n["type"] == "Retry" for c in n.get("children") or []}
    edges: dict[str, list[str]] = {}
    for ident, node in nodes.items():
        if ident in attempts:
            continue
        children = node.get("children") or []
        if node["type"] == "Retry":
            children = [c for a in children if a in nodes for c in nodes[a].get("children") or []]
        edges[ident] = list(dict.fromkeys(c for c in children if c in nodes and c not in attempts))
    return edges


def _layers(nodes: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each shown node's depth: the longest path to it from a node nothing leads to; exit handlers last."""
    edges = _edges(nodes)
    incoming = {ident: 0 for ident in edges}
    for children in edges.values():
        for child in children:
            incoming[child] += 1
    depth = {ident: 0 for ident, count in incoming.items() if count == 0}
    ready = sorted(depth, key=lambda i: _start_key(nodes[i]))
    remaining = dict(incoming)
    while ready:
        ident = ready.pop(0)
        for child in edges[ident]:
            depth[child] = max(depth.get(child, 0), depth[ident] + 1)
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    for ident in edges:  # a cycle cannot happen in Argo's tree; if one did, show its nodes anyway
        depth.setdefault(ident, 0)
    last = max(depth.values(), default=0)
    for ident in depth:
        if str(nodes[ident].get("name", "")).endswith(".onExit") and incoming[ident] == 0:
            depth[ident] = last + 1
    return depth


def _order(nodes: dict[str, dict[str, Any]]) -> list[str]:
    """The shown nodes in dependency order (by depth, then start time, then name)."""
    depth = _layers(nodes)
    return sorted(depth, key=lambda i: (depth[i], *_start_key(nodes[i])))


def _graph_svg(nodes: dict[str, dict[str, Any]], order: list[str], document: dict[str, Any]) -> str:
    depth = _layers(nodes)
    rows: dict[int, list[str]] = {}
    for ident in order:
        rows.setdefault(depth[ident], []).append(ident)
    _under_parents(rows, _edges(nodes))
    widest = max(len(r) for r in rows.values())
    width = widest * (_BOX_W + _GAP_X) + _GAP_X
    height = len(rows) * (_BOX_H + _GAP_Y) + _GAP_Y - 10
    at: dict[str, tuple[float, float]] = {}
    for level, idents in rows.items():
        left = (width - len(idents) * (_BOX_W + _GAP_X) + _GAP_X) / 2
        for i, ident in enumerate(idents):
            at[ident] = (left + i * (_BOX_W + _GAP_X), _GAP_Y / 2 + level * (_BOX_H + _GAP_Y))
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' width='{width:.0f}' "
             f"height='{height:.0f}' role='img' aria-label='the workflow graph' "
             "font-family='-apple-system, Segoe UI, Noto Sans, Helvetica, Arial, sans-serif'>"]
    for ident, children in _edges(nodes).items():
        x0, y0 = at[ident][0] + _BOX_W / 2, at[ident][1] + _BOX_H
        for child in children:
            x1, y1 = at[child][0] + _BOX_W / 2, at[child][1]
            mid = (y0 + y1) / 2
            parts.append(f"<path d='M{x0:.0f},{y0:.0f} C{x0:.0f},{mid:.0f} {x1:.0f},{mid:.0f} {x1:.0f},{y1 - 4:.0f}' "
                         f"fill='none' stroke='#8c959f' stroke-width='1.5'/>"
                         f"<path d='M{x1 - 4:.0f},{y1 - 8:.0f} L{x1:.0f},{y1:.0f} L{x1 + 4:.0f},{y1 - 8:.0f}' "
                         "fill='none' stroke='#8c959f' stroke-width='1.5'/>")
    for ident in order:
        node, (x, y) = nodes[ident], at[ident]
        phase = str(node.get("phase") or "")
        colour = _COLOURS.get(phase, _GREY)
        label = _short(_label(node), 24)
        line = _short(" · ".join(p for p in (phase, _duration(node, _record(node, document)), _kind(node)) if p), 30)
        parts.append(f"<a href='#{esc(_anchor(ident))}'><title>{esc(node['displayName'])}: {esc(phase)}</title>"
                     f"<rect x='{x:.0f}' y='{y:.0f}' width='{_BOX_W}' height='{_BOX_H}' rx='6' fill='#ffffff' "
                     f"stroke='{colour}' stroke-width='2'/>"
                     f"<rect x='{x:.0f}' y='{y:.0f}' width='6' height='{_BOX_H}' rx='3' fill='{colour}'/>"
                     f"<text x='{x + 14:.0f}' y='{y + 19:.0f}' font-size='13' font-weight='600' fill='#1f2328'>"
                     f"{esc(label)}</text>"
                     f"<text x='{x + 14:.0f}' y='{y + 36:.0f}' font-size='12' fill='{colour}'>{esc(line)}</text></a>")
    parts.append("</svg>")
    return "".join(parts)


def _under_parents(rows: dict[int, list[str]], edges: dict[str, list[str]]) -> None:
    """Order each row by where its parents stand in the rows above (their mean position), keeping the dependency
    order among equals, so a step's children sit under it and edges do not cross between siblings' fan-outs."""
    parents: dict[str, list[str]] = {}
    for ident, children in edges.items():
        for child in children:
            parents.setdefault(child, []).append(ident)
    position: dict[str, float] = {}
    for level in sorted(rows):
        idents = rows[level]
        if level > min(rows):
            def place(i: str) -> float:
                above = [position[p] for p in parents.get(i, []) if p in position]
                return sum(above) / len(above) if above else float("inf")
            idents.sort(key=place)  # stable: equals keep their order
        position.update({ident: float(i) for i, ident in enumerate(idents)})


def _label(node: dict[str, Any]) -> str:
    """A box's name: its display name; an exit handler by what it runs (its display name repeats the workflow's)."""
    name = str(node["displayName"])
    if name.endswith(".onExit"):
        return f"onExit: {node.get('templateName') or ''}".rstrip(": ")
    return name


def _kind(node: dict[str, Any]) -> str:
    kind = node["type"]
    if kind == "Retry":
        return f"{len(node.get('children') or [])} attempt(s)" if len(node.get("children") or []) > 1 else ""
    return "" if kind in ("Pod", "Skipped") else kind


# -- markdown: the safe subset Argo's UI renders in titles and descriptions --

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_BARE_URL = re.compile(r"(?<![\"'=>])\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)]")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)")
_ITEM = re.compile(r"^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$")


def markdown(text: str) -> str:
    """Markdown to HTML, a subset, everything escaped: paragraphs, `-`/`1.` lists, `#` headings, fenced code,
    and inline **bold**, *emphasis*, `code` and links (http, https, mailto or relative; other schemes stay text)."""
    out: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.lstrip().startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("```")), len(lines))
            out.append(f"<pre><code>{esc(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
        elif re.match(r"^#{1,6}\s", line):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)  # under the page's h1 and h2
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif _ITEM.match(line):
            ordered = _ITEM.match(line).group(1) is not None  # type: ignore[union-attr]
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                found = _ITEM.match(lines[i])
                if found:
                    items.append(found.group(2))
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            tag_name = "ol" if ordered else "ul"
            out.append(f"<{tag_name}>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + f"</{tag_name}>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _ITEM.match(lines[i]) \
                    and not lines[i].lstrip().startswith("```") and not re.match(r"^#{1,6}\s", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")  # a single newline is a space, as in Argo's UI
    return "".join(out)


def plain(text: str) -> str:
    """Markdown's text without its marks (for the page's title)."""
    text = _LINK.sub(r"\1", text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    return re.sub(r"`+", "", text).strip()


def _inline(text: str) -> str:
    pieces = []
    last = 0
    for found in _CODE_SPAN.finditer(text):
        pieces.append(_inline_text(text[last:found.start()]))
        pieces.append(f"<code>{esc(found.group(2).strip())}</code>")
        last = found.end()
    pieces.append(_inline_text(text[last:]))
    return "".join(pieces)


def _inline_text(text: str) -> str:
    links: list[str] = []

    def keep(html: str) -> str:
        links.append(html)
        return f"\x00{len(links) - 1}\x00"

    def link(found: re.Match[str]) -> str:
        label, url = found.group(1), found.group(2)
        if not _safe_url(url):
            return keep(esc(label))
        return keep(f"<a href='{esc(url)}'>{_emphasis(esc(label))}</a>")

    text = _LINK.sub(link, text)
    text = _BARE_URL.sub(lambda m: keep(f"<a href='{esc(m.group(0))}'>{esc(m.group(0))}</a>"), text)
    html = _emphasis(esc(text))
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], html)


def _emphasis(html: str) -> str:
    html = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", html)
    return _EMPHASIS.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", html)


def _safe_url(url: str) -> bool:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    return scheme is None or scheme.group(1).lower() in ("http", "https", "mailto")


# -- small helpers --

def _workflow(path: Path) -> dict[str, Any] | None:
    """The Workflow or WorkflowTemplate in the run's YAML (it may also hold ConfigMaps)."""
    try:
        documents: Iterable[Any] = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError):
        return None
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"):
            return doc
    return None


def _named(values: Any) -> dict[str, Any]:
    """Outputs by name, from run.json's maps or Argo's lists of {name, value|key|path}."""
    if isinstance(values, dict):
        return dict(values)
    if isinstance(values, list):
        return {str(v.get("name")): v.get("value", v.get("key", v.get("path"))) for v in values
                if isinstance(v, dict)}
    return {}


def _duration(node: dict[str, Any], record: dict[str, Any] | None) -> str:
    if node.get("phase") in ("Skipped", "Omitted"):
        return ""
    if record and record.get("duration") is not None:
        return _seconds(float(record["duration"]))
    started, finished = _parse(node.get("startedAt")), _parse(node.get("finishedAt"))
    if started is None:
        return ""
    if finished is None:
        return "running" if node.get("phase") in ("Running", "Pending") else ""
    return _seconds((finished - started).total_seconds())


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _parse(stamp: Any) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def _when(stamp: Any) -> str:
    parsed = _parse(stamp)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else ""


def _start_key(node: dict[str, Any]) -> tuple[str, str]:
    return (str(node.get("startedAt") or "9999"), str(node.get("displayName") or ""))


def _anchor(ident: str) -> str:
    return "node-" + re.sub(r"[^A-Za-z0-9_-]", "-", ident)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
