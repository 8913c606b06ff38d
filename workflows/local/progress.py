"""What `mlops run` prints: a line per node event while the workflow runs, readable in CI logs, Argo's node tree
at its end, and for our own templates what their reports say (the registered version, how the rollout ended, the
gate's verdicts, where the reports are)."""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TextIO, cast

from steps._core.documents import GateReport, NodeRecord
from workflows.local.engine.nodes import Node, NodeTree, node_id
from workflows.local.record import Usage, pod_name, pod_usage


class Progress:
    """One line per task event, readable in CI logs; colours only on a terminal (and without NO_COLOR)."""

    COLOURS: ClassVar[dict[str, str]] = {"Succeeded": "32", "Failed": "31", "Error": "31", "Interrupted": "31",
                                         "Skipped": "33", "Omitted": "33", "Retrying": "33"}

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() and not os.environ.get("NO_COLOR")
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.width = 12

    def paint(self, text: str, phase: str) -> str:
        code = self.COLOURS.get(phase)
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def task(self, name: str, text: str, phase: str = "") -> None:
        self.line(f"{time.monotonic() - self.start:7.1f}s  {name:<{self.width}} {self.paint(text, phase)}")


class NodeProgress:
    """The engine's progress callback: a line each time a node that runs something (a pod, a suspend, an HTTP
    request) changes phase, with its message when it has one; a pod that failed shows its log's last lines
    (`run_dir/pods/<pod>/log`) when the run folder is known."""

    SHOWN = ("Pod", "Suspend", "HTTP", "Container")
    TAIL = 8

    def __init__(self, progress: Progress, run_dir: Path | None = None):
        self.progress = progress
        self.run_dir = run_dir
        self.seen: dict[str, str] = {}

    def __call__(self, tree: NodeTree) -> None:
        for node in tree.nodes.values():
            if node.type not in self.SHOWN or self.seen.get(node.id) == node.phase:
                continue
            self.seen[node.id] = node.phase
            self.progress.width = max(self.progress.width, min(len(node.display_name), 40))
            text = node.phase + (f": {node.message}" if node.message else "")
            usage = self._usage(tree, node)
            self.progress.task(node.display_name, text + (f"  ({usage_text(usage)})" if usage else ""), node.phase)
            if node.type == "Pod" and node.phase in ("Failed", "Error") and self.run_dir is not None:
                self._tail(self.run_dir / "pods" / pod_name(tree.workflow, node) / "log")

    def _usage(self, tree: NodeTree, node: Node) -> Usage | None:
        """A pod's measured usage once it ended (its processes reaped), else None."""
        if node.type != "Pod" or node.phase not in ("Succeeded", "Failed", "Error") or self.run_dir is None:
            return None
        return pod_usage(self.run_dir / "pods" / pod_name(tree.workflow, node))

    def _tail(self, log: Path) -> None:
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-self.TAIL:]
        except OSError:
            return
        if lines:
            self.progress.line("\n".join(f"{'':>10}| {line}" for line in lines) + f"\n{'':>10}(log: {log})")


def usage_text(usage: Usage) -> str:
    """`peak memory 1.21 GiB, CPU 14.2 s`: a pod's peak resident memory (its largest process) and CPU time."""
    return f"peak memory {memory_text(usage['maxRSSBytes'])}, CPU {usage['cpuSeconds']:.1f} s"


def memory_text(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.{2 if unit == 'GiB' else 0}f} {unit}"
    return f"{size} B"


# --- the summary -----------------------------------------------------------------------------------------


def report_lines(tasks: Mapping[str, NodeRecord], parameters: Mapping[str, str]) -> list[str]:
    """What our own templates' reports say, from run.json's `tasks`: the registered version, how the rollout
    ended, the candidate's metrics and each gate's verdict, each task's peak memory and CPU time (as the runner
    measured them), and where the reports are."""
    lines = []
    gates = [g for t in tasks.values() for p in t["outputs"]["artifacts"].values() if (g := _gate_report(Path(p)))]
    versions = [str(t["outputs"]["parameters"]["version"]) for t in tasks.values()
                if t["outputs"]["parameters"].get("version")]
    if versions:
        rejected = any(not g.get("passed") for g in gates)
        model = parameters.get("model") or next((g["model"] for g in gates if g.get("model")), "model")
        lines.append(f"Registered: {model} v{versions[-1]} ({'rejected' if rejected else 'staged'})")
        rollout = tasks.get("rollout")
        if rollout is not None and rollout["phase"] in ("Succeeded", "Failed"):
            lines.append(f"Rollout: {model} v{versions[-1]} " + (
                "promoted to production" if rollout["phase"] == "Succeeded"
                else f"not promoted: {rollout['message'] or 'the canary failed'} (see {rollout['log']})"))
    for gate in gates:
        lines += _gate_lines(gate)
    measured = [(name, t["maxRSSBytes"], t.get("cpuSeconds", 0.0)) for name, t in tasks.items() if "maxRSSBytes" in t]
    if measured:
        lines.append("Peak memory (CPU time): " + ", ".join(f"{name} {memory_text(rss)} ({cpu:.1f} s)"
                                                           for name, rss, cpu in measured))
    artifacts = [(name, a, p) for name, t in tasks.items() for a, p in t["outputs"]["artifacts"].items()]
    if artifacts:
        lines.append("Reports and artifacts:")
        for task_name, art_name, path in artifacts:
            lines.append(f"  {task_name}.{art_name}: {_describe_artifact(Path(path))}")
    return lines


