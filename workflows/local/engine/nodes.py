"""The node tree of a local run, as Argo's controller keeps it in `status.nodes`: one Node per step, task, loop
expansion, retry attempt, exit handler and hook, named, typed and phased as Argo names, types and phases them
(docs/local-runner.md, "How Argo runs a workflow" and "Phases").

Names and IDs follow argo-workflows v4.1.2: a node's `name` is unique and deterministic (`<wf>`, `<wf>[0].step`,
`<wf>.task`, `task(0:item)`, `node(1)`, `node.onExit`, `node.hooks.h`, `pod.container`); its `id` is
`<wf>-<fnv32a(name)>` (pkg/apis/workflow/v1alpha1/workflow_types.go:3870-3877); its `display_name` is the name
relative to its boundary node (operator.go:3043-3095).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Node phases (workflow_types.go: NodePhase)
PENDING, RUNNING, SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED = (
    "Pending", "Running", "Succeeded", "Failed", "Error", "Skipped", "Omitted")
COMPLETED = (SUCCEEDED, FAILED, ERROR)
FINISHED = (SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED)

# Node types (workflow_types.go: NodeType)
POD, CONTAINER, STEPS, STEP_GROUP, DAG, TASK_GROUP, RETRY, SKIPPED_TYPE, SUSPEND, HTTP = (
    "Pod", "Container", "Steps", "StepGroup", "DAG", "TaskGroup", "Retry", "Skipped", "Suspend", "HTTP")


def fnv32a(text: str) -> int:
    """FNV-1a, 32 bits: what Argo hashes node names with (hash/fnv New32a)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def node_id(workflow: str, name: str) -> str:
    """`<workflow>-<fnv32a(name)>`; the workflow's own node (name == workflow) has the workflow's name as its id."""
    return workflow if name == workflow else f"{workflow}-{fnv32a(name)}"


@dataclass
class Parameter:
    name: str
    value: str | None = None  # None: absent (an output of a skipped node with no default), never ""


@dataclass
class ArtifactRef:
    """An artifact as the node records it: its name, the path it had in the container, and where the local
    artifact repository keeps it (`key`, relative to the repository folder), with how it was archived."""

    name: str
    path: str | None = None
    key: str | None = None
    archive: str = "tar"  # "tar" (gzip, Argo's default) or "none"
    optional: bool = False
    s3_key: str | None = None  # a key-only s3 artifact's key, as Argo records it (s3.key); `key` is the same


@dataclass
class Outputs:
    parameters: list[Parameter] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)
    result: str | None = None  # stdout, only when captured (a parent refers to it)
    exit_code: str | None = None

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


@dataclass
class Inputs:
    parameters: list[Parameter] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)


@dataclass
class Node:
    """One node of `status.nodes`. Times are wall-clock seconds (time.time()), whole seconds where Argo stores
    whole seconds (a retry's `lastRetry.duration` reads them)."""

    id: str
    name: str
    display_name: str
    type: str
    phase: str = PENDING
    message: str = ""
    template_name: str | None = None
    template_scope: str = "local"  # where the template came from: local, namespaced/<wft>, cluster/<cwft>
    boundary_id: str | None = None
    children: list[str] = field(default_factory=list)  # node ids, in creation order
    inputs: Inputs = field(default_factory=Inputs)
    outputs: Outputs | None = None
    started_at: float | None = None
    finished_at: float | None = None
    daemoned: bool = False
    memoized: bool = False  # memoizationStatus.hit
    pod_ip: str | None = None
    host_node_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what one feature keeps on its node (loop index, ...)

    @property
    def fulfilled(self) -> bool:
        """Argo's Fulfilled: completed, skipped or omitted; a daemoned node that is not Pending counts too."""
        return self.phase in FINISHED or (self.daemoned and self.phase != PENDING)

    @property
    def completed(self) -> bool:
        return self.phase in COMPLETED


@dataclass
class NodeTree:
    """`status.nodes` of one workflow, keyed by id, with lookup by name."""

    workflow: str
    nodes: dict[str, Node] = field(default_factory=dict)

    def by_name(self, name: str) -> Node | None:
        return self.nodes.get(node_id(self.workflow, name))

    def add(self, node: Node, parent: Node | None = None) -> Node:
        self.nodes[node.id] = node
        if parent is not None and node.id not in parent.children:
            parent.children.append(node.id)
        return node

    def children(self, node: Node) -> list[Node]:
        return [self.nodes[c] for c in node.children]
