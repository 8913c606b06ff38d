"""What a run keeps in its folder when it stops at an indefinite suspend, so `mlops run --resume RUN` continues it
as `argo resume` would: the node tree, the global variables, the workflow's outputs and its start time, in
`<run_dir>/engine-state.json`. Resuming reads them back; the suspend nodes then succeed with the supplied values
or their defaults (operator.go:4003-4013, workflow/util/util.go:503-517) and the passes go on.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workflows.local.engine.nodes import ArtifactRef, Inputs, Node, NodeTree, Outputs, Parameter

STATE_FILE = "engine-state.json"


class ResumeError(ValueError):
    """The run folder holds no suspended run to resume."""


def save(run_dir: Path, tree: NodeTree, globals_: dict[str, str], outputs: Outputs, started: float,
         suspended: list[str], meta: dict[str, dict[str, str]] | None = None) -> Path:
    """`meta`: the Workflow's labels and annotations so far (`{"labels": ..., "annotations": ...}`)."""
    path = run_dir / STATE_FILE
    data = {"workflow": tree.workflow, "started": started, "globals": globals_, "outputs": asdict(outputs),
            "suspended": suspended, "nodes": [asdict(n) for n in tree.nodes.values()], "meta": meta}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)
    return path


def _outputs(raw: dict[str, Any] | None) -> Outputs | None:
    if raw is None:
        return None
    return Outputs(parameters=[Parameter(**p) for p in raw.get("parameters") or []],
                   artifacts=[ArtifactRef(**a) for a in raw.get("artifacts") or []], result=raw.get("result"),
                   exit_code=raw.get("exit_code"))


def _node(raw: dict[str, Any]) -> Node:
    inputs = raw.pop("inputs") or {}
    outputs = raw.pop("outputs")
    node = Node(**raw)
    node.inputs = Inputs(parameters=[Parameter(**p) for p in inputs.get("parameters") or []],
                         artifacts=[ArtifactRef(**a) for a in inputs.get("artifacts") or []])
    node.outputs = _outputs(outputs)
    return node


def load(run_dir: Path) -> tuple[NodeTree, dict[str, str], Outputs, float, list[str]]:
    """The saved tree, globals, outputs, start time and suspended node names."""
    path = run_dir / STATE_FILE
    if not path.exists():
        raise ResumeError(f"{run_dir} holds no suspended run ({STATE_FILE} is missing)")
    data = json.loads(path.read_text())
    tree = NodeTree(data["workflow"])
    for raw in data["nodes"]:
        tree.add(_node(raw))
    outputs = _outputs(data.get("outputs")) or Outputs()
    return tree, dict(data["globals"]), outputs, float(data["started"]), list(data.get("suspended") or [])


def load_meta(run_dir: Path) -> dict[str, dict[str, str]] | None:
    """The Workflow's labels and annotations saved with the state (None: saved before they were kept)."""
    data = json.loads((run_dir / STATE_FILE).read_text())
    meta = data.get("meta")
    return {k: {str(a): str(b) for a, b in (meta.get(k) or {}).items()} for k in ("labels", "annotations")} \
        if isinstance(meta, dict) else None


def discard(run_dir: Path) -> None:
    (run_dir / STATE_FILE).unlink(missing_ok=True)
