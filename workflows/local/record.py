"""The outcome of a local run: `RunResult` for the caller, and `run.json` in the run folder (a RunDocument, the
workflow's and every node's phase as Argo reports them), rewritten atomically as the run goes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from steps._core.documents import NodeRecord, RunDocument
from steps._core.files import write_text
from workflows.local.task import TaskState

RUN_JSON = "run.json"


@dataclass
class RunResult:
    name: str
    phase: str  # Succeeded | Failed | Interrupted
    message: str
    run_dir: Path
    parameters: dict[str, str]
    tasks: dict[str, TaskState]
    duration: float

    @property
    def exit_code(self) -> int:
        return {"Succeeded": 0, "Interrupted": 130}.get(self.phase, 1)


def node_record(state: TaskState) -> NodeRecord:
    return {
        "template": state.template, "phase": state.phase, "message": state.message, "exitCode": state.exit_code,
        "attempts": state.attempts, "duration": None if state.duration is None else round(state.duration, 3),
        "outputs": {"parameters": state.parameters, "artifacts": state.artifacts}, "log": state.log,
    }


def write_run_json(run_dir: Path, name: str, phase: str, message: str, parameters: dict[str, str], duration: float,
                   tasks: dict[str, TaskState]) -> None:
    """`<run>/run.json`: tasks in the DAG's order, as a reader follows the run."""
    document: RunDocument = {
        "name": name, "phase": phase, "message": message, "parameters": parameters, "duration": round(duration, 3),
        "tasks": {task: node_record(state) for task, state in tasks.items()},
    }
    write_text(run_dir / RUN_JSON, json.dumps(document, indent=2) + "\n")
