"""Tiny WorkflowTemplates for the local engine's tests, whose containers run `python -c ...`, and a way to run
them through the same path as `mlops run --from FILE` (written to disk, read back, checked, executed). Their
outputs are read the Argo way: output parameters and artifacts, node phases, run.json."""

from __future__ import annotations

import copy
import io
import tarfile
from pathlib import Path
from typing import Any

from steps._core.documents import NodeRecord
from workflows.local import api
from workflows.local.progress import NodeProgress, Progress
from workflows.local.record import task_records


def container(name: str, code: str, *, args: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A container template running `python -c code args...`."""
    template = {"name": name, "container": {"image": "python:3.11", "command": ["python", "-c", code],
                                            "args": args or []}}
    template.update(extra)
    return template


def workflow(tasks: list[dict[str, Any]], templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A WorkflowTemplate whose entrypoint `main` is a DAG of `tasks`."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "tiny"},
        "spec": copy.deepcopy(
            {"entrypoint": "main", "templates": [*templates, {"name": "main", "dag": {"tasks": tasks}}], **spec}
        ),
    }


class Ran:
    def __init__(self, result: api.Result, output: str, path: Path):
        self.result, self.output, self.path = result, output, path
        self.tasks: dict[str, NodeRecord] = task_records(result.tree, result.run_dir)

    @property
    def phases(self) -> dict[str, str]:
        """Each DAG task's phase (Pod, Retry and Skipped nodes, not a retry's attempts), by name."""
        retried = {c for n in self.result.tree.nodes.values() if n.type == "Retry" for c in n.children}
        return {n.display_name: n.phase for n in self.result.tree.nodes.values()
                if n.type in ("Pod", "Retry", "Skipped") and n.id not in retried}

    def task(self, name: str) -> NodeRecord:
        """run.json's record of a task that ran a pod: phase, message, attempts, outputs."""
        return self.tasks[name]

    def artifact(self, task: str, name: str) -> dict[str, bytes]:
        """The files of a task's output artifact as the repository keeps it (a tar.gz), by path inside it."""
        with tarfile.open(self.task(task)["outputs"]["artifacts"][name], "r:gz") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                    if m.isfile()}


def run_file(path: Path, cwd: Path, params: dict[str, str] | None = None,
             config_maps: list[dict[str, Any]] | None = None) -> Ran:
    """Read a workflow YAML from disk and run it, as `mlops run --from` does (raises api.Refused)."""
    stream = io.StringIO()
    prepared = api.prepare(path, params or {}, templates=[], configmaps=config_maps or [])
    if prepared.report.refusals:
        raise api.Refused(prepared.report.refusals)
    run_dir = api.new_run_dir(cwd / ".mlops" / "runs", prepared.name)
    result = api.execute(prepared, run_dir, progress=NodeProgress(Progress(stream), run_dir))
    return Ran(result, stream.getvalue(), path)
