"""Steps templates as Argo v4.1.2 runs them (workflow/controller/steps.go): groups one after the other, each
group's steps in parallel after their references are resolved from earlier groups, loops expanded, `when`
evaluated by govaluate; the group's phase from its children and their continueOn, the steps node Failed as soon as
a group is Failed or Error, its outputs from its scope once the last group succeeded.
"""

from __future__ import annotations

from typing import Any

from workflows.local.engine import hooks, loops
from workflows.local.engine.nodes import (
    ERROR,
    FAILED,
    RUNNING,
    SKIPPED,
    SKIPPED_TYPE,
    STEP_GROUP,
    STEPS,
    SUCCEEDED,
    Node,
)
from workflows.local.engine.outputs import OutputError, add_skipped_outputs, aggregate, template_outputs
from workflows.local.engine.scope import Scope
from workflows.local.engine.state import Holder, Operation, ParallelismReached, TemplateTimeout
from workflows.local.engine.substitute import MissingVariable, SubstitutionError, replace_obj, replace_string
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.govaluate import should_execute

LOOP_KEYS = ("withItems", "withParam", "withSequence")


def should_expand(step: dict[str, Any]) -> bool:
    return bool(step.get("withItems")) or bool(step.get("withParam")) or step.get("withSequence") is not None


def continues_on(step: dict[str, Any], phase: str) -> bool:
    continue_on = step.get("continueOn") or {}
    return (phase == FAILED and bool(continue_on.get("failed"))) or (phase == ERROR and bool(continue_on.get("error")))


def execute_steps(op: Operation, name: str, ctx: Any, tmpl: dict[str, Any], holder: Holder, boundary_id: str,
                  hooked: bool, retried: bool) -> Node:
    node = op.get(name) or op.init_executable_node(name, STEPS, ctx.scope, tmpl, holder, boundary_id, RUNNING,
                                                   hooked=hooked, retried=retried)
    node.extra["globalNames"] = {}
    op.node_templates[node.id] = tmpl
    try:
        return _execute_steps(op, node, ctx, tmpl)
    finally:
        if op.node(node.id).fulfilled:
            op.kill_daemoned_children(node.id)


def _execute_steps(op: Operation, node: Node, ctx: Any, tmpl: dict[str, Any]) -> Node:
    scope = Scope(tmpl)
    scope.add_workflow_outputs(op.outputs)
    groups = tmpl.get("steps") or []
    for i, group in enumerate(groups):
        sg_name = f"{node.name}[{i}]"
        sg_node = op.get(sg_name)
        if sg_node is None:
            sg_node = op.init_node(sg_name, STEP_GROUP, ctx.scope, Holder(), node.id, RUNNING)
        elif not sg_node.fulfilled:
            op.mark_phase(sg_name, RUNNING)
        if i == 0:
            op.add_child(node.name, sg_name)
        else:
            previous = op.get(f"{node.name}[{i - 1}]")
            assert previous is not None  # noqa: S101 - groups are created in order
            if not previous.children:
                op.add_child(previous.name, sg_name)
            for child in previous.children:
                for out in op.outbound_nodes(child):
                    op.add_child(op.node(out).name, sg_name)
        steps_list = group.get("steps") if isinstance(group, dict) else group
        sg_node = execute_step_group(op, list(steps_list or []), sg_name, node.id, ctx, scope)
        if not sg_node.fulfilled:
            return node
        if sg_node.phase in (FAILED, ERROR):
            _update_outbound(op, node, groups)
            return op.mark_phase(node.name, FAILED, sg_node.message)
        for step in steps_list or []:
            child_name = f"{sg_name}.{step['name']}"
            step_node = op.get(child_name)
            if step_node is None:
                kids = [n for n in op.tree.nodes.values() if n.boundary_id == node.id
                        and n.name.startswith(child_name + "(") and n.type != SKIPPED_TYPE]
                if kids:
                    aggregate(scope, "steps", step["name"], kids)
                scope.add_node("steps", step["name"], sg_node, None)
            else:
                scope.add_node("steps", step["name"], step_node, op.last_attempt(step_node))
                _skipped_outputs(op, scope, ctx, step, step_node)
    _update_outbound(op, node, groups)
    try:
        outputs = template_outputs(tmpl, scope)
    except Unsupported:
        raise
    except (OutputError, LangError) as err:
        return op.mark_error(node.name, err)
    if outputs is not None:
        node.outputs = outputs
        node.extra["globalNames"] = _global_names(tmpl)
        op.add_outputs_to_global(node)
    if node.extra.get("memoization") and getattr(op, "locks", None) is not None:
        op.locks.save(op, node)  # type: ignore[attr-defined]
    return op.mark_phase(node.name, SUCCEEDED)


def _global_names(tmpl: dict[str, Any]) -> dict[str, str]:
    from workflows.local.engine.outputs import global_names

    return global_names(tmpl)


def _skipped_outputs(op: Operation, scope: Scope, ctx: Any, step: dict[str, Any], child: Node) -> None:
    if child.phase not in (SKIPPED, "Omitted") or child.outputs is not None:
        return
    try:
        _, tmpl = ctx.resolve(Holder.of(step, "step"))
    except LookupError:
        return
    add_skipped_outputs(scope, "steps", step["name"], child, tmpl, True)


def _update_outbound(op: Operation, node: Node, groups: list[Any]) -> None:
    for i in range(len(groups) - 1, -1, -1):
        last = op.get(f"{node.name}[{i}]")
        if last is not None:
            outbound: list[str] = []
            for child in last.children:
                outbound.extend(op.outbound_nodes(child))
            node.extra["outbound"] = outbound
            return


