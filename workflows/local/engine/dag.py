"""DAG templates as Argo v4.1.2 runs them (workflow/controller/dag.go): each pass walks from the target tasks back
through their dependencies, starts every task whose dependencies are fulfilled and whose `depends` holds (failFast
never stops a task from starting), expands loops into TaskGroups, and decides the DAG's phase with assessDAGPhase
(docs/local-runner.md, "failFast").
"""

from __future__ import annotations

from typing import Any

from workflows.local.engine import hooks, loops
from workflows.local.engine.nodes import (
    DAG,
    ERROR,
    FAILED,
    OMITTED,
    RETRY,
    RUNNING,
    SKIPPED,
    SKIPPED_TYPE,
    SUCCEEDED,
    TASK_GROUP,
    Node,
)
from workflows.local.engine.outputs import OutputError, add_skipped_outputs, aggregate, global_names, template_outputs
from workflows.local.engine.scope import Scope
from workflows.local.engine.state import Holder, Operation, ParallelismReached, TemplateTimeout
from workflows.local.engine.steps import continues_on, should_expand
from workflows.local.engine.substitute import MissingVariable, SubstitutionError, replace_obj, replace_string
from workflows.local.lang import depends
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.govaluate import should_execute


class DagContext:
    def __init__(self, op: Operation, node: Node, ctx: Any, tmpl: dict[str, Any]):
        self.op, self.node, self.ctx, self.tmpl = op, node, ctx, tmpl
        self.tasks: dict[str, dict[str, Any]] = {t["name"]: t for t in (tmpl.get("dag") or {}).get("tasks") or []}
        self.visited: set[str] = set()
        self._logic: dict[str, str] = {}
        self.groups_to_complete: dict[str, str] = {}

    def task_node_name(self, task: str) -> str:
        return f"{self.node.name}.{task}"

    def task_node(self, task: str) -> Node | None:
        return self.op.get(self.task_node_name(task))

    def logic(self, task: str) -> str:
        """GetTaskDependsLogic: `depends`, or `dependencies` joined, each bare name expanded."""
        if task not in self._logic:
            spec = self.tasks[task]
            continue_on = {name: depends.ContinueOn(bool((t.get("continueOn") or {}).get("failed")),
                                                    bool((t.get("continueOn") or {}).get("error")))
                           for name, t in self.tasks.items()}
            if not spec.get("depends") and not spec.get("dependencies"):
                self._logic[task] = ""
            else:
                self._logic[task] = depends.expand(spec.get("depends") or "", continue_on,
                                                   spec.get("dependencies") or [])
        return self._logic[task]

    def dependencies(self, task: str) -> list[str]:
        return list(depends.dependencies(self.logic(task)))

    def ancestors(self, task: str) -> list[str]:
        seen: list[str] = []
        todo = self.dependencies(task)
        while todo:
            dep = todo.pop(0)
            if dep not in seen:
                seen.append(dep)
                todo.extend(self.dependencies(dep))
        return seen

    def leaves(self) -> list[str]:
        leaf = {name: True for name in self.tasks}
        for name in self.tasks:
            for dep in self.dependencies(name):
                leaf[dep] = False
        return sorted(name for name, is_leaf in leaf.items() if is_leaf)


def execute_dag(op: Operation, name: str, ctx: Any, tmpl: dict[str, Any], holder: Holder, boundary_id: str,
                hooked: bool, retried: bool) -> Node:
    node = op.get(name) or op.init_executable_node(name, DAG, ctx.scope, tmpl, holder, boundary_id, RUNNING,
                                                   hooked=hooked, retried=retried)
    op.node_templates[node.id] = tmpl
    try:
        return _execute_dag(op, DagContext(op, node, ctx, tmpl))
    finally:
        if op.node(node.id).fulfilled:
            op.kill_daemoned_children(node.id)


