"""What `mlops run` prints: a line per task event while the workflow runs, readable in CI logs, and the summary
at its end (every task, the registered version, how the rollout ended, the gate's verdicts, the reports)."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, TextIO, cast

from steps._core.documents import GateReport
from workflows.local.engine.nodes import Node, NodeTree, node_id
from workflows.local.record import RunResult, pod_name


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
    request) changes phase, with its message when it has one."""

    SHOWN = ("Pod", "Suspend", "HTTP", "Container")

    def __init__(self, progress: Progress):
        self.progress = progress
        self.seen: dict[str, str] = {}

    def __call__(self, tree: NodeTree) -> None:
        for node in tree.nodes.values():
            if node.type not in self.SHOWN or self.seen.get(node.id) == node.phase:
                continue
            self.seen[node.id] = node.phase
            self.progress.width = max(self.progress.width, min(len(node.display_name), 40))
            text = node.phase + (f": {node.message}" if node.message else "")
            self.progress.task(node.display_name, text, node.phase)


# --- the summary -----------------------------------------------------------------------------------------


def print_summary(result: RunResult, progress: Progress, entrypoint: str | None = None) -> None:
    """Argo's node tree (when the entrypoint is known), then every task, the registered version, the gates."""
    out = progress.line
    if entrypoint is not None:
        out("")
        for line in tree_lines(tree_of_tasks(result, entrypoint)):
            out(line)
    out("")
    out(f"{result.name}: {progress.paint(result.phase, result.phase)} in {result.duration:.1f}s"
        + (f" ({result.message})" if result.message else ""))
    width = max([4, *(len(n) for n in result.tasks)])
    out(f"  {'TASK':<{width}}  {'STATUS':<9}  {'DURATION':>8}  ATTEMPTS  OUTPUTS")
    for name, task in result.tasks.items():
        duration = f"{task.duration:.1f}s" if task.duration is not None else "-"
        outputs = " ".join(f"{k}={_short(v)}" for k, v in task.parameters.items())
        out(f"  {name:<{width}}  {progress.paint(f'{task.phase:<9}', task.phase)}  {duration:>8}  "
            f"{task.attempts or '-':>8}  {outputs}")
    for line in _report_lines(result):
        out(line)
    out(f"Run folder: {result.run_dir} (workflow.yaml, run.json, tasks/<task>/log)")


def _report_lines(result: RunResult) -> list[str]:
    """What the reports say: the registered version, the candidate's metrics and each gate's verdict."""
    lines = []
    gates = [g for t in result.tasks.values() for p in t.artifacts.values() if (g := _gate_report(Path(p)))]
    versions = [t.parameters["version"] for t in result.tasks.values() if t.parameters.get("version")]
    if versions:
        rejected = any(not g.get("passed") for g in gates)
        model = result.parameters.get("model") or next((g["model"] for g in gates if g.get("model")), "model")
        lines.append(f"Registered: {model} v{versions[-1]} ({'rejected' if rejected else 'staged'})")
        rollout = result.tasks.get("rollout")
        if rollout is not None and rollout.phase in ("Succeeded", "Failed"):
            lines.append(f"Rollout: {model} v{versions[-1]} " + (
                "promoted to production" if rollout.phase == "Succeeded"
                else f"not promoted: {rollout.message or 'the canary failed'} "
                     f"(see {result.run_dir / 'tasks' / 'rollout' / 'log'})"))
    for gate in gates:
        lines += _gate_lines(gate)
    artifacts = [(t.name, a, p) for t in result.tasks.values() for a, p in t.artifacts.items()]
    if artifacts:
        lines.append("Reports and artifacts:")
        for task_name, art_name, path in artifacts:
            lines.append(f"  {task_name}.{art_name}: {_describe_artifact(Path(path))}")
    return lines


def _gate_report(path: Path) -> GateReport | None:
    """The gate.json among a task's artifacts. Read with .get(): a stand-in step may write only part of it."""
    candidate = path / "gate.json" if path.is_dir() else path
    if candidate.name != "gate.json" or not candidate.is_file():
        return None
    try:
        report = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cast(GateReport, report) if isinstance(report, dict) else None


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
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return f"{path}/ ({shown})"
    return str(path)


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


def header_lines(name: str, phase: str, message: str, parameters: list[dict[str, Any]],
                 outputs: dict[str, str | None]) -> list[str]:
    """The lines above argo get's tree (PrintWorkflowHelper, "%-20s %v"): name, status, message, the workflow's
    parameters that have a value and its output parameters."""
    lines = [f"{'Name:':<20} {name}", f"{'Status:':<20} {phase}"]
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


def tree_of_tasks(result: RunResult, entrypoint: str) -> NodeTree:
    """The node tree Argo keeps for a DAG of tasks, from the current runner's task states: the DAG node named after
    the workflow, each task a Pod node (Skipped when it did not run) within it."""
    tree = NodeTree(result.name)
    started = [t.started for t in result.tasks.values() if t.started is not None]
    finished = [t.finished for t in result.tasks.values() if t.finished is not None]
    root = tree.add(Node(result.name, result.name, result.name, "DAG", result.phase, result.message,
                         template_name=entrypoint, started_at=min(started, default=None),
                         finished_at=max(finished, default=None)))
    for task in result.tasks.values():
        name = f"{result.name}.{task.name}"
        kind = "Skipped" if task.phase in ("Skipped", "Omitted") else "Pod"
        tree.add(Node(node_id(result.name, name), name, task.name, kind, task.phase, task.message,
                      template_name=task.template, boundary_id=root.id, started_at=task.started,
                      finished_at=task.finished), root)
    return tree


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
