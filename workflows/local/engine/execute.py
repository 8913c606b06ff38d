"""executeTemplate as Argo v4.1.2's operator runs it (workflow/controller/operator.go:2188-2660): resolve the
template, ProcessArgs, the fulfilled check, parallelism and failFast (checkParallelism), locks, memoization,
retries (a Retry node and its attempts), then the template kind: pods (container, script, containerSet) handed to
the Executor as PodSpecs, steps and DAGs (steps.py, dag.py), suspend. `Controller` is the operation the pass loop
(operator.py) drives; `reconcile` reads the pods' states into the nodes at the start of each pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflows.local.engine import dag, retry, steps
from workflows.local.engine.artifacts import ArtifactError, check_key, key_only
from workflows.local.engine.inputs import process_args, substitute_params
from workflows.local.engine.locks import LockError, Locks
from workflows.local.engine.nodes import (
    CONTAINER,
    ERROR,
    FAILED,
    HTTP,
    PENDING,
    POD,
    RETRY,
    RUNNING,
    SKIPPED_TYPE,
    SUCCEEDED,
    SUSPEND,
    Node,
    node_id,
)
from workflows.local.engine.outputs import (
    OutputError,
    global_names,
    has_output_result_ref,
    resume_with_defaults,
    step_or_task_name,
    suspend_outputs,
)
from workflows.local.engine.pods import InputArtifact, PodRefused, PodSpec
from workflows.local.engine.resource import ResourcePatch
from workflows.local.engine.state import Holder, Operation, ParallelismReached, TemplateTimeout
from workflows.local.engine.substitute import replace_obj
from workflows.local.engine.templates import (
    TemplateContext,
    TemplateNotFound,
    is_pod_type,
    template_type,
)
from workflows.local.lang.errors import LangError, Unsupported

DEADLINE_MESSAGE = "Step exceeded its deadline"
FAIL_FAST_MESSAGE = "template has failed or errored children and failFast enabled"


@dataclass
class Controller(Operation):
    config_maps: dict[str, Any] = field(default_factory=dict)
    locks: Locks | None = None
    resume: dict[str, dict[str, str]] = field(default_factory=dict)  # supplied outputs by node (display) name
    resuming: set[str] = field(default_factory=set)  # the suspend nodes `mlops run --resume` resumes
    suspended: set[str] = field(default_factory=set)  # indefinite suspend nodes waiting for a resume

    def execute_template(self, node_name: str, holder: Holder, tmpl_ctx: Any, args: dict[str, Any],
                         boundary_id: str = "", *, on_exit: bool = False, hooked: bool = False) -> Node | None:
        node, _ = self.execute(node_name, holder, tmpl_ctx, args, boundary_id, hooked=hooked)
        return node

    def retry_strategy(self, tmpl: dict[str, Any]) -> dict[str, Any] | None:
        strategy = tmpl.get("retryStrategy")
        return strategy if strategy is not None else self.spec.get("retryStrategy")

    def _init_or_error(self, node: Node | None, name: str, scope: str, holder: Holder, boundary_id: str,
                       err: Exception, hooked: bool, retried: bool) -> Node:
        """initializeNodeOrMarkError."""
        if node is not None:
            return self.mark_error(name, err)
        return self.init_node(name, SKIPPED_TYPE, scope, holder, boundary_id, ERROR, hooked=hooked,
                              retried=retried, message=str(err))

    def execute(self, node_name: str, holder: Holder, ctx: TemplateContext, args: dict[str, Any],
                boundary_id: str = "", *, hooked: bool = False, retried: bool = False
                ) -> tuple[Node | None, Exception | None]:
        node = self.get(node_name)
        try:
            new_ctx, resolved = ctx.resolve(holder)
        except TemplateNotFound as err:
            return self._init_or_error(node, node_name, ctx.scope, holder, boundary_id, err, hooked, retried), err
        local = {}
        if is_pod_type(resolved) and self.retry_strategy(resolved) is None:
            local["pod.name"] = self.pod_name(node_name, resolved.get("name", ""))
        if holder.kind == "task":
            local["tasks.name"] = holder.name
        elif holder.kind == "step":
            local["steps.name"] = holder.name
        local["node.name"] = node_name
        try:
            tmpl = process_args(resolved, args, self.global_params(), local, self.config_maps)
        except Unsupported:
            raise
        except (ValueError, LangError) as err:
            return self._init_or_error(node, node_name, ctx.scope, holder, boundary_id, err, hooked, retried), err
        if node is not None and node.fulfilled:
            self._release(node, tmpl)
            return node, None
        if node is not None and node.phase == PENDING and self._timed_out(tmpl, node):
            return self.mark_phase(node_name, FAILED, "timeout"), TemplateTimeout("timeout")
        try:
            self.check_parallelism(tmpl, node, boundary_id)
        except ParallelismReached as err:
            return node, err
        unlocked = False
        if self.locks is not None and tmpl.get("synchronization"):
            unlocked = node is not None and "waiting_lock" in node.extra
            try:
                node, acquired = self.locks.acquire(self, node, node_name, ctx.scope, tmpl, holder, boundary_id,
                                                    hooked, retried)
            except LockError as err:  # TryAcquire's error (operator.go:2329-2338)
                return self._init_or_error(node, node_name, ctx.scope, holder, boundary_id, err, hooked,
                                           retried), err
            if not acquired:
                return node, None
        if tmpl.get("memoize") and self.locks is not None:
            try:
                node = self.locks.memoized(self, node, node_name, ctx.scope, tmpl, holder, boundary_id, hooked,
                                           retried, unlocked)
            except ValueError as err:
                return self._init_or_error(node, node_name, ctx.scope, holder, boundary_id, err, hooked,
                                           retried), err
        if node is not None and node.fulfilled:
            self._release(node, tmpl)
            return node, None
        retry_name = ""
        execution_deadline: float | None = None  # backoff.maxDuration caps the attempt's pod (operator.go:2489)
        strategy = self.retry_strategy(tmpl)
        if strategy is not None:
            retry_name = node_name
            rnode = node or self.init_executable_node(node_name, RETRY, ctx.scope, tmpl, holder, boundary_id,
                                                      RUNNING, hooked=hooked, retried=retried)
            rnode.extra["globalNames"] = global_names(tmpl)
            retried = True
            try:
                rnode, go_on, execution_deadline = retry.process(self, rnode, strategy)
            except (ValueError, LangError) as err:
                return self.mark_error(retry_name, err), err
            if not go_on:
                return rnode, None
            attempts = self.retry_children(rnode)
            last = attempts[-1] if attempts else None
            if rnode.fulfilled and (self.children_fulfilled(rnode) or rnode.daemoned):
                if last is not None:
                    rnode.outputs = last.outputs
                self._release(rnode, tmpl)
                return rnode, None
            if last is not None and not last.fulfilled:
                node_name, node, num = last.name, last, len(attempts) - 1
            else:
                num = len(attempts)
                node_name, node = f"{retry_name}({num})", None
                self.add_child(retry_name, node_name)
            local = retry.attempt_variables(self, rnode, num)
            if is_pod_type(tmpl):
                local["pod.name"] = self.pod_name(node_name, tmpl.get("name", ""))
            try:
                tmpl = substitute_params(tmpl, self.global_params(), local)
            except (ValueError, LangError) as err:
                return self._init_or_error(node, node_name, ctx.scope, holder, boundary_id, err, hooked,
                                           retried), err
        kind = template_type(tmpl)
        err_: Exception | None = None
        try:
            if kind in ("container", "script", "containerSet", "http", "resource"):
                node = self.execute_pod(node_name, ctx.scope, tmpl, holder, boundary_id, hooked, retried,
                                        execution_deadline)
            elif kind == "steps":
                node = steps.execute_steps(self, node_name, new_ctx, tmpl, holder, boundary_id, hooked, retried)
            elif kind == "dag":
                node = dag.execute_dag(self, node_name, new_ctx, tmpl, holder, boundary_id, hooked, retried)
            elif kind == "suspend":
                node = self.execute_suspend(node_name, ctx.scope, tmpl, holder, boundary_id, hooked, retried)
            else:
                raise Unsupported(f"template {tmpl.get('name')}: {kind} templates cannot run on this machine")
        except Unsupported:
            raise
        except (ValueError, LangError) as err:
            err_ = err
        if err_ is not None:
            node = self._init_or_error(self.get(node_name), node_name, ctx.scope, holder, boundary_id, err_,
                                       hooked, retried)
            if strategy is None or retry.policy(strategy) not in ("Always", "OnError", "OnTransientError"):
                self._release(node, tmpl)
                return node, err_
        assert node is not None  # noqa: S101 - every branch above returns a node
        node = self.node(node.id)
        if self.locks is not None and tmpl.get("synchronization"):
            self.locks.adopt(self, node)
        if node.fulfilled:
            self._release(node, tmpl)
        if retry_name:
            retry_node = self.node(node_id(self.workflow, retry_name))
            if not retry_node.fulfilled and node.fulfilled:
                again, failure = self.execute(retry_name, holder, ctx, args, boundary_id, hooked=hooked)
                if failure is not None:
                    return self.mark_error(node.name, failure), failure
                retry_node = again or retry_node
            if not node.fulfilled and node.daemoned:
                self.mark_phase(retry_name, node.phase)
                retry_node.daemoned = True
            node = retry_node
        return node, None

    def _timed_out(self, tmpl: dict[str, Any], node: Node) -> bool:
        """checkTemplateTimeouts: a node still Pending past its `timeout` or `pendingTimeout`."""
        for key in ("timeout", "pendingTimeout"):
            if tmpl.get(key) not in (None, ""):
                deadline = (node.started_at or self.now()) + retry.parse_duration(tmpl[key])
                if self.now() > deadline:
                    return True
                self.requeue_after(deadline)
        return False

    def _release(self, node: Node, tmpl: dict[str, Any]) -> None:
        if self.locks is not None and tmpl.get("synchronization"):
            self.locks.release(node.id)

    # --- parallelism and failFast (checkParallelism, operator.go:3297-3360) ----------------------------------

    def check_parallelism(self, tmpl: dict[str, Any], node: Node | None, boundary_id: str) -> None:
        limit = self.spec.get("parallelism")
        if limit is not None and self.active_pods() >= int(limit):
            raise ParallelismReached("workflow parallelism")
        if node is not None and template_type(tmpl) in ("dag", "steps"):
            self._check_template(tmpl, node, active=self.active_pods(node.id))
        if boundary_id and (node is None or node.phase not in (PENDING, RUNNING)):
            boundary = self.node(boundary_id)
            btmpl = self.node_templates.get(boundary_id)
            if btmpl is not None:
                if btmpl.get("failFast") is True and self.unsuccessful_children(boundary_id) > 0:
                    self._fail_fast(btmpl, boundary)
                    raise ParallelismReached("failFast")
                if btmpl.get("parallelism") is not None and \
                        self.active_children(boundary_id) >= int(btmpl["parallelism"]):
                    raise ParallelismReached("template parallelism")

    def _check_template(self, tmpl: dict[str, Any], node: Node, active: int) -> None:
        if tmpl.get("failFast") is True and self.unsuccessful_children(node.id) > 0:
            self._fail_fast(tmpl, node)
            raise ParallelismReached("failFast")
        if tmpl.get("parallelism") is not None and active >= int(tmpl["parallelism"]):
            raise ParallelismReached("template parallelism")

    def _fail_fast(self, tmpl: dict[str, Any], node: Node) -> None:
        if self.active_pods(node.id) != 0:
            return
        if template_type(tmpl) == "steps":
            groups = [n for n in self.tree.nodes.values() if n.boundary_id == node.id and n.type == "StepGroup"]
            if groups:
                self.mark_phase(groups[-1].name, FAILED, FAIL_FAST_MESSAGE)
        self.mark_phase(node.name, FAILED, FAIL_FAST_MESSAGE)

    # --- pods ------------------------------------------------------------------------------------------------

    def execute_pod(self, name: str, scope: str, tmpl: dict[str, Any], holder: Holder, boundary_id: str,
                    hooked: bool, retried: bool, execution_deadline: float | None = None) -> Node:
        node = self.get(name)
        if node is not None and node.extra.get("podStarted"):
            return node
        node = node or self.init_executable_node(name, HTTP if tmpl.get("http") is not None else POD, scope, tmpl,
                                                 holder, boundary_id, PENDING, hooked=hooked, retried=retried)
        node.extra["podStarted"] = True
        node.extra["globalNames"] = global_names(tmpl)
        node.extra["daemon"] = bool(tmpl.get("daemon"))
        if tmpl.get("containerSet") is not None:
            node.extra["containerSet"] = True
        now = self.now()
        exit_pod = self.part_of_exit_handler(node)  # exit pods ignore the workflow's deadline (workflowpod.go:455)
        node.extra["exitPod"] = exit_pod
        if self.deadline is not None and now > self.deadline and not exit_pod:
            return self.mark_phase(name, FAILED, DEADLINE_MESSAGE)
        if not self.should_execute(exit_pod):  # shutting down: no new pod (workflowpod.go:366-368)
            return self.mark_phase(name, FAILED, f"workflow shutdown with strategy: {self.shutdown}")
        parent = self.node_templates.get(boundary_id) if boundary_id else None
        capture = parent is not None and has_output_result_ref(step_or_task_name(name), parent)
        deadline = None if exit_pod else self.deadline
        if execution_deadline is not None:
            deadline = execution_deadline if deadline is None else min(deadline, execution_deadline)
        for key in ("activeDeadlineSeconds", "timeout"):
            if tmpl.get(key) not in (None, ""):
                mine = now + retry.parse_duration(tmpl[key])
                deadline = mine if deadline is None else min(deadline, mine)
        kind = template_type(tmpl)
        try:
            arts = input_artifacts(tmpl)
        except PodRefused as err:
            return self.mark_error(name, err)
        volumes = list(replace_obj(self.spec.get("volumes") or [], self.global_params(), None)) + \
            list(tmpl.get("volumes") or [])
        spec = PodSpec(workflow=self.workflow, node_id=node.id, node_name=name,
                       pod_name=self.pod_name(name, tmpl.get("name", "")), kind=kind, template=tmpl,
                       volumes=volumes, input_artifacts=arts, capture_result=capture,
                       deadline=deadline, daemon=bool(tmpl.get("daemon")),
                       env={"ARGO_NODE_ID": node.id, "ARGO_TEMPLATE": tmpl.get("name", "")})
        try:
            self.handles[node.id] = ResourcePatch(self, spec, self.globals.get("workflow.namespace", "default")) \
                if kind == "resource" else self.executor.start(spec)
        except PodRefused as err:
            return self.mark_error(name, err)
        if kind == "containerSet":
            self._container_graph(node, tmpl, holder, hooked, retried)
        return node

    def _container_graph(self, node: Node, tmpl: dict[str, Any], holder: Holder, hooked: bool,
                         retried: bool) -> None:
        """executeContainerSet (container_set_template.go:29-45): once the pod exists, a Pending Container node per
        container; one with no dependencies hangs from the pod node, the others from each container they need."""
        containers = list((tmpl.get("containerSet") or {}).get("containers") or [])
        for ctr in containers:
            name = f"{node.name}.{ctr.get('name')}"
            if self.get(name) is None:
                self.init_node(name, CONTAINER, node.template_scope, holder, node.id, PENDING, hooked=hooked,
                               retried=retried)
        for ctr in containers:
            name = f"{node.name}.{ctr.get('name')}"
            for dep in ctr.get("dependencies") or []:
                self.add_child(f"{node.name}.{dep}", name)
            if not ctr.get("dependencies"):
                self.add_child(node.name, name)

    def reconcile(self) -> None:
        """podReconciliation + assessNodeStatus: each pod's state into its node."""
        now = self.now()
        past_deadline = self.deadline is not None and now > self.deadline
        for ident, handle in list(self.handles.items()):
            node = self.tree.nodes[ident]
            if past_deadline and not node.fulfilled and not node.extra.get("exitPod"):
                handle.stop(FAILED, DEADLINE_MESSAGE)
            result = handle.poll()
            if result is None:
                if node.phase == PENDING:
                    node.phase = RUNNING
                    self._containers_running(node)
                if node.extra.get("daemon") and handle.ready and not node.daemoned:
                    node.daemoned, node.pod_ip, node.phase = True, handle.pod_ip, RUNNING
                continue
            del self.handles[ident]
            if node.phase in (SUCCEEDED, FAILED, ERROR) and not node.daemoned and node.finished_at:
                continue  # a daemon its scope stopped: already Succeeded
            phase = result.phase
            if node.extra.get("daemon") and phase == SUCCEEDED:
                phase = FAILED
            outputs = result.outputs
            if outputs.exit_code is None and result.exit_code is not None:
                outputs.exit_code = str(result.exit_code)
            node.outputs = outputs if (outputs.parameters or outputs.artifacts or outputs.result is not None
                                       or outputs.exit_code is not None) else None
            node.phase, node.message, node.daemoned = phase, result.message, False
            node.finished_at = result.finished_at or now
            self._container_nodes(node, result)
            self.add_outputs_to_global(node)
            if phase == SUCCEEDED and node.extra.get("memoization") and self.locks is not None:
                self.locks.save(self, node)
        if past_deadline:
            for node in self.tree.nodes.values():
                if node.type in (SUSPEND, POD) and node.phase in (PENDING, RUNNING) and node.id not in self.handles \
                        and not self.part_of_exit_handler(node):
                    self.mark_phase(node.name, FAILED, DEADLINE_MESSAGE)
        if self.shutdown:
            self._fail_on_shutdown()

    def _fail_on_shutdown(self) -> None:
        """failNodesWithoutCreatedPodsAfterDeadlineOrShutdown (operator.go:1390-1425): while shutting down, the
        nodes no pod will end (suspend, HTTP, waiting for a lock, a Retry node whose attempts ended) fail."""
        message = f"Stopped with strategy '{self.shutdown}'"
        for node in list(self.tree.nodes.values()):
            if node.fulfilled or self.should_execute(self.part_of_exit_handler(node)):
                continue
            if (node.type in (SUSPEND, HTTP) and node.id not in self.handles) or \
                    (node.phase == PENDING and "waiting_lock" in node.extra) or \
                    (node.type == RETRY and self.children_fulfilled(node)):
                self.mark_phase(node.name, FAILED, message)

    def _containers_running(self, node: Node) -> None:
        """The pod runs: its containers run too (the emissary starts them all, a container waiting for its
        dependencies inside), as their statuses make their nodes Running (operator.go:1568-1597)."""
        for child in self.tree.nodes.values():
            if child.type == CONTAINER and child.boundary_id == node.id and child.phase == PENDING:
                child.phase = RUNNING

    def _container_nodes(self, node: Node, result: Any) -> None:
        for container in result.containers:
            child = self.get(f"{node.name}.{container.name}")
            if child is None:
                continue
            child.phase, child.message = container.phase, container.message
            child.started_at = container.started_at or child.started_at
            child.finished_at = container.finished_at or self.now()

    # --- suspend (operator.go:3986-4031) ----------------------------------------------------------------------

    def execute_suspend(self, name: str, scope: str, tmpl: dict[str, Any], holder: Holder, boundary_id: str,
                        hooked: bool, retried: bool) -> Node:
        node = self.get(name)
        if node is None:
            node = self.init_executable_node(name, SUSPEND, scope, tmpl, holder, boundary_id, RUNNING,
                                             hooked=hooked, retried=retried)
            node.outputs, defaults = suspend_outputs(tmpl)
            node.extra["suppliedDefaults"] = defaults
            node.extra["globalNames"] = global_names(tmpl)
        if node.fulfilled:
            return node
        if self.deadline is not None and self.now() > self.deadline and not self.part_of_exit_handler(node):
            return self.mark_phase(name, FAILED, DEADLINE_MESSAGE)
        duration = (tmpl.get("suspend") or {}).get("duration")
        supplied = None
        if name in self.resuming:
            supplied = self.resume.get(name) or self.resume.get(node.display_name) or {}
        if duration in (None, "") and supplied is None:
            self.suspended.add(name)
            return node
        if supplied is None:
            resume_at = (node.started_at or self.now()) + retry.parse_duration(duration)
            if self.now() < resume_at:
                self.requeue_after(resume_at)
                return node
            supplied = {}
        self.suspended.discard(name)
        if node.outputs is not None:
            for param in node.outputs.parameters:
                if param.name in supplied:
                    param.value = supplied[param.name]
        try:
            resume_with_defaults(node.outputs, node.extra.get("suppliedDefaults") or {})
        except OutputError as err:
            return self.mark_error(name, err)
        self.mark_phase(name, SUCCEEDED)
        self.add_outputs_to_global(node)
        return node


