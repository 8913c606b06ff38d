"""The local engine's entry point: run one Argo Workflow on this machine as Argo v4.1.2's controller does
(workflow/controller/operator.go operate, :212-589), pass after pass.

    result = run_workflow(workflow, parameters={"n": "3"}, run_dir=Path("runs/r1"), executor=executor,
                          templates=store, config_maps={"my-config": {...}}, progress=print_tree)
    result.phase, result.message, result.nodes, result.outputs, result.suspended

- `workflow`: the Workflow as a dict (metadata.name set; a workflowTemplateRef is merged from `templates`);
- `parameters`: `-p name=value`, replacing or adding `spec.arguments.parameters`;
- `executor`: runs pods (workflows/local/engine/pods.py); `templates`: the template store
  (workflows/local/templates.TemplateStore: templateRef and workflowTemplateRef resolve there);
- `config_maps`: ConfigMaps by name, as the cluster would hold them (label rules apply);
- `progress(tree)`: called after every pass that changed something;
- `state_dir`: where locks and the memoization cache live, shared by runs (default `~/.cache/argo-mlops`);
- `resume`: for `mlops run --resume RUN` (the same workflow, parameters and `run_dir`): continue the run saved
  in `run_dir` (resume.py), resuming the suspend nodes it stopped at; values for their `supplied` outputs by node
  name or display name, `{node: {param: value}}` (an empty mapping resumes each with its defaults).

Each pass reads the pods' states (PodHandle.poll), then executes the entrypoint's template from the top, starting
whatever may start; between passes the engine sleeps until a pod ends, a daemon becomes ready, or a timer is due
(a backoff, a suspend's duration, a deadline), looking at the pods every few milliseconds. The run ends when the
entry node, the workflow's lifecycle hooks and its exit handler are fulfilled; or, when only indefinite suspend
nodes are left, with phase Running and `result.suspended` naming them (the state is kept in `run_dir`, see
resume.py); a workflow submitted with `spec.suspend: true` stops at once the same way, naming itself.

Ctrl-C stops every pod and ends the workflow Failed ("Stopped with strategy 'Stop'"), after its exit handler;
`spec.shutdown: Stop|Terminate` given at submission does the same from the first pass (Terminate: no exit handler).
A workflow-level lock that cannot be taken (a semaphore without a readable size) fails the workflow before anything
runs ("Failed to acquire the synchronization lock. ..."), with no node. A
workflow that waits for something that can no longer come (a reference nothing will produce, with no pod running
and no timer due; Argo would requeue it for ever) ends Error, "the workflow cannot progress". Where the expression
languages raise `Unsupported` while running (an aggregation whose outcome on Argo is not pinned down), the
exception propagates: the run is not given a result Argo might not give.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.local.engine import hooks
from workflows.local.engine import resume as saved
from workflows.local.engine.execute import Controller
from workflows.local.engine.inputs import global_parameters
from workflows.local.engine.locks import LockError, Locks
from workflows.local.engine.metadata import MetadataError, WorkflowMeta
from workflows.local.engine.nodes import ERROR, FAILED, SUCCEEDED, NodeTree, Outputs
from workflows.local.engine.pods import Executor
from workflows.local.engine.state import Holder, ParallelismReached
from workflows.local.engine.templates import TemplateContext
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.gotypes import GoStruct, to_json
from workflows.local.lang.sprig import go_quote
from workflows.local.templates import Resolver, TemplateStore, with_workflow_template

_WORKFLOW_PHASE = {"Pending": "Pending", "Running": "Running", "Succeeded": SUCCEEDED, "Skipped": SUCCEEDED,
                   "Omitted": SUCCEEDED, "Failed": FAILED, "Error": ERROR}
SLEEP_MIN, SLEEP_MAX = 0.002, 0.05


@dataclass
class Result:
    phase: str  # Succeeded | Failed | Error | Running (suspended, see `suspended`)
    message: str
    nodes: NodeTree
    outputs: Outputs
    suspended: list[str] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)  # the Workflow's metadata once the run stopped
    annotations: dict[str, str] = field(default_factory=dict)
    entry_outputs: Outputs | None = None  # the entrypoint node's outputs (status.nodes[<workflow>].outputs)


def with_parameters(workflow: Mapping[str, Any], parameters: Mapping[str, str] | None) -> dict[str, Any]:
    """`-p name=value`: replace or add a spec.arguments parameter (workflow/util/util.go:312-338)."""
    wf = copy.deepcopy(dict(workflow))
    if not parameters:
        return wf
    spec = wf.setdefault("spec", {})
    params = spec.setdefault("arguments", {}).setdefault("parameters", [])
    for name, value in parameters.items():
        for param in params:
            if param.get("name") == name:
                param["value"] = value
                param.pop("valueFrom", None)
                break
        else:
            params.append({"name": name, "value": value})
    return wf


def _failures(op: Controller) -> str:
    failures = []
    for node in op.tree.nodes.values():
        if node.phase in (FAILED, ERROR):
            template = node.template_name or (node.extra.get("templateRef") or {}).get("template", "")
            finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(node.finished_at)) if node.finished_at \
                else None
            failures.append(GoStruct("controller.failedNodeStatus", {
                "displayName": node.display_name, "message": node.message, "templateName": template,
                "phase": node.phase, "podName": op.pod_name(node.name, template), "finishedAt": finished}))
    return go_quote(to_json(failures or None))


class Run:
    """One workflow's operation: the Controller plus the workflow-level decisions of `operate`."""

    def __init__(self, op: Controller, ctx: TemplateContext, started: float):
        self.op, self.ctx, self.started = op, ctx, started
        self.phase, self.message = "Running", ""

    def operate(self) -> bool:
        """One pass; True once the workflow is done."""
        op = self.op
        op.reconcile()
        op.globals["workflow.status"] = self.phase
        op.globals["workflow.duration"] = str(op.now() - self.started)
        node, err = op.execute(op.workflow, Holder(template=op.spec.get("entrypoint", ""), kind="other"), self.ctx,
                               dict(op.spec.get("arguments") or {}))
        if err is not None and not isinstance(err, ParallelismReached):
            return self._finish(ERROR, f"error in entry template execution: {err}")
        if node is None:
            return False
        status = _WORKFLOW_PHASE[node.phase]
        op.globals["workflow.status"] = status
        op.globals["workflow.failures"] = _failures(op)
        try:
            hooks_done = hooks.run_workflow_hooks(op, self.ctx)
        except Unsupported:
            raise
        except (ValueError, LangError) as hook_error:  # executeWfLifeCycleHook's error: the entry node is Error
            op.mark_error(node.name, hook_error)
            hooks_done = True
        if not hooks_done or not node.fulfilled:
            return False
        exit_node = None
        exit_hook = hooks.exit_hook(op.spec, op.spec.get("arguments") or {})
        if exit_hook is not None:
            exit_name = f"{op.workflow}.onExit"
            exit_node = op.get(exit_name)
            if exit_node is not None or op.shutdown in ("", "Stop"):
                exit_node, err = op.execute(exit_name, Holder(template=exit_hook.get("template", "") or "",
                                                              template_ref=exit_hook.get("templateRef"),
                                                              kind="other"),
                                            self.ctx, dict(exit_hook.get("arguments") or {}), hooked=True)
                if err is not None and not isinstance(err, ParallelismReached):
                    return self._finish(ERROR, f"error in exit template execution : {err}")
                if exit_node is None or not exit_node.fulfilled:
                    return False
        message = node.message
        if node.phase in (FAILED, ERROR) and op.shutdown:
            message = f"Stopped with strategy '{op.shutdown}'"
        if status == SUCCEEDED and exit_node is not None and exit_node.phase in (FAILED, ERROR):
            return self._finish(exit_node.phase, exit_node.message)
        if status not in (SUCCEEDED, FAILED, ERROR):  # the entry was marked after its status was read
            return self._finish(ERROR, f"Unexpected node phase {op.workflow}: <nil>")
        return self._finish(status, "" if status == SUCCEEDED else message)

    def _finish(self, phase: str, message: str) -> bool:
        self.phase, self.message = phase, message
        return True

    def next_wake(self) -> float | None:
        op = self.op
        times = list(op.wake_at)
        if op.deadline is not None and op.deadline > op.now():
            times.append(op.deadline)
        return min(times) if times else None

    def wait(self) -> None:
        """Sleep until a pod ends, a daemon is ready, or the next timer is due."""
        op = self.op
        wake = self.next_wake()
        sleep = SLEEP_MIN
        while True:
            for ident, handle in op.handles.items():
                node = op.tree.nodes[ident]
                if handle.poll() is not None or (node.extra.get("daemon") and not node.daemoned and handle.ready):
                    return
                if node.phase == "Pending":
                    return
            now = op.now()
            if wake is not None and now >= wake:
                return
            time.sleep(min(sleep, max(0.0, wake - now)) if wake is not None else sleep)
            sleep = min(sleep * 2, SLEEP_MAX)

    def stop(self, strategy: str) -> None:
        op = self.op
        op.shutdown = strategy
        for ident, handle in op.handles.items():
            if not op.should_execute(bool(op.tree.nodes[ident].extra.get("exitPod"))):
                handle.stop(FAILED, f"Stopped with strategy '{strategy}'")


