"""The contract between the controller (which decides what runs, when, and what a node's phase is) and the
executor (which runs one pod's worth of work on this machine: its containers as processes, each with its own view
of container paths, then its outputs).

The controller hands the executor a `PodSpec`: a template already resolved and substituted (every `{{...}}`
replaced, its inputs' values and artifacts known). `Executor.start` returns a `PodHandle` at once; the controller
polls it on each pass (`poll`), may `stop` it (a deadline, the workflow stopping, a daemon's scope ending), and reads
a `PodResult` once it ends: the phase Argo's `assessNodeStatus` would give the pod (operator.go:1471-1697), the main
container's exit code, the message, and the outputs as the wait container would have saved them
(executor.go:738-785, 929-967). For a containerSet, `containers` holds one result per container (its own
`Container` node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workflows.local.engine.nodes import ArtifactRef, Outputs


@dataclass
class InputArtifact:
    """An input artifact to place at `path` before the command starts: from the run's artifact repository (`key`),
    from a raw text (`raw`), or from S3 through the object store (`s3_uri`)."""

    name: str
    path: str
    key: str | None = None
    archive: str = "tar"  # how the repository keeps it: "tar" (unpacked), "none", or "auto" (a key-only s3 input:
    # a tar.gz is unpacked, anything else placed as is, as Argo's unarchiveArtifact detects it)
    sub_path: str | None = None
    raw: str | None = None
    s3_uri: str | None = None
    mode: int | None = None


@dataclass
class PodSpec:
    """One pod's worth of work, fully substituted."""

    workflow: str  # the workflow's name
    node_id: str
    node_name: str
    pod_name: str  # <workflow>-<template>-<fnv32a(node name)>, as Argo names pods
    kind: str  # "container" | "script" | "containerSet"
    template: dict[str, Any]  # the substituted template (container/script/containerSet, sidecars, initContainers,
    #                           volumes, outputs, daemon, readinessProbe...), as Argo's JSON has it
    volumes: list[dict[str, Any]]  # spec.volumes and the template's own, substituted
    input_artifacts: list[InputArtifact] = field(default_factory=list)
    capture_result: bool = False  # outputs.result is captured only when a parent refers to it
    deadline: float | None = None  # wall-clock time (time.time()) past which the pod is stopped and Failed
    env: dict[str, str] = field(default_factory=dict)  # what Argo's executor adds (ARGO_* variables...)
    daemon: bool = False


@dataclass
class ContainerResult:
    """One container of a containerSet: its own node's phase, exit code and message."""

    name: str
    phase: str
    exit_code: int | None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class PodResult:
    """How the pod ended, as Argo would record it on the node."""

    phase: str  # Succeeded | Failed | Error
    message: str
    exit_code: int | None  # the main container's; None when it never ran
    outputs: Outputs
    containers: list[ContainerResult] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    log: Path | None = None  # the pod's log file (every container, stdout and stderr)


class PodHandle(Protocol):
    """A running pod."""

    @property
    def ready(self) -> bool:
        """For a daemon: its processes run and its readiness probe (if any) passed: the node is daemoned."""

    @property
    def pod_ip(self) -> str:
        """The address its servers listen on: 127.0.0.1 locally."""

    def poll(self) -> PodResult | None:
        """The result once every container ended, else None. Never blocks."""

    def stop(self, phase: str, message: str) -> None:
        """Stop it now (a deadline, a shutdown, a daemon's scope ending); the result then has `phase` and
        `message` (a daemon stopped by its scope: Succeeded), outputs collected as far as they exist."""


class AgentTask:
    """The base of a PodHandle for what Argo runs in its agent or executor rather than in a pod of its own (an HTTP
    request, a resource patch of the Workflow): never a daemon, nothing listening."""

    @property
    def ready(self) -> bool:
        return False

    @property
    def pod_ip(self) -> str:
        return "127.0.0.1"


class Executor(Protocol):
    def start(self, spec: PodSpec) -> PodHandle:
        """Start the pod's processes and return at once. Raises PodRefused for what cannot run here (found at
        start, e.g. a command missing on the host): the controller makes the node Error with its message."""

    def store_artifact(self, source: Path, name: str, archive: str, key: str | None = None) -> ArtifactRef:
        """Put a file or folder into the run's artifact repository (workflow arguments, raw inputs, memoized
        outputs); `key`: at that key (a key-only s3 artifact's)."""


class PodRefused(Exception):
    """The pod cannot run on this machine; the message names the template and the reason."""