def input_artifacts(tmpl: dict[str, Any]) -> list[InputArtifact]:
    """The template's input artifacts as the executor places them: from the run's repository (an argument that
    named another node's output), raw text, or S3; an optional one with no source is left out."""
    out = []
    for art in (tmpl.get("inputs") or {}).get("artifacts") or []:
        raw = (art.get("raw") or {}).get("data")
        s3 = art.get("s3") or {}
        key, archive = art.get("_key"), art.get("_archive", "tar")
        local = key_only(s3) if key is None and raw is None else None
        if local is not None:  # key-only: the run's own repository is the default artifact repository
            try:
                key = check_key(f"inputs.artifacts.{art.get('name')}", local)
            except ArtifactError as err:
                raise PodRefused(str(err)) from err
            declared = art.get("archive") or {}  # unarchiveArtifact: as declared, else a tar.gz is detected
            archive = "none" if "none" in declared else "tar" if "tar" in declared else "auto"
        s3_uri = f"s3://{s3.get('bucket', '')}/{s3['key']}" if s3.get("key") and local is None else None
        if key is None and raw is None and s3_uri is None:
            if art.get("optional"):
                continue
            raise PodRefused(f"input artifact {art.get('name')!r} has no source this machine can read")
        mode = art.get("mode")
        out.append(InputArtifact(name=art["name"], path=str(art.get("path", "")), key=key, archive=archive,
                                 sub_path=art.get("subPath"), raw=raw, s3_uri=s3_uri,
                                 mode=int(mode) if mode is not None else None))
    return out