def _gate_report(path: Path) -> GateReport | None:
    """The gate.json of an artifact (a file, a folder, or the repository's tar.gz of either). Read with .get():
    a stand-in step may write only part of it."""
    try:
        text = _member(path, "gate.json")
        report = json.loads(text) if text is not None else None
    except (OSError, ValueError, tarfile.TarError):
        return None
    return cast(GateReport, report) if isinstance(report, dict) else None


def _member(path: Path, name: str) -> str | None:
    if path.is_dir():
        return (path / name).read_text(encoding="utf-8") if (path / name).is_file() else None
    if path.name == name and path.is_file():
        return path.read_text(encoding="utf-8")
    if path.name.endswith(".tgz") and path.is_file():
        with tarfile.open(path, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and Path(m.name).name == name), None)
            data = tar.extractfile(member) if member is not None else None
            return data.read().decode("utf-8") if data is not None else None
    return None


def _gate_lines(report: GateReport) -> list[str]:
    lines = [f"Gate: {'PASSED' if report.get('passed') else 'REJECTED'}"
             + (f" (failed: {', '.join(report.get('failed') or [])})" if report.get("failed") else "")]
    metrics = report.get("candidate") or {}
    if isinstance(metrics, dict) and metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={_number(v)}" for k, v in metrics.items()))
    baseline: Any = report.get("baseline") or {}
    against = f"v{baseline.get('version')}" if isinstance(baseline, dict) and baseline.get("version") else "baseline"
    for gate in report.get("gates") or []:
        if not isinstance(gate, dict):
            continue
        status = gate.get("status") or ("pass" if gate.get("passed") else "fail")
        bound = f" {gate.get('bound_kind', '')} {_number(gate.get('bound'))}" if gate.get("bound") is not None else ""
        compared = (f", {against} {_number(gate.get('baseline_value'))}"
                    if gate.get("baseline_value") is not None else "")
        note = f" ({_clip(str(gate['note']), 100)})" if gate.get("note") and status != "pass" else ""
        lines.append(f"  {status.upper() if status == 'fail' else status:<7} {gate.get('name')}: "
                     f"{_number(gate.get('value'))}{bound}{compared}{note}")
    skipped = report.get("skipped") or []
    if skipped:
        lines.append(f"  {len(skipped)} gate(s) skipped, not evaluated: {', '.join(skipped)}")
    return lines


def _describe_artifact(path: Path) -> str:
    try:
        if path.is_dir():
            names = sorted(p.name for p in path.iterdir())
        elif path.name.endswith(".tgz") and path.is_file():
            with tarfile.open(path, "r:gz") as tar:
                names = sorted({Path(m.name).name for m in tar.getmembers() if "/" in m.name.strip("/")})
        else:
            return str(path)
    except (OSError, tarfile.TarError):
        return str(path)
    if not names:
        return str(path)
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    if path.is_dir() and "index.html" in names:  # a report folder: its page first (Argo's UI opens it there)
        return f"{path / 'index.html'} ({shown})"
    return f"{path} ({shown})"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _short(value: str) -> str:
    return _clip(value, 16)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# --- the node tree, as `argo get` prints it (cmd/argo/commands/common/get.go) ------------------------------

ICONS = {"Pending": "◷", "Running": "●", "Succeeded": "✔", "Skipped": "○", "Failed": "✖", "Error": "⚠"}
_BOUNDARY, _PARENT = ("DAG", "Steps"), ("StepGroup", "Retry")
_EXECUTION = ("Pod", "Skipped", "Suspend", "HTTP", "Plugin")
_INDEX = re.compile(r"\((\d+)[:)]|\[(\d+)\]")


TITLE = "workflows.argoproj.io/title"
DESCRIPTION = "workflows.argoproj.io/description"