def run_workflow(workflow: Mapping[str, Any], *, parameters: Mapping[str, str] | None = None, run_dir: Path,
                 executor: Executor, templates: TemplateStore | None = None,
                 config_maps: Mapping[str, Any] | None = None, progress: Callable[[NodeTree], None] | None = None,
                 state_dir: Path | None = None, resume: Mapping[str, Mapping[str, str]] | None = None,
                 uid: str | None = None) -> Result:
    """Run the workflow to its end (or to an indefinite suspend) and return its phase, message, nodes, outputs."""
    wf = with_parameters(workflow, parameters)
    wmeta = WorkflowMeta.submitted(wf)
    if (wf.get("spec") or {}).get("workflowTemplateRef") is not None:
        wf = with_workflow_template(wf, templates if templates is not None else TemplateStore())
    meta, spec = wf.get("metadata") or {}, wf.get("spec") or {}
    name = str(meta.get("name") or meta.get("generateName") or "workflow")
    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    cms = dict(config_maps or {})
    op = Controller(workflow=name, spec=spec, tree=NodeTree(name), executor=executor, run_dir=run_dir,
                    config_maps=cms, resume={k: dict(v) for k, v in (resume or {}).items()})
    op.locks = Locks(state_dir or Path.home() / ".cache" / "argo-mlops", cms, meta.get("namespace") or "default")
    op.meta = wmeta
    metadata_error, began = "", True  # began: markWorkflowRunning was reached (operator.go:345-346)
    if resume is not None:
        op.tree, op.globals, op.outputs, started, suspended_before = saved.load(run_dir)
        op.resuming = set(suspended_before)
        kept = saved.load_meta(run_dir)
        if kept is not None:
            op.meta = WorkflowMeta(kept["labels"], kept["annotations"])
    else:
        meta = {**meta, "labels": wmeta.labels, "annotations": wmeta.annotations}
        op.globals = global_parameters(meta, spec, cms, uid or str(uuid.uuid4()), started)
        try:
            op.meta.apply(spec, op.globals)  # updateWorkflowMetadata, on the first pass (operator.go:4546-4551)
        except MetadataError as err:
            metadata_error = str(err)
    if spec.get("activeDeadlineSeconds") is not None:
        op.deadline = started + float(spec["activeDeadlineSeconds"])
    resolver = Resolver(wf, templates if templates is not None else TemplateStore())
    run = Run(op, TemplateContext(resolver), started)
    op.shutdown = str(spec.get("shutdown") or "")  # argo stop/terminate before the first pass
    try:
        if metadata_error:  # markWorkflowError: the workflow ends Error before any node
            run.phase, run.message = ERROR, metadata_error
        elif spec.get("synchronization") and not _workflow_lock(run, spec["synchronization"]):
            began = False  # it ended before it started (operator.go:284-325)
        elif spec.get("suspend") and resume is None:
            op.suspended.add(name)  # spec.suspend: nothing runs until resumed (operator.go:381-384)
        else:
            _loop(run, progress)
    except KeyboardInterrupt:
        run.stop("Stop")
        _loop(run, progress)
    finally:
        for handle in op.handles.values():
            handle.stop(FAILED, "Stopped with strategy 'Terminate'")
        op.locks.release_all()
    suspended = sorted(op.suspended) if run.phase == "Running" else []
    if suspended:
        saved.save(run_dir, op.tree, op.globals, op.outputs, started, suspended,
                   {"labels": op.meta.labels, "annotations": op.meta.annotations})
    else:
        saved.discard(run_dir)
    final = op.meta.finish(run.phase, started=began and not metadata_error)
    entry = op.get(name)
    return Result(run.phase, run.message, op.tree, op.outputs, suspended, started, time.time(), final["labels"],
                  final["annotations"], entry.outputs if entry is not None else None)


