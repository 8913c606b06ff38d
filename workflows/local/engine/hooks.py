"""Exit handlers and lifecycle hooks as Argo v4.1.2 runs them (workflow/controller/exit_handler.go, hooks.go):
`onExit`/`hooks.exit` at workflow, step and task level, and the other hooks, fired the first time their expr-lang
expression is true. Hook nodes are children of the node they belong to, flagged `hooked`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.local.engine.nodes import Node
from workflows.local.engine.scope import Scope, artifact_dict
from workflows.local.engine.state import Holder, Operation
from workflows.local.engine.substitute import replace_obj
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.exprlang import argo_env, compile_expr


class HookError(ValueError):
    """A hook Argo refuses to run (no expression, an expression that does not evaluate)."""


def exit_hook(owner: Mapping[str, Any], workflow_args: Mapping[str, Any]) -> dict[str, Any] | None:
    """GetExitHook: `onExit: <template>` with the workflow's arguments, or `hooks.exit` (its own arguments, else
    the workflow's)."""
    if owner.get("onExit"):
        return {"template": owner["onExit"], "arguments": dict(workflow_args)}
    hook = (owner.get("hooks") or {}).get("exit")
    if hook is None:
        return None
    hook = dict(hook)
    if not _has_arguments(hook.get("arguments")):
        hook["arguments"] = dict(workflow_args)
    return hook


def _has_arguments(args: Mapping[str, Any] | None) -> bool:
    return bool(args and (args.get("parameters") or args.get("artifacts")))


def _bool(op: Operation, expression: str, variables: Mapping[str, Any], hook_name: str) -> bool:
    if not expression:
        raise HookError(f"Expression required for hook {hook_name}")
    return compile_expr(expression).run_bool(argo_env(variables))


def resolve_exit_arguments(op: Operation, args: Mapping[str, Any], prefix: str, name: str, node: Node,
                           scope: Scope | None) -> dict[str, Any]:
    """resolveExitTmplArgument: the hook's arguments in the step's/task's scope, with the node's own outputs."""
    scope = scope if scope is not None else Scope(None)
    outputs = node.outputs
    last = op.last_attempt(node)
    if last is not None:
        outputs = last.outputs
    if outputs is not None:
        for param in outputs.parameters:
            scope.set(f"{prefix}.{name}.outputs.parameters.{param.name}", param.value or "")
        for art in outputs.artifacts:
            scope.set(f"{prefix}.{name}.outputs.artifacts.{art.name}", artifact_dict(art))
    marked = scope.mark_absent_optional_args(dict(args))
    resolved = replace_obj(marked, scope.parameters_any(op.global_params()), None)
    artifacts = resolved.get("artifacts") or []
    kept = []
    for art in artifacts:
        if not art.get("from") and not art.get("fromExpression"):
            kept.append(art)
            continue
        try:
            found = scope.resolve_artifact(art, op.global_params())
        except ValueError as err:
            if art.get("optional"):
                continue
            raise HookError(f"unable to resolve references: {err}") from err
        if found is not None:
            found["name"] = art["name"]
            kept.append(found)
    if artifacts:
        resolved["artifacts"] = kept
    return dict(resolved)


def run_on_exit_node(op: Operation, hook: Mapping[str, Any] | None, parent: Node, boundary_id: str, tmpl_ctx: Any,
                     prefix: str, name: str, scope: Scope | None) -> tuple[bool, Node | None]:
    """runOnExitNode: start or watch `<node>.onExit`; returns whether there is one and its node."""
    if hook is None or (op.shutdown and op.shutdown != "Stop"):
        return False, None
    if hook.get("expression"):
        variables = (scope or Scope(None)).parameters_any(op.global_params())
        if not _bool(op, hook["expression"], variables, f"{parent.name}.onExit"):
            return False, None
    args = hook.get("arguments") or {}
    if _has_arguments(args):
        args = resolve_exit_arguments(op, args, prefix, name, parent, scope)
    exit_name = f"{parent.name}.onExit"
    node = op.execute_template(exit_name, Holder(template=hook.get("template", "") or "",
                                                 template_ref=hook.get("templateRef"), kind="other"),
                               tmpl_ctx, dict(args), boundary_id, on_exit=True, hooked=True)
    op.add_child(parent.name, exit_name)
    return True, node


