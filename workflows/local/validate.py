"""What `argo submit` rejects, found before a local run: Argo v4.1.2's workflow validation
(workflow/validate/validate.go `Workflow`), with steps and DAG templates here and the rest in `validation.py`.

    problems = validate(workflow, Resolver(workflow, store))    # [] when Argo would accept the workflow

Scopes are built as validate.go builds them: each template is checked once (keyed by its base and name) with
placeholder arguments, a steps template adds each step's outputs to the scope after it, a DAG adds every task's
outputs and each task also sees its ancestors' status and aggregates; `{{=...}}` tags are not checked
(template.Validate skips them), and where Argo skips a templateRef named by a variable, so does this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.local.templates import Base, Resolver, template_type
from workflows.local.validation import (
    ANY_ITEM,
    ANY_WF_ARTIFACT,
    ANY_WF_PARAM,
    FIELD_NAME,
    Invalid,
    Problem,
    TemplateValidator,
    as_json,
    has_output,
    is_parameter,
    task_dependencies,
    task_results_valid,
    valid_step_name,
    where_of,
)


class Validator(TemplateValidator):
    def steps(self, scope: dict[str, Any], base: Base, template: Mapping[str, Any]) -> None:
        """validateSteps."""
        if template.get("activeDeadlineSeconds") is not None:
            raise Invalid("activeDeadlineSeconds", "activeDeadlineSeconds is only valid for leaf templates")
        where, names = where_of(base, template), set()
        for i, group in enumerate(template.get("steps") or []):
            for j, step in enumerate(group or []):
                field = f"steps[{i}][{j}]"
                name = str(step.get("name") or "")
                try:
                    if not name:
                        raise Invalid(field, f"steps[{i}].name is required")
                    if name in names:
                        raise Invalid(field, f"steps[{i}].name '{name}' is not unique")
                    if not valid_step_name(name):
                        raise Invalid(field, f"steps[{i}].name '{name}' is invalid")
                    names.add(name)
                    scope[f"steps.{name}.status"] = True
                    add_items(step, scope, field)
                except Invalid as err:
                    self.report(where, err.field, err.message)
                    continue
                self.arguments(where, f"{field}.arguments", step.get("arguments") or {})
                resolved = self.holder(step, base, None, where, field)
                template_of = resolved[1] if resolved else None
                if _has_exit_hook(step):
                    self.add_outputs(template_of, "steps", name, scope, False, False)
                self.hooks(step.get("hooks") or {}, where, f"{field}.hooks")
                step_scope = {**scope, **_inline_inputs(step)}
                try:
                    self.resolve_all(step_scope, as_json(step), field)
                except Invalid as err:
                    self.report(where, err.field, err.message)
                aggregate = bool(step.get("withItems")) or bool(step.get("withParam"))
                self.add_outputs(template_of, "steps", name, scope, aggregate, False)
                self.holder(step, base, step.get("arguments") or {}, where, field)

    def dag(self, scope: dict[str, Any], base: Base, template: Mapping[str, Any]) -> None:
        """validateDAG."""
        if template.get("activeDeadlineSeconds") is not None:
            raise Invalid("activeDeadlineSeconds", "activeDeadlineSeconds is only valid for leaf templates")
        where = where_of(base, template)
        spec = template.get("dag") or {}
        tasks = list(spec.get("tasks") or [])
        if not tasks:
            raise Invalid("dag.tasks", "must have at least one task")
        self.names(tasks, "dag.tasks", FIELD_NAME)
        by_name = {str(t.get("name")): t for t in tasks}
        deps = {name: task_dependencies(task) for name, task in by_name.items()}
        for name, needed in deps.items():
            for dep in needed:
                if dep not in by_name:
                    self.report(where, f"dag.tasks.{name}", f"sorting failed: invalid dependency {dep}")
        cycle = _cycle(deps)
        if cycle:
            raise Invalid("dag.tasks", f"dependency cycle detected: {'->'.join(cycle)}")
        using_depends = any(t.get("depends") for t in tasks)
        resolved: dict[str, dict[str, Any] | None] = {}
        by_name = {name: by_name[name] for name in _sorted(deps)}
        for name, task in by_name.items():
            field = f"dag.tasks.{name}"
            try:
                if (using_depends or task.get("dependencies")) and name[:1].isdigit():
                    raise Invalid(field, f"tasks.{name} name cannot begin with a digit when using either 'depends' "
                                         "or 'dependencies'")
                if using_depends and task.get("dependencies"):
                    raise Invalid(field, "cannot use both 'depends' and 'dependencies' in the same DAG template")
                if using_depends and task.get("continueOn") is not None:
                    raise Invalid(field, "cannot use 'continueOn' when using 'depends'. Instead use "
                                         "'dep-task.Failed'/'dep-task.Errored'")
            except Invalid as err:
                self.report(where, err.field, err.message)
            found = self.holder(task, base, None, where, field)
            resolved[name] = found[1] if found else None
            self.add_outputs(resolved[name], "tasks", name, scope, _loops(task), False)
            problem = task_results_valid(task)
            if problem:
                self.report(where, f"{field}.depends", problem)
            for dep, kind in deps[name].items():
                if dep in by_name and kind == "items" and not (by_name[dep].get("withItems") or by_name[dep].get(
                        "withParam") or by_name[dep].get("withSequence") is not None):
                    self.report(where, f"{field}.depends", f"dependency '{dep}' uses an items-based condition such "
                                                           "as .AnySucceeded or .AllFailed but does not contain any "
                                                           "items")
        target = str(spec.get("target") or "")
        self.resolve_all(scope, target, "dag.target")
        for part in target.split(" ") if target else []:
            if not is_parameter(part) and part not in by_name:
                self.report(where, "dag.target", f"target '{part}' is not defined")
        for name, task in by_name.items():
            field = f"dag.tasks.{name}"
            if task.get("hooks") is not None:
                scope[f"tasks.{name}.status"] = True
            self.add_outputs(resolved[name], "tasks", name, scope, False, False)
            task_scope = {**scope}
            ancestors = _ancestors(name, deps)
            for ancestor in ancestors:
                self.add_outputs(resolved.get(ancestor), "tasks", ancestor, task_scope,
                                 _loops(by_name.get(ancestor, {})), True)
            task_scope.update(_inline_inputs(task))
            try:
                add_items(task, task_scope, field)
                self.resolve_all(task_scope, as_json(task), field)
                _argument_ancestry(task.get("arguments") or {}, ancestors, field)
            except Invalid as err:
                self.report(where, err.field, err.message)
            self.arguments(where, f"{field}.arguments", task.get("arguments") or {})
            self.holder(task, base, task.get("arguments") or {}, where, field)

    def add_outputs(self, template: Mapping[str, Any] | None, prefix: str, name: str, scope: dict[str, Any],
                    aggregate: bool, ancestor: bool) -> None:
        """addOutputsToScope: what `steps.<name>.*`/`tasks.<name>.*` may be referred to."""
        ref = f"{prefix}.{name}"
        for key in ("id", "startedAt", "finishedAt", "hostNodeName"):
            scope[f"{ref}.{key}"] = True
        if ancestor:
            scope[f"{ref}.status"] = True
        if template is None:
            return
        if template.get("daemon"):
            scope[f"{ref}.ip"] = True
        if has_output(template):
            scope[f"{ref}.outputs.result"] = scope[f"{ref}.exitCode"] = True
        outputs = template.get("outputs") or {}
        for kind, magic in (("parameters", ANY_WF_PARAM), ("artifacts", ANY_WF_ARTIFACT)):
            for item in outputs.get(kind) or []:
                scope[f"{ref}.outputs.{kind}.{item.get('name')}"] = True
                global_name = item.get("globalName")
                if global_name and not is_parameter(str(global_name)):
                    key = f"workflow.outputs.{kind}.{global_name}"
                    scope[key] = True
                    self.globals[key] = self.placeholder()
                elif global_name:
                    scope[magic] = True
        if aggregate:
            scope[f"{ref}.outputs.parameters"] = True
            if template_type(template) in ("script", "containerSet"):
                scope[f"{ref}.outputs.result"] = scope[f"{ref}.exitCode"] = True


def add_items(holder: Mapping[str, Any], scope: dict[str, Any], field: str) -> None:
    """addItemsToScope: `item` and `item.<key>` of a loop."""
    items, param, sequence = holder.get("withItems"), holder.get("withParam"), holder.get("withSequence")
    if sum(bool(x) if x is not sequence else x is not None for x in (items, param, sequence)) > 1:
        raise Invalid(field, "only one of withItems, withParam, withSequence can be specified")
    if items:
        for item in items:
            if isinstance(item, list):
                scope.update({f"item.[{i}]": True for i in range(len(item))})
            elif isinstance(item, Mapping):
                scope.update({f"item.{k}": True for k in item})
            elif item is None:
                raise Invalid(field, f"unsupported withItems type: {item}")
            else:
                scope["item"] = True
    elif param:
        scope["item"] = scope[ANY_ITEM] = True
    elif sequence is not None:
        if sequence.get("count") is not None and sequence.get("end") is not None:
            raise Invalid(field, "only one of count or end can be defined in withSequence")
        scope["item"] = True


def _loops(task: Mapping[str, Any]) -> bool:
    """Whether a task's outputs aggregate (withItems or withParam: a withSequence loop does not, as validate.go)."""
    return bool(task.get("withItems")) or bool(task.get("withParam"))