def _workflow_lock(run: Run, sync: dict[str, Any]) -> bool:
    """A workflow-level lock holds the whole workflow Pending until it is taken (operator.go:284-325); False when
    the workflow ended instead: a lock that cannot be taken (a semaphore whose ConfigMap or key is missing, a
    database lock) fails it, as does `Terminate` while it waits (releaseLocksForPendingShuttingdownWfs) or Ctrl-C;
    no node is created and no exit handler runs."""
    op = run.op
    assert op.locks is not None  # noqa: S101 - set by run_workflow
    sleep = SLEEP_MIN
    try:
        while not op.locks.try_acquire(op.workflow, sync)[0]:
            if op.shutdown == "Terminate":
                run.phase, run.message = FAILED, "Stopped with strategy 'Terminate'"
                return False
            time.sleep(sleep)
            sleep = min(sleep * 2, 0.5)
    except LockError as err:
        run.phase, run.message = FAILED, f"Failed to acquire the synchronization lock. {err}"
        return False
    except KeyboardInterrupt:  # Ctrl-C: a workflow that never started ends without running anything
        run.phase, run.message = FAILED, "Stopped with strategy 'Stop'"
        return False
    return True


def _loop(run: Run, progress: Callable[[NodeTree], None] | None) -> None:
    op = run.op
    last = ""
    while True:
        op.wake_at.clear()
        op.suspended.clear()
        done = run.operate()
        state = _fingerprint(op)
        if progress is not None and state != last:
            progress(op.tree)
        if done:
            return
        if not op.handles and not op.wake_at and state == last:
            if op.suspended:
                return  # only indefinite suspends are left: the run stops waiting (mlops run --resume)
            run.phase, run.message = ERROR, "the workflow cannot progress: no pod runs and nothing is due"
            return
        last = state
        if op.handles or op.wake_at or (op.deadline is not None and op.deadline > op.now()):
            run.wait()


def _fingerprint(op: Controller) -> str:
    return ";".join(f"{n.id}:{n.phase}:{n.daemoned}:{len(n.children)}" for n in op.tree.nodes.values())
