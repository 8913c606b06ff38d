"""The outcome of a local run: `run.json` in the run folder (a RunDocument, the workflow's and every node's phase as
Argo reports them, and what each pod used as the runner measured it), rewritten atomically as the run goes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from steps._core.documents import NodeRecord, RunDocument
from steps._core.files import write_text
from workflows.local.engine.nodes import Node, NodeTree, Outputs, fnv32a
from workflows.local.engine.sandbox import USAGE_SUFFIX

RUN_JSON = "run.json"


class NodeDocument(TypedDict, total=False):
    """One node of run.json's `nodes` (Argo's status.nodes[id]); `outputs.result` only when Argo captured it."""

    id: str
    name: str
    displayName: str
    type: str
    phase: str
    message: str
    templateName: str | None
    templateScope: str
    boundaryID: str | None
    children: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    startedAt: str | None
    finishedAt: str | None
    memoized: bool
    # A Pod node's Argo ResourcesDuration ({"cpu": 1-CPU seconds, "memory": 100Mi seconds}) from what it used
    # (CPU time; peak resident memory over its duration), where Argo estimates it from the pod's requests.
    resourcesDuration: dict[str, int]


class WorkflowDocument(RunDocument):
    """run.json of `mlops run --from` and the Python API: a RunDocument (its `tasks`, one per step or task that ran
    a pod, by display name; the Workflow's labels, annotations and the entrypoint's outputs) with Argo's view
    added: status.outputs (the outputs exported with `globalName`, what `argo get` prints as Output Parameters) and
    every node (status.nodes)."""

    globalOutputs: dict[str, Any]
    nodes: dict[str, NodeDocument]


def iso(timestamp: float | None) -> str | None:
    """Argo's metav1.Time: RFC 3339, UTC, whole seconds."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_document(node: Node, usage: Usage | None = None) -> NodeDocument:
    document: NodeDocument = {
        "id": node.id, "name": node.name, "displayName": node.display_name, "type": node.type,
        "phase": node.phase, "message": node.message, "templateName": node.template_name,
        "templateScope": node.template_scope, "boundaryID": node.boundary_id, "children": list(node.children),
        "inputs": {"parameters": {p.name: p.value for p in node.inputs.parameters}},
        "outputs": outputs_document(node.outputs), "startedAt": iso(node.started_at),
        "finishedAt": iso(node.finished_at), "memoized": node.memoized,
    }
    if usage is not None and node.started_at is not None and node.finished_at is not None:
        seconds = node.finished_at - node.started_at
        document["resourcesDuration"] = {"cpu": round(usage["cpuSeconds"]),
                                         "memory": round(usage["maxRSSBytes"] / _MEMORY_UNIT * seconds)}
    return document


class Usage(TypedDict):
    """What a pod's processes used, as the runner measured them (os.wait4, see sandbox.Process): the peak resident
    memory of the largest, in bytes, and the CPU time (user + system) of all, in seconds."""

    maxRSSBytes: int
    cpuSeconds: float


_MEMORY_UNIT = 100 * 2**20  # Argo's denominator for memory: 100Mi