def header_lines(name: str, phase: str, message: str, parameters: list[dict[str, Any]],
                 outputs: dict[str, str | None], annotations: dict[str, str] | None = None) -> list[str]:
    """The lines above argo get's tree (PrintWorkflowHelper, "%-20s %v"): name, status, message, the workflow's
    parameters that have a value and its output parameters. `argo get` does not print the title and description
    annotations (the Argo UI shows them in its workflow list, in place of the name); ours does, after the name,
    in the same format: the title, and the description's first line."""
    lines = [f"{'Name:':<20} {name}"]
    title = (annotations or {}).get(TITLE, "")
    description = next((line.strip() for line in (annotations or {}).get(DESCRIPTION, "").splitlines()
                        if line.strip()), "")
    if title:
        lines.append(f"{'Title:':<20} {title}")
    if description:
        lines.append(f"{'Description:':<20} {description}")
    lines.append(f"{'Status:':<20} {phase}")
    if message:
        lines.append(f"{'Message:':<20} {message}")
    given = [p for p in parameters if p.get("value") is not None]
    if given:
        lines.append(f"{'Parameters:':<20} ")
        lines += [f"{'  ' + str(p.get('name')) + ':':<20} {p['value']}" for p in given]
    if outputs:
        lines.append(f"{'Output Parameters:':<20} ")
        lines += [f"{'  ' + k + ':':<20} {v}" for k, v in outputs.items() if v is not None]
    return lines


def tree_lines(tree: NodeTree) -> list[str]:
    """The STEP / TEMPLATE / PODNAME / DURATION / MESSAGE table of `argo get`: the entrypoint's tree, then the
    workflow's exit handler's. Children in start order (ties: the loop or group index, then the name), StepGroup
    nodes' children indented under them, a Retry node with one attempt and Omitted nodes not shown."""
    contained: dict[str, list[Node]] = {}
    parent_of = {child: node.id for node in tree.nodes.values() if node.type in _PARENT for child in node.children}
    roots: dict[str, Node] = {}
    for node in tree.nodes.values():
        if node.type not in (*_BOUNDARY, *_PARENT, *_EXECUTION):
            continue
        if node.id in parent_of:
            contained.setdefault(parent_of[node.id], []).append(node)
        elif node.boundary_id:
            contained.setdefault(node.boundary_id, []).append(node)
        else:
            roots[node.id] = node
    rows: list[list[str]] = [["STEP", "TEMPLATE", "PODNAME", "DURATION", "MESSAGE"]]
    main = roots.get(tree.workflow)
    if main is not None:
        _render(tree, main, contained, " ", " ", rows)
    on_exit = roots.get(node_id(tree.workflow, f"{tree.workflow}.onExit"))
    if on_exit is not None:
        rows.append(["", "", "", "", ""])
        _render(tree, on_exit, contained, " ", " ", rows)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return [("".join(f"{cell:<{widths[i]}}  " for i, cell in enumerate(row[:4])) + row[4]).rstrip() for row in rows]


def _render(tree: NodeTree, node: Node, contained: dict[str, list[Node]], node_prefix: str, child_prefix: str,
            rows: list[list[str]]) -> None:
    filtered = (node.type == "Retry" and len(node.children) == 1) or node.type == "StepGroup" or (
        node.type == "Skipped" and node.phase == "Omitted")
    child_indent = node.type == "StepGroup"
    if not filtered:
        rows.append(_row(tree, node, node_prefix))
    children = sorted(contained.get(node.id, []), key=_order)
    last = len(children) - 1
    for i, child in enumerate(children):
        part, sub = "", ""
        if filtered and child_indent:
            part, sub = (("──", "  ") if last == 0 else ("┬─", "│ ") if i == 0 else ("└─", "  ") if i == last
                         else ("├─", "│ "))
        elif not filtered:
            part, sub = ("└─", "  ") if i == last else ("├─", "│ ")
        if not filtered:
            _render(tree, child, contained, child_prefix + part, child_prefix + sub, rows)
        else:
            _render(tree, child, contained, (node_prefix if i == 0 else child_prefix) + part, child_prefix + sub,
                    rows)


def _order(node: Node) -> tuple[float, int, str]:
    match = _INDEX.search(node.display_name)
    index = int(match.group(1) or match.group(2)) if match else -1
    return (int(node.started_at or 0), index, node.display_name)


def _row(tree: NodeTree, node: Node, prefix: str) -> list[str]:
    icon = "ǁ" if node.type == "Suspend" and node.phase in ("Pending", "Running") else ICONS.get(node.phase, "")
    ref = node.extra.get("templateRef") or {}
    template = f"{ref.get('name')}/{ref.get('template')}" if ref else node.template_name or ""
    if node.type != "Pod":
        return [f"{prefix}{icon} {node.display_name}", template, "", "", node.message]
    return [f"{prefix}{icon} {node.display_name}", template, pod_name(tree.workflow, node),
            short_duration(node.started_at, node.finished_at), node.message]


def short_duration(start: float | None, finish: float | None) -> str:
    """humanize.RelativeDurationShort: whole seconds, minutes, hours or days."""
    if start is None:
        return ""
    seconds = int((finish if finish is not None else time.time()) - start)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