def _sorted(deps: Mapping[str, Mapping[str, str]]) -> list[str]:
    """sortDAGTasks: dependencies first (ties in the DAG's order); a task on a cycle or needing an unknown task
    keeps its place after the others (both are reported)."""
    order: list[str] = []
    while len(order) < len(deps):
        ready = [n for n in deps if n not in order and all(d in order or d not in deps for d in deps[n])]
        order += ready or [n for n in deps if n not in order]
    return order


def _has_exit_hook(holder: Mapping[str, Any]) -> bool:
    return bool(holder.get("onExit")) or "exit" in (holder.get("hooks") or {})


def _inline_inputs(holder: Mapping[str, Any]) -> dict[str, Any]:
    inline = holder.get("inline") or {}
    return {f"inputs.parameters.{p.get('name')}": True for p in (inline.get("inputs") or {}).get("parameters") or []}


def _ancestors(name: str, deps: Mapping[str, Mapping[str, str]]) -> list[str]:
    """GetTaskAncestry: every task `name` depends on, directly or not."""
    seen: list[str] = []
    todo = list(deps.get(name, {}))
    while todo:
        current = todo.pop()
        if current not in seen and current != name:
            seen.append(current)
            todo += list(deps.get(current, {}))
    return seen


def _cycle(deps: Mapping[str, Mapping[str, str]]) -> list[str]:
    """verifyNoCycles: a dependency cycle as the path that closes it, or []."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in done:
            return []
        for dep in deps.get(name, {}):
            if dep in path:
                return [*path, dep]
            found = visit(dep, [*path, dep])
            if found:
                return found
        done.add(name)
        return []

    for name in deps:
        found = visit(name, [name])
        if found:
            return found
    return []


def _argument_ancestry(arguments: Mapping[str, Any], ancestors: list[str], field: str) -> None:
    """validateDAGTaskArgumentDependency: an argument starting with `{{tasks.X` must name an ancestor."""
    for kind, key in (("parameters", "value"), ("artifacts", "from")):
        for item in arguments.get(kind) or []:
            text = str(item.get(key) or "")
            if text.startswith("{{tasks."):
                task = text.split(".")[1]
                if task not in ancestors:
                    what = "parameter" if kind == "parameters" else "artifact"
                    raise Invalid(f"{field}.arguments.{kind}.{item.get('name')}",
                                  f"missing dependency '{task}' for {what} '{item.get('name')}'")


def validate(workflow: Mapping[str, Any], resolver: Resolver) -> list[Problem]:
    """Every place Argo's validation rejects in this workflow (empty: `argo submit` would accept it)."""
    return Validator(workflow, resolver).run()