def pod_usage(pod_dir: Path) -> Usage | None:
    """The usage of a pod's containers (each `<container>.usage.json`): the largest peak, the CPU time summed; None
    when none was measured (no process ended yet)."""
    found: list[dict[str, Any]] = []
    for path in sorted(pod_dir.glob(f"*{USAGE_SUFFIX}")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being written, or not ours: not measured
    if not found:
        return None
    return {"maxRSSBytes": max(int(u.get("maxRSSBytes") or 0) for u in found),
            "cpuSeconds": round(sum(float(u.get("cpuSeconds") or 0.0) for u in found), 3)}


def outputs_document(outputs: Outputs | None) -> dict[str, Any]:
    """`parameters` by name (None: no value), `artifacts` by name (the repository key), `exitCode`, and `result`
    only when captured."""
    if outputs is None:
        return {"parameters": {}, "artifacts": {}, "exitCode": None}
    document: dict[str, Any] = {
        "parameters": {p.name: p.value for p in outputs.parameters},
        "artifacts": {a.name: a.key for a in outputs.artifacts}, "exitCode": outputs.exit_code,
    }
    if outputs.result is not None:
        document["result"] = outputs.result
    located = {a.name: {"s3": {"key": a.s3_key}} for a in outputs.artifacts if a.s3_key is not None}
    if located:  # where Argo's status.nodes records a key-only artifact: its s3.key
        document["artifactLocations"] = located
    return document


def entry_outputs(outputs: Outputs | None, run_dir: Path | None) -> dict[str, Any]:
    """RunDocument's `outputs`: the entrypoint node's parameters (those with a value) and artifacts (their path
    in the run folder's repository, as `tasks` gives them)."""
    if outputs is None:
        return {"parameters": {}, "artifacts": {}}
    return {"parameters": {p.name: p.value for p in outputs.parameters if p.value is not None},
            "artifacts": {a.name: str(run_dir / "artifacts" / a.key) if run_dir else a.key
                          for a in outputs.artifacts if a.key}}


def workflow_document(tree: NodeTree, phase: str, message: str, outputs: Outputs | None,
                      parameters: dict[str, str], duration: float, run_dir: Path | None = None, *,
                      metadata: dict[str, dict[str, str]] | None = None) -> WorkflowDocument:
    """`outputs`: status.outputs; `metadata`: the Workflow's `labels` and `annotations`."""
    entry = tree.by_name(tree.workflow)
    return {
        "name": tree.workflow, "phase": phase, "message": message, "parameters": parameters,
        "duration": round(duration, 3), "tasks": task_records(tree, run_dir),
        "labels": dict((metadata or {}).get("labels") or {}),
        "annotations": dict((metadata or {}).get("annotations") or {}),
        "outputs": entry_outputs(entry.outputs if entry is not None else None, run_dir),
        "globalOutputs": outputs_document(outputs),
        "nodes": {ident: node_document(node, _usage(run_dir, tree.workflow, node))
                  for ident, node in tree.nodes.items()},
    }


def _usage(run_dir: Path | None, workflow: str, node: Node) -> Usage | None:
    if run_dir is None or node.type != "Pod":
        return None
    return pod_usage(run_dir / "pods" / pod_name(workflow, node))


def task_records(tree: NodeTree, run_dir: Path | None) -> dict[str, NodeRecord]:
    """RunDocument's `tasks`: each node that ran a pod (a Retry node: its last attempt), by display name."""
    retried = {c for n in tree.nodes.values() if n.type == "Retry" for c in n.children}
    records: dict[str, NodeRecord] = {}
    for node in tree.nodes.values():
        if node.type not in ("Pod", "Retry") or node.id in retried:
            continue
        attempts = tree.children(node) if node.type == "Retry" else [node]
        last = attempts[-1] if attempts else node
        outputs = node.outputs or last.outputs or Outputs()
        code = outputs.exit_code
        duration = None if node.started_at is None or node.finished_at is None else node.finished_at - node.started_at
        log = run_dir / "pods" / pod_name(tree.workflow, last) / "log" if run_dir is not None else None
        records[node.display_name] = {
            "template": str(node.template_name or (node.extra.get("templateRef") or {}).get("template") or ""),
            "phase": node.phase, "message": node.message,
            "exitCode": int(code) if code is not None and code.lstrip("-").isdigit() else None,
            "attempts": len(attempts), "duration": None if duration is None else round(duration, 3),
            "outputs": {"parameters": {p.name: p.value for p in outputs.parameters if p.value is not None},
                        "artifacts": {a.name: str(run_dir / "artifacts" / a.key) if run_dir else a.key
                                      for a in outputs.artifacts if a.key}},
            "log": str(log) if log is not None and log.exists() else "",
        }
        usage = _usage(run_dir, tree.workflow, last)
        if usage is not None:
            records[node.display_name]["maxRSSBytes"] = usage["maxRSSBytes"]
            records[node.display_name]["cpuSeconds"] = usage["cpuSeconds"]
    return records


def pod_name(workflow: str, node: Node) -> str:
    """GeneratePodName (pod name version v2): `<workflow>-<template>-<fnv32a(node name)>`."""
    if node.name == workflow:
        return workflow
    ref = node.extra.get("templateRef") or {}
    template = ref.get("template") or node.template_name or ""
    prefix = workflow if ".inline" in node.name else f"{workflow}-{template}"
    return f"{prefix[:242]}-{fnv32a(node.name)}"


def write_workflow_json(run_dir: Path, document: WorkflowDocument) -> None:
    write_text(run_dir / RUN_JSON, json.dumps(document, indent=2) + "\n")
