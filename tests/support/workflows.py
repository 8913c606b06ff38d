"""Tiny WorkflowTemplates for the local runner's tests, whose containers run `python -c ...`, and a way to run
them through the same path as `mlops run --from FILE` (written to disk, loaded back, executed)."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

from workflows.local import runner
from workflows.local.api import GENERATOR


def container(name: str, code: str, *, args: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A container template running `python -c code args...`."""
    template = {"name": name, "container": {"image": "python:3.11", "command": ["python", "-c", code],
                                            "args": args or []}}
    template.update(extra)
    return template


def workflow(tasks: list[dict[str, Any]], templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A stand-in for a template `mlops compile` renders (annotated as one), so `mlops run --from` runs it on the
    runner our own templates run on, as the real one would be."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "tiny", "annotations": {GENERATOR: "tests/support/workflows.py (a stand-in)"}},
        "spec": copy.deepcopy(
            {"entrypoint": "main", "templates": [*templates, {"name": "main", "dag": {"tasks": tasks}}], **spec}
        ),
    }


class Ran:
    def __init__(self, result: runner.RunResult, output: str, path: Path):
        self.result, self.output, self.path = result, output, path

    @property
    def phases(self) -> dict[str, str]:
        return {name: t.phase for name, t in self.result.tasks.items()}

    def task(self, name: str) -> Any:
        return self.result.tasks[name]


def run_file(path: Path, cwd: Path, params: dict[str, str] | None = None,
             config_maps: dict[str, dict[str, str]] | None = None) -> Ran:
    """Load a workflow YAML from disk and run it, as `mlops run --from` does."""
    doc, yaml_maps = runner.load(path)
    params = params or {}
    stream = io.StringIO()
    run_dir = runner.new_run_dir(cwd / ".mlops" / "runs", "tiny")
    engine = runner.Runner(doc, parameters=runner.resolve_parameters(doc, params), run_dir=run_dir,
                           name=runner.workflow_name(doc), local=set(params), config_maps=yaml_maps,
                           local_config_maps=config_maps, cwd=cwd, progress=runner.Progress(stream))
    result = engine.run()
    return Ran(result, stream.getvalue(), path)