def _execute_dag(op: Operation, d: DagContext) -> Node:
    node, tmpl = d.node, d.tmpl
    target = (tmpl.get("dag") or {}).get("target") or ""
    targets = target.split(" ") if target else d.leaves()
    for task in d.tasks:
        task_node = d.task_node(task)
        if task_node is not None and task_node.daemoned:
            execute_task(op, d, task)
    for task in targets:
        execute_task(op, d, task)
        task_node = d.task_node(task)
        if task_node is not None:
            try:
                scope = local_scope(op, d, d.tasks[task])
            except SubstitutionError as err:
                return op.mark_error(node.name, err)
            scope.set(f"tasks.{task}.status", task_node.phase)
            _, hook_error = hooks.lifecycle(op, scope, d.tasks[task].get("hooks"), task_node, node.id, d.ctx, "tasks",
                                            task)
            if hook_error is not None:
                return op.mark_error(node.name, hook_error)
    phase = assess_phase(op, d, targets, _shut_down(op, d, targets))
    for group, group_phase in d.groups_to_complete.items():
        op.mark_phase(group, group_phase)
    if phase == RUNNING:
        return node
    if phase in (FAILED, ERROR):
        _update_outbound(op, d, targets)
        return op.mark_phase(node.name, phase)
    scope = Scope(tmpl)
    for task, spec in d.tasks.items():
        task_node = d.task_node(task)
        if task_node is None:
            continue
        if task_node.type == TASK_GROUP:
            aggregate(scope, "tasks", task, [op.node(c) for c in task_node.children])
        scope.add_node("tasks", task, task_node, op.last_attempt(task_node))
        _skipped_outputs(d, scope, spec, task_node)
        op.add_outputs_to_global(task_node)
    try:
        outputs = template_outputs(tmpl, scope)
    except Unsupported:
        raise
    except (OutputError, LangError) as err:
        return op.mark_error(node.name, err)
    if outputs is not None:
        node.outputs = outputs
        node.extra["globalNames"] = global_names(tmpl)
        op.add_outputs_to_global(node)
    if node.extra.get("memoization") and getattr(op, "locks", None) is not None:
        op.locks.save(op, node)  # type: ignore[attr-defined]
    _update_outbound(op, d, targets)
    return op.mark_phase(node.name, SUCCEEDED)


def _skipped_outputs(d: DagContext, scope: Scope, spec: dict[str, Any], task_node: Node) -> None:
    if task_node.phase not in (SKIPPED, OMITTED) or task_node.outputs is not None:
        return
    try:
        _, tmpl = d.ctx.resolve(Holder.of(spec, "task"))
    except LookupError:
        return
    add_skipped_outputs(scope, "tasks", spec["name"], task_node, tmpl, False)


def _update_outbound(op: Operation, d: DagContext, targets: list[str]) -> None:
    outbound: list[str] = []
    for task in targets:
        task_node = d.task_node(task)
        if task_node is not None:
            outbound.extend(op.outbound_nodes(task_node.id))
    d.node.extra["outbound"] = outbound


def _shut_down(op: Operation, d: DagContext, targets: list[str]) -> bool:
    """A shutdown fails the DAG at once, once its targets' exit handlers ended, unless the DAG is part of an exit
    handler (dag.go:326-358)."""
    if not op.shutdown or op.part_of_exit_handler(d.node):
        return False
    for task in targets:
        task_node = d.task_node(task)
        if task_node is not None and task_node.completed:
            on_exit = op.get(f"{task_node.name}.onExit")
            if on_exit is not None and not on_exit.fulfilled:
                return False
    return True


def assess_phase(op: Operation, d: DagContext, targets: list[str], shut_down: bool = False) -> str:
    """assessDAGPhase (dag.go:139-246)."""
    if shut_down:
        return FAILED
    target_ids: dict[str, str] = {}
    for target in targets:
        target_node = d.task_node(target)
        if target_node is not None:
            target_ids[target_node.id] = ""
    branch: dict[str, str] = {}
    queue: list[tuple[str, str]] = [(c, SUCCEEDED) for c in d.node.children]
    seen: set[tuple[str, str]] = set()
    while queue:
        ident, phase = queue.pop(0)
        if (ident, phase) in seen:
            continue
        seen.add((ident, phase))
        current = op.tree.nodes.get(ident)
        if current is None:
            return RUNNING
        branch_phase = phase
        if not current.fulfilled:
            group_phase = _completable_group(op, current)
            if group_phase is None:
                return RUNNING
            d.groups_to_complete[current.name] = group_phase
            branch_phase = group_phase
        elif current.completed:
            branch_phase = current.phase
        if ident in target_ids and target_ids[ident] not in (FAILED, ERROR):
            target_ids[ident] = branch_phase
            branch[ident] = branch_phase
        children = _retry_children_ids(op, current) if current.type == RETRY else current.children
        queue.extend((c, branch_phase) for c in children)
    fail_fast = (d.tmpl.get("dag") or {}).get("failFast")
    fail_fast = True if fail_fast is None else bool(fail_fast)
    result = SUCCEEDED
    for task in targets:
        task_node = d.task_node(task)
        phase = target_ids.get(task_node.id, "") if task_node is not None else ""
        if phase == "":
            result = RUNNING
            if not fail_fast:
                break
        elif phase in (FAILED, ERROR):
            if continues_on(d.tasks.get(task, {}), phase):
                continue
            result = phase
            if fail_fast:
                break
    return result