def run_lifecycle_hooks(op: Operation, scope: Scope, hooks: Mapping[str, Any] | None, parent: Node,
                        boundary_id: str, tmpl_ctx: Any, prefix: str, name: str) -> bool:
    """executeTmplLifeCycleHook: fire a step's or task's hooks whose expression holds; True when every hook node
    started is fulfilled."""
    started: list[Node | None] = []
    for hook_name in sorted(hooks or {}):
        if hook_name == "exit":
            continue
        hook = (hooks or {})[hook_name]
        hook_node_name = f"{parent.name}.hooks.{hook_name}"
        existing = op.get(hook_node_name)
        variables = scope.parameters_any(op.global_params())
        if not (_bool(op, hook.get("expression", ""), variables, hook_node_name) or existing is not None):
            continue
        args = hook.get("arguments") or {}
        outputs = parent.outputs
        last = op.last_attempt(parent)
        if last is not None:
            outputs = last.outputs
        if _has_arguments(args) and outputs is not None:
            args = resolve_exit_arguments(op, args, prefix, name, parent, scope)
        node = op.execute_template(hook_node_name, Holder(template=hook.get("template", "") or "",
                                                          template_ref=hook.get("templateRef"), kind="other"),
                                   tmpl_ctx, dict(args), boundary_id, hooked=True)
        op.add_child(parent.name, hook_node_name)
        started.append(node)
    return all(n is None or n.fulfilled for n in started)


def run_workflow_hooks(op: Operation, tmpl_ctx: Any) -> bool:
    """executeWfLifeCycleHook: the workflow's hooks over the globals, as `<workflow>.hooks.<name>`."""
    started: list[Node | None] = []
    hooks = op.spec.get("hooks") or {}
    for hook_name in sorted(hooks):
        if hook_name == "exit":
            continue
        hook = hooks[hook_name]
        hook_node_name = f"{op.workflow}.hooks.{hook_name}"
        existing = op.get(hook_node_name)
        if not (_bool(op, hook.get("expression", ""), op.global_params(), hook_node_name) or existing is not None):
            continue
        node = op.execute_template(hook_node_name, Holder(template=hook.get("template", "") or "",
                                                          template_ref=hook.get("templateRef"), kind="other"),
                                   tmpl_ctx, dict(hook.get("arguments") or {}), "", hooked=True)
        op.add_child(op.workflow, hook_node_name)
        started.append(node)
    return all(n is None or n.fulfilled for n in started)


def lifecycle(op: Operation, scope: Scope, hooks: Mapping[str, Any] | None, parent: Node, boundary_id: str,
              tmpl_ctx: Any, prefix: str, name: str) -> tuple[bool, Exception | None]:
    """run_lifecycle_hooks with Argo's error return: (completed, the error that stopped it)."""
    try:
        return run_lifecycle_hooks(op, scope, hooks, parent, boundary_id, tmpl_ctx, prefix, name), None
    except Unsupported:
        raise
    except (ValueError, LangError) as err:
        return False, err


def on_exit(op: Operation, hook: Mapping[str, Any] | None, parent: Node, boundary_id: str, tmpl_ctx: Any,
            prefix: str, name: str, scope: Scope | None) -> tuple[bool, Node | None, Exception | None]:
    """run_on_exit_node with Argo's error return: (has an exit handler, its node, the error)."""
    try:
        has_exit, node = run_on_exit_node(op, hook, parent, boundary_id, tmpl_ctx, prefix, name, scope)
    except Unsupported:
        raise
    except (ValueError, LangError) as err:
        return True, None, err
    return has_exit, node, None
