"""What one operation of the controller works on (wfOperationCtx): the node tree and Argo's helpers over it
(initializeNode, markNodePhase, addChildNode, getOutboundNodes, the node counters, killDaemonedChildren), the
global variables, and the pods started so far. `operator.Operator` adds the pass loop and executeTemplate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.local.engine.metadata import WorkflowMeta
from workflows.local.engine.nodes import (
    COMPLETED,
    DAG,
    ERROR,
    FAILED,
    PENDING,
    POD,
    RETRY,
    RUNNING,
    STEPS,
    SUCCEEDED,
    ArtifactRef,
    Inputs,
    Node,
    NodeTree,
    Outputs,
    Parameter,
    fnv32a,
    node_id,
)
from workflows.local.engine.pods import Executor, PodHandle

_SEPARATOR = re.compile(r"^(\[\d+\])?\.")


class Requeue(Exception):  # noqa: N818 - Argo's ErrRequeue
    """A reference is not resolvable yet: try again on a later pass."""


class ParallelismReached(Exception):  # noqa: N818 - Argo's ErrParallelismReached
    """No new pod now (workflow or template parallelism, failFast): the node is created on a later pass."""


class TemplateTimeout(Exception):  # noqa: N818 - Argo's ErrTimeout
    """A node stayed Pending past its template timeout."""


@dataclass
class Holder:
    """A TemplateReferenceHolder: a step, a task, a hook or the entrypoint (what names the template to run)."""

    name: str = ""
    template: str = ""
    template_ref: dict[str, Any] | None = None
    inline: dict[str, Any] | None = None
    kind: str = "step"  # step | task | other

    @classmethod
    def of(cls, obj: Mapping[str, Any], kind: str) -> Holder:
        return cls(obj.get("name", ""), obj.get("template", "") or "", obj.get("templateRef"), obj.get("inline"),
                   kind)


@dataclass
class Operation:
    workflow: str  # metadata.name
    spec: dict[str, Any]  # the executed spec (a workflowTemplateRef merged in)
    tree: NodeTree
    executor: Executor
    run_dir: Path
    globals: dict[str, str] = field(default_factory=dict)
    outputs: Outputs = field(default_factory=Outputs)  # status.outputs
    meta: WorkflowMeta = field(default_factory=WorkflowMeta)  # the Workflow's labels and annotations
    handles: dict[str, PodHandle] = field(default_factory=dict)
    node_templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # boundary node id -> its template
    shutdown: str = ""  # "" | "Stop" | "Terminate"
    deadline: float | None = None  # spec.activeDeadlineSeconds as a time
    notify: Callable[[], None] | None = None
    wake_at: list[float] = field(default_factory=list)  # times at which a pass is due (requeueAfter)
    now: Callable[[], float] = time.time

    # --- names ------------------------------------------------------------------------------------------

    def get(self, name: str) -> Node | None:
        return self.tree.by_name(name)

    def node(self, ident: str) -> Node:
        return self.tree.nodes[ident]

    def pod_name(self, node_name: str, template_name: str) -> str:
        if node_name == self.workflow:
            return self.workflow
        prefix = f"{self.workflow}-{template_name}" if template_name else self.workflow
        return f"{prefix[:242]}-{fnv32a(node_name)}"

    def requeue_after(self, moment: float) -> None:
        self.wake_at.append(moment)

    # --- creating and marking nodes ------------------------------------------------------------------------

    def init_node(self, name: str, type_: str, template_scope: str, holder: Holder | None, boundary_id: str,
                  phase: str, *, hooked: bool = False, retried: bool = False, message: str = "") -> Node:
        ident = node_id(self.workflow, name)
        if ident in self.tree.nodes:
            raise RuntimeError(f"node {name} already initialized")
        boundary = self.tree.nodes.get(boundary_id) if boundary_id else None
        display = name
        if boundary is not None:
            display = name[len(boundary.name):] if name.startswith(boundary.name) else name
            display = _SEPARATOR.sub("", display, count=1)
        node = Node(id=ident, name=name, display_name=display, type=type_, phase=phase, message=message,
                    template_name=(holder.template or None) if holder else None, template_scope=template_scope,
                    boundary_id=boundary_id or None, started_at=self.now())
        if holder is not None and holder.template_ref:
            node.extra["templateRef"] = holder.template_ref
        if hooked:
            node.extra["hooked"] = True
        if retried:
            node.extra["retried"] = True
        if node.fulfilled:
            node.finished_at = node.started_at
        self.tree.add(node)
        return node

    def init_executable_node(self, name: str, type_: str, template_scope: str, tmpl: Mapping[str, Any],
                             holder: Holder | None, boundary_id: str, phase: str, *, hooked: bool = False,
                             retried: bool = False, message: str = "") -> Node:
        node = self.init_node(name, type_, template_scope, holder, boundary_id, phase, hooked=hooked,
                              retried=retried, message=message)
        inputs = tmpl.get("inputs") or {}
        if inputs.get("parameters") or inputs.get("artifacts"):
            node.inputs = Inputs(parameters=[Parameter(p["name"], _str_or_none(p.get("value")))
                                             for p in inputs.get("parameters") or []])
        if tmpl.get("memoize"):
            node.extra["memoization"] = {"key": tmpl["memoize"].get("key"), "cacheName":
                                         ((tmpl["memoize"].get("cache") or {}).get("configMap") or {}).get("name")}
        return node

    def mark_phase(self, name: str, phase: str, message: str | None = None) -> Node:
        node = self.get(name)
        if node is None:
            raise RuntimeError(f"workflow node {name} uninitialized when marking phase {phase}")
        node.phase = phase
        if message is not None:
            node.message = message
        if node.fulfilled and node.finished_at is None:
            node.finished_at = self.now()
        return node

    def mark_error(self, name: str, err: Exception | str) -> Node:
        return self.mark_phase(name, ERROR, str(err))

    def add_child(self, parent: str, child: str) -> None:
        parent_node = self.get(parent)
        if parent_node is None:
            raise RuntimeError(f"was unable to obtain node for {parent}")
        child_id = node_id(self.workflow, child)
        if child_id not in parent_node.children:
            parent_node.children.append(child_id)

    # --- reading the tree ----------------------------------------------------------------------------------

    def outbound_nodes(self, ident: str) -> list[str]:
        """getOutboundNodes: the nodes a dependent (next step group, depending task) hangs from."""
        node = self.node(ident)
        if node.type in ("Skipped", "Suspend", "HTTP", "Plugin"):
            return [node.id]
        if node.type == POD and not node.extra.get("containerSet"):
            return [node.id]
        if node.type in (POD, "Container", "TaskGroup"):
            if not node.children:
                return [node.id]
            out: list[str] = []
            for child in node.children:
                child_node = self.node(child)
                if node.type == "Container" and node.boundary_id != child_node.boundary_id:
                    out.append(node.id)
                else:
                    out.extend(self.outbound_nodes(child))
            return out
        if node.type == RETRY:
            if node.children:
                return [node.children[-1]]
        elif node.type in (STEPS, DAG) and node.memoized:
            return [node.id]
        out = []
        for outbound in node.extra.get("outbound", []):
            out.extend(self.outbound_nodes(outbound))
        return out

    def children_fulfilled(self, node: Node, cache: dict[str, bool] | None = None) -> bool:
        cache = {} if cache is None else cache
        if node.id in cache:
            return cache[node.id]
        if not node.children:
            cache[node.id] = node.fulfilled
            return node.fulfilled
        for child in node.children:
            if child in self.tree.nodes and not self.children_fulfilled(self.node(child), cache):
                cache[node.id] = False
                return False
        cache[node.id] = True
        return True

    def hooks_fulfilled(self, node: Node) -> bool:
        """CheckAllHooksFullfilled: every hooked child (exit handler, lifecycle hook) is fulfilled."""
        return all(self.node(c).fulfilled for c in node.children
                   if c in self.tree.nodes and self.node(c).extra.get("hooked"))

    def retry_children(self, node: Node) -> list[Node]:
        """getChildNodeIdsRetried: the attempts of a Retry node."""
        return [self.node(c) for c in node.children if c in self.tree.nodes and self.node(c).extra.get("retried")]

    def last_attempt(self, node: Node) -> Node | None:
        """possiblyGetRetryChildNode: a Retry node's last child that is not a hook (unless it was a cache hit)."""
        if node.type != RETRY or node.memoized:
            return None
        for child in reversed(node.children):
            child_node = self.tree.nodes.get(child)
            if child_node is not None and not child_node.extra.get("hooked"):
                return child_node
        return None

    def active_pods(self, boundary_id: str = "") -> int:
        return sum(1 for n in self.tree.nodes.values() if n.type == POD and (not boundary_id or
                   n.boundary_id == boundary_id) and n.phase in (PENDING, RUNNING)
                   and not n.extra.get("waiting_lock") and n.id in self.handles)

    def active_children(self, boundary_id: str) -> int:
        return sum(1 for n in self.tree.nodes.values() if n.boundary_id == boundary_id
                   and n.type in (POD, STEPS, DAG) and n.phase in (PENDING, RUNNING))

    def unsuccessful_children(self, boundary_id: str) -> int:
        return sum(1 for n in self.tree.nodes.values() if n.boundary_id == boundary_id
                   and n.type in (POD, STEPS, DAG) and n.phase in (FAILED, ERROR))

    def kill_daemoned_children(self, boundary_id: str) -> None:
        """killDaemonedChildren: stop the daemons a fulfilled steps/DAG node started; they end Succeeded."""
        for child in list(self.tree.nodes.values()):
            if child.boundary_id != (boundary_id or None) or not child.daemoned:
                continue
            handle = self.handles.get(child.id)
            if handle is not None:
                handle.stop(SUCCEEDED, "")
            child.phase = SUCCEEDED
            child.daemoned = False
            if child.finished_at is None:
                child.finished_at = self.now()

    def should_execute(self, exit_pod: bool) -> bool:
        """ShutdownStrategy.ShouldExecute (workflow_types.go:634-643): Terminate runs nothing, Stop only exit
        handlers' pods."""
        if self.shutdown == "Terminate":
            return False
        if self.shutdown == "Stop":
            return exit_pod
        return True

    def part_of_exit_handler(self, node: Node) -> bool:
        current: Node | None = node
        while current is not None and not current.display_name.endswith(".onExit"):
            current = self.tree.nodes.get(current.boundary_id) if current.boundary_id else None
        return current is not None

    # --- globals -------------------------------------------------------------------------------------------

    def global_params(self) -> dict[str, str]:
        return dict(self.globals)

    def add_outputs_to_global(self, node: Node | None) -> None:
        """addOutputsToGlobalScope: a node's outputs with a globalName (kept in `extra["globalNames"]`) become
        workflow.outputs.* and status.outputs, a later value replacing an earlier one."""
        if node is None or node.outputs is None:
            return
        names: dict[str, str] = node.extra.get("globalNames", {})
        for param in node.outputs.parameters:
            global_name = names.get(f"parameters.{param.name}")
            if not global_name:
                continue
            if param.value is not None:
                self.globals[f"workflow.outputs.parameters.{global_name}"] = param.value
            existing = self.outputs.parameter(global_name)
            if existing is None:
                self.outputs.parameters.append(Parameter(global_name, param.value))
            else:
                existing.value = param.value
        for art in node.outputs.artifacts:
            global_name = names.get(f"artifacts.{art.name}")
            if global_name:
                copy = ArtifactRef(global_name, None, art.key, art.archive, art.optional)
                self.outputs.artifacts = [a for a in self.outputs.artifacts if a.name != global_name] + [copy]

    def execute_template(self, node_name: str, holder: Holder, tmpl_ctx: Any, args: dict[str, Any],
                         boundary_id: str = "", *, on_exit: bool = False, hooked: bool = False) -> Node | None:
        raise NotImplementedError

    def execute(self, node_name: str, holder: Holder, ctx: Any, args: dict[str, Any], boundary_id: str = "", *,
                hooked: bool = False, retried: bool = False) -> tuple[Node | None, Exception | None]:
        """executeTemplate: the node (None when not created yet) and the error Argo's would return."""
        raise NotImplementedError


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def completed(node: Node | None) -> bool:
    return node is not None and node.phase in COMPLETED