def _retry_children_ids(op: Operation, node: Node) -> list[str]:
    """getRetryNodeChildrenIds (operator.go:2131-2147): a Retry node's hooks, and its attempts' children."""
    ids: list[str] = []
    for child_id in reversed(node.children):
        child = op.tree.nodes.get(child_id)
        if child is None:
            continue
        if child.extra.get("hooked"):
            ids.append(child.id)
        elif child.children:
            ids.extend(child.children)
    return ids


def _completable_group(op: Operation, node: Node) -> str | None:
    if node.type != TASK_GROUP or not node.children:
        return None
    phase = SUCCEEDED
    for child in node.children:
        kid = op.tree.nodes.get(child)
        if kid is None or not kid.fulfilled:
            return None
        if kid.phase in (FAILED, ERROR):
            phase = kid.phase
    return phase


def local_scope(op: Operation, d: DagContext, task: dict[str, Any]) -> Scope:
    """buildLocalScopeFromTask: the ancestors' results and outputs (aggregated for loops)."""
    scope = Scope(d.tmpl)
    scope.add_workflow_outputs(op.outputs)
    for ancestor in d.ancestors(task["name"]):
        anode = d.task_node(ancestor)
        if anode is None:
            raise SubstitutionError(f"Ancestor task node {ancestor} not found")
        if anode.type == TASK_GROUP:
            kids = [n for n in op.tree.nodes.values() if n.boundary_id == d.node.id
                    and n.name.startswith(anode.name + "(")]
            aggregate(scope, "tasks", ancestor, kids)
        scope.add_node("tasks", ancestor, anode, op.last_attempt(anode))
        _skipped_outputs(d, scope, d.tasks[ancestor], anode)
    return scope