def resolve_references(op: Operation, group: list[dict[str, Any]], scope: Scope) -> list[dict[str, Any]]:
    """resolveReferences: `when` first, then the whole step, with `steps.*`/`tasks.*` required."""
    resolved = []
    for step in group:
        step = dict(step)
        original_hooks = step.pop("hooks", None)
        merged = scope.parameters_any(op.global_params())
        if step.get("when"):
            when = replace_string(step["when"], merged, ["steps", "tasks"])
            try:
                proceed = should_execute(when)
            except ValueError:
                if not should_expand(step):
                    raise
            else:
                if not proceed:
                    step["when"] = when
                    if original_hooks is not None:
                        step["hooks"] = original_hooks
                    resolved.append(step)
                    continue
        if step.get("arguments"):
            step["arguments"] = scope.mark_absent_optional_args(step["arguments"])
        new = replace_obj(step, merged, ["steps", "tasks"])
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
                if art.get("optional"):
                    continue
                raise SubstitutionError(f"unable to resolve references: {err}") from err
            if found is not None:
                found["name"] = art["name"]
                arts.append(found)
        if arts or (new.get("arguments") or {}).get("artifacts"):
            new["arguments"]["artifacts"] = arts
        resolved.append(new)
    return resolved


def _expand_group(op: Operation, sg_name: str, group: list[dict[str, Any]], boundary_id: str, ctx: Any,
                  scope: Scope) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in group:
        if not should_expand(step):
            out.append(step)
            continue
        items = loops.items_of(step) or []
        expanded = loops.expand(step, items, scope.parameters_any(op.global_params())) if items else []
        if not expanded:
            child_name = f"{sg_name}.{step['name']}"
            if op.get(child_name) is None:
                op.init_node(child_name, SKIPPED_TYPE, ctx.scope, Holder.of(step, "step"), boundary_id, SKIPPED,
                             message="Skipped, empty params")
                op.add_child(sg_name, child_name)
        out.extend(expanded)
    return out


def execute_step_group(op: Operation, group: list[dict[str, Any]], sg_name: str, boundary_id: str, ctx: Any,
                       scope: Scope) -> Node:
    node = op.get(sg_name)
    assert node is not None  # noqa: S101 - created by the caller
    if node.fulfilled and op.children_fulfilled(node):
        return node
    try:
        group = resolve_references(op, group, scope)
    except MissingVariable:
        return node
    except Unsupported:
        raise
    except (ValueError, LangError) as err:
        return op.mark_error(sg_name, f"failed to resolve references: {err}")
    try:
        group = _expand_group(op, sg_name, group, boundary_id, ctx, scope)
    except Unsupported:
        raise
    except (ValueError, LangError) as err:
        return op.mark_error(sg_name, err)
    node_steps: dict[str, dict[str, Any]] = {}
    for step in group:
        child_name = f"{sg_name}.{step['name']}"
        holder = Holder.of(step, "step")
        try:
            proceed = should_execute(step.get("when") or "")
        except ValueError as err:
            if op.get(child_name) is None:
                op.init_node(child_name, SKIPPED_TYPE, ctx.scope, holder, boundary_id, ERROR, message=str(err))
            op.add_child(sg_name, child_name)
            return op.mark_error(sg_name, err)
        if not proceed:
            if op.get(child_name) is None:
                op.init_node(child_name, SKIPPED_TYPE, ctx.scope, holder, boundary_id, SKIPPED,
                             message=f"when '{step.get('when')}' evaluated false")
                op.add_child(sg_name, child_name)
            continue
        child, failure = op.execute(child_name, holder, ctx, dict(step.get("arguments") or {}), boundary_id)
        if isinstance(failure, TemplateTimeout):
            return op.mark_phase(sg_name, FAILED, str(failure))
        if failure is not None and not isinstance(failure, ParallelismReached):
            op.add_child(sg_name, child_name)
            return op.mark_error(sg_name, f"step group deemed errored due to child {child_name} error: {failure}")
        if child is not None:
            node_steps[child.name] = step
            op.add_child(sg_name, child_name)
    node = op.node(node.id)
    completed = True
    for child_id in list(node.children):
        if child_id not in op.tree.nodes:
            continue
        child = op.node(child_id)
        step = node_steps.get(child.name, {})
        scope.set(f"steps.{child.display_name}.status", child.phase)
        hooked, hook_error = hooks.lifecycle(op, scope, step.get("hooks"), child, boundary_id, ctx, "steps",
                                             step.get("name", ""))
        if hook_error is not None:
            op.mark_error(sg_name, hook_error)
        if not hooked:
            return op.node(node.id)
        if not child.fulfilled:
            completed = False
        elif child.completed:
            has_exit, exit_node, exit_error = hooks.on_exit(
                op, hooks.exit_hook(step, op.spec.get("arguments") or {}), child, boundary_id, ctx, "steps",
                step.get("name", ""), scope)
            if exit_error is not None:
                return op.mark_error(sg_name, exit_error)
            if has_exit and (exit_node is None or not exit_node.fulfilled):
                completed = False
    if not completed:
        if node.fulfilled:
            return op.mark_phase(sg_name, RUNNING)
        return node
    for child_id in node.children:
        if child_id not in op.tree.nodes:
            continue
        child = op.node(child_id)
        step = node_steps.get(child.name, {})
        if child.phase in (FAILED, ERROR) and not continues_on(step, child.phase):
            return op.mark_phase(sg_name, FAILED, f"child '{child_id}' failed")
    return op.mark_phase(sg_name, SUCCEEDED)