def execute_task(op: Operation, d: DagContext, name: str) -> None:  # noqa: C901 - executeDAGTask's steps
    if name in d.visited:
        return
    d.visited.add(name)
    if name not in d.tasks:
        raise SubstitutionError(f"target {name} does not exist")
    task = d.tasks[name]
    node = d.task_node(name)
    if node is not None and (node.fulfilled or node.phase == RUNNING):
        scope = local_scope(op, d, task)
        scope.set(f"tasks.{name}.status", node.phase)
        hooked, hook_error = hooks.lifecycle(op, scope, task.get("hooks"), node, d.node.id, d.ctx, "tasks", name)
        if hook_error is not None:
            op.mark_error(node.name, hook_error)
        if not hooked:
            return
    if node is not None and node.fulfilled:
        if node.completed:
            scope = local_scope(op, d, task)
            scope.set(f"tasks.{name}.status", node.phase)
            hooks.on_exit(op, hooks.exit_hook(task, op.spec.get("arguments") or {}), node, d.node.id, d.ctx,
                          "tasks", name, scope)
        return
    node_name = d.task_node_name(name)
    deps = d.dependencies(name)
    group = op.get(node_name)
    if group is not None and group.type != TASK_GROUP:
        group = None

    def connect(task_node_name: str) -> None:
        if not deps or group is not None:
            op.add_child(group.name if group is not None else d.node.name, task_node_name)
            return
        for dep in deps:
            dep_node = d.task_node(dep)
            if dep_node is not None:
                for out in op.outbound_nodes(dep_node.id):
                    op.add_child(op.node(out).name, task_node_name)

    def error_node(message: str) -> None:
        op.init_node(node_name, SKIPPED_TYPE, d.ctx.scope, Holder.of(task, "task"), d.node.id, ERROR,
                     message=message)
        connect(node_name)

    if d.logic(name):
        for dep in deps:
            execute_task(op, d, dep)
        if node is None:
            results = {}
            for dep in deps:
                dep_node = d.task_node(dep)
                if dep_node is None or not dep_node.fulfilled or not op.hooks_fulfilled(dep_node):
                    return
                kids = [op.node(c).phase for c in dep_node.children] if dep_node.type == TASK_GROUP else None
                results[dep] = depends.task_results(dep_node.phase, dep_node.daemoned, kids)
            try:
                execute = depends.evaluate(d.logic(name), results)
            except LangError as err:
                return error_node(str(err))
            if not execute:
                op.init_node(node_name, SKIPPED_TYPE, d.ctx.scope, Holder.of(task, "task"), d.node.id, OMITTED,
                             message="omitted: depends condition not met")
                connect(node_name)
                return
    try:
        new_task = resolve_dependency_references(op, d, task)
        scope = local_scope(op, d, new_task)
        items = loops.items_of(new_task) if should_expand(new_task) else None
        expanded = [new_task] if items is None else (
            loops.expand(new_task, items, scope.parameters_any(op.global_params())) if items else [])
    except MissingVariable:
        return None
    except Unsupported:
        raise
    except (ValueError, LangError) as err:
        return error_node(str(err))
    if should_expand(task):
        if not expanded:
            op.init_node(node_name, SKIPPED_TYPE, d.ctx.scope, Holder.of(task, "task"), d.node.id, SKIPPED,
                         message="Skipped, empty params")
            connect(node_name)
        elif group is None:
            connect(node_name)
            group = op.init_node(node_name, TASK_GROUP, d.ctx.scope, Holder.of(task, "task"), d.node.id, RUNNING)
    for t in expanded:
        task_node_name = d.task_node_name(t["name"])
        holder = Holder.of(t, "task")
        if op.get(task_node_name) is None:
            connect(task_node_name)
            try:
                proceed = should_execute(t.get("when") or "")
            except ValueError as err:
                op.init_node(task_node_name, SKIPPED_TYPE, d.ctx.scope, holder, d.node.id, ERROR, message=str(err))
                continue
            if not proceed:
                op.init_node(task_node_name, SKIPPED_TYPE, d.ctx.scope, holder, d.node.id, SKIPPED,
                             message=f"when '{t.get('when')}' evaluated false")
                continue
        child, failure = op.execute(task_node_name, holder, d.ctx, dict(t.get("arguments") or {}), d.node.id)
        if isinstance(failure, TemplateTimeout):
            op.mark_phase(task_node_name, FAILED, str(failure))
            return None
        if failure is not None and not isinstance(failure, ParallelismReached):
            op.mark_error(task_node_name, f"task '{task_node_name}' errored: {failure}")
            return None
        if child is None:
            return None
        if child.completed:
            scope = local_scope(op, d, task)
            scope.set(f"tasks.{name}.status", child.phase)
            has_exit, exit_node, exit_error = hooks.on_exit(
                op, hooks.exit_hook(task, op.spec.get("arguments") or {}), child, d.node.id, d.ctx, "tasks", name,
                scope)
            if has_exit and (exit_node is None or not exit_node.fulfilled or exit_error is not None):
                return None
    if group is not None:
        group_phase = SUCCEEDED
        for t in expanded:
            kid = d.task_node(t["name"])
            if kid is None or not kid.fulfilled:
                return None
            if kid.phase in (FAILED, ERROR):
                group_phase = kid.phase
        op.mark_phase(group.name, group_phase)
    return None


def resolve_dependency_references(op: Operation, d: DagContext, task: dict[str, Any]) -> dict[str, Any]:
    """resolveDependencyReferences: `when` first, then the task, with `tasks.*`/`steps.*` required."""
    scope = local_scope(op, d, task)
    temp = dict(task)
    original_hooks = temp.pop("hooks", None)
    merged = scope.parameters_any(op.global_params())
    if temp.get("when"):
        when = replace_string(temp["when"], merged, ["tasks", "steps"])
        try:
            proceed = should_execute(when)
        except ValueError:
            if not should_expand(temp):
                raise
        else:
            if not proceed:
                temp["when"] = when
                if original_hooks is not None:
                    temp["hooks"] = original_hooks
                return temp
    if temp.get("arguments"):
        temp["arguments"] = scope.mark_absent_optional_args(temp["arguments"])
    new = replace_obj(temp, merged, ["tasks", "steps"])
    if original_hooks is not None:
        new["hooks"] = original_hooks
    arts = []
    for art in (new.get("arguments") or {}).get("artifacts") or []:
        if not art.get("from") and not art.get("fromExpression"):
            arts.append(art)
            continue
        try:
            found = scope.resolve_artifact(art, op.global_params())
        except (ValueError, LangError) as err:
            if "Unable to resolve" in str(err) and art.get("optional"):
                continue
            raise
        if found is not None:
            found["name"] = art["name"]
            arts.append(found)
    if (new.get("arguments") or {}).get("artifacts"):
        new["arguments"]["artifacts"] = arts
    return dict(new)
