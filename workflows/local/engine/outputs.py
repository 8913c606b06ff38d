"""Outputs as Argo v4.1.2's controller computes them: a steps/DAG template's outputs from its scope
(getTemplateOutputsFromScope), loops' aggregated outputs (processAggregateNodeOutputs), whether a pod's stdout is
captured as outputs.result (hasOutputResultRef), the outputs of skipped and omitted nodes in a scope
(addSkippedNodeOutputsToScope), and suspend nodes' supplied outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from workflows.local.engine.inputs import any_string
from workflows.local.engine.loops import _compact
from workflows.local.engine.nodes import SUCCEEDED, Node, Outputs, Parameter
from workflows.local.engine.scope import Scope
from workflows.local.engine.substitute import SubstitutionError, to_json
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.exprlang import template_text
from workflows.local.lang.gotypes import to_json as go_json


class OutputError(ValueError):
    """A template's outputs cannot be resolved; the node is Error."""


def global_names(tmpl: Mapping[str, Any]) -> dict[str, str]:
    """The globalName of each declared output, keyed `parameters.<name>` / `artifacts.<name>`."""
    outputs = tmpl.get("outputs") or {}
    names = {f"parameters.{p['name']}": p["globalName"] for p in outputs.get("parameters") or []
             if p.get("globalName")}
    names.update({f"artifacts.{a['name']}": a["globalName"] for a in outputs.get("artifacts") or []
                  if a.get("globalName")})
    return names


def _loop_index(name: str) -> int:
    tail = name.split("(")[-1]
    return int(tail.split(":", 1)[0])


def aggregate(scope: Scope, prefix: str, name: str, children: list[Node]) -> None:
    """processAggregateNodeOutputs: the loop's results and parameters as JSON lists, by loop index."""
    if not children:
        return
    kept = [c for c in children if not c.extra.get("hooked") and not c.extra.get("retried")]
    kept.sort(key=lambda c: _loop_index(c.name))
    param_list: list[dict[str, str]] = []
    values: dict[str, list[str]] = {}
    results: list[str] = []
    for child in kept:
        if child.outputs is None or child.phase != SUCCEEDED:
            continue
        if child.outputs.parameters:
            entry: dict[str, str] = {}
            for param in child.outputs.parameters:
                entry[param.name] = param.value or ""
                values.setdefault(param.name, []).append(param.value or "")
            param_list.append(entry)
        if child.outputs.result is not None:
            try:
                results.append(_compact(child.outputs.result))
            except ValueError as err:
                raise Unsupported(f"aggregating the results of {prefix}.{name}: {child.display_name}'s result is "
                                  f"not JSON, and Argo's outcome then is not pinned down") from err
    scope.set(f"{prefix}.{name}.outputs.result", "[" + ",".join(results) + "]")
    scope.set(f"{prefix}.{name}.outputs.parameters", go_json(param_list))
    for output, value_list in values.items():
        scope.set(f"{prefix}.{name}.outputs.parameters.{output}", _value_list(value_list))


def _value_list(values: list[str]) -> str:
    """aggregatedJSONValueList: the parsed values when all are JSON objects or lists, else the strings."""
    parsed = []
    for value in values:
        try:
            item = json.loads(value)
        except ValueError:
            return go_json(values)
        if not isinstance(item, (dict, list)):
            return go_json(values)
        parsed.append(item)
    return go_json(parsed)


def template_outputs(tmpl: Mapping[str, Any], scope: Scope) -> Outputs | None:
    """getTemplateOutputsFromScope for a steps or DAG template."""
    declared = tmpl.get("outputs") or {}
    if not (declared.get("parameters") or declared.get("artifacts") or declared.get("result")
            or declared.get("exitCode")):
        return None
    outputs = Outputs()
    for param in declared.get("parameters") or []:
        value_from = param.get("valueFrom")
        if value_from is None:
            raise OutputError("output parameters must have a valueFrom specified")
        default = value_from.get("default")
        try:
            value, skipped = scope.resolve_parameter(value_from)
        except (LangError, SubstitutionError) as err:
            if isinstance(err, Unsupported):
                raise
            if default is None:
                raise OutputError(str(err)) from err
            value, skipped = any_string(default), False
        else:
            if skipped and default is not None:
                value = any_string(default)
        if value is None:
            raise OutputError(f"output parameter {param['name']!r}: {value_from.get('parameter')!r} is an absent "
                              f"optional (skipped/omitted node output with no default)")
        outputs.parameters.append(Parameter(param["name"], value if isinstance(value, str) else template_text(value)))
    from workflows.local.engine.nodes import ArtifactRef

    for art in declared.get("artifacts") or []:
        try:
            resolved = scope.resolve_artifact(art, {})
        except (LangError, SubstitutionError) as err:
            if "Unable to resolve" in str(err) and art.get("optional"):
                continue
            raise OutputError(f"unable to resolve outputs from scope: {err}") from err
        if resolved is None:
            continue
        outputs.artifacts.append(ArtifactRef(art["name"], resolved.get("path"), resolved.get("_key"),
                                             resolved.get("_archive", "tar"), bool(art.get("optional"))))
    return outputs


def step_or_task_name(node_name: str) -> str:
    """getStepOrDAGTaskName: `.fanout1(0:1)(0)[0]` -> `fanout1`."""
    opener = ""
    name = node_name
    for i in range(len(node_name) - 1, -1, -1):
        char = node_name[i]
        if char == opener:
            opener = ""
        elif opener:
            continue
        elif char == ")":
            opener = "("
        elif char == "]":
            opener = "["
        else:
            name = node_name[:i + 1]
            break
    return name.rsplit(".", 1)[-1]


def has_output_result_ref(name: str, parent: Mapping[str, Any]) -> bool:
    """hasOutputResultRef: the parent steps/DAG template's JSON mentions this step's or task's result."""
    text = to_json(parent)
    prefix = "tasks" if parent.get("dag") is not None else "steps" if parent.get("steps") is not None else ""
    if re.search(prefix + r"\." + name + r"\.outputs\.result", text):
        return True
    return re.search(prefix + r"\[['\\\"]+" + name + r"['\\\"]+\]\.outputs.result", text) is not None


def add_skipped_outputs(scope: Scope, prefix: str, name: str, node: Node | None, tmpl: Mapping[str, Any] | None,
                        include_artifacts: bool) -> None:
    """addSkippedNodeOutputsToScope: a Skipped/Omitted node's declared outputs as their defaults, or absent."""
    if node is None or node.outputs is not None or node.phase not in ("Skipped", "Omitted") or tmpl is None:
        return
    declared = tmpl.get("outputs") or {}
    for param in declared.get("parameters") or []:
        default = (param.get("valueFrom") or {}).get("default")
        key = f"{prefix}.{name}.outputs.parameters.{param['name']}"
        if default is not None:
            scope.set(key, any_string(default))
        else:
            scope.set_skipped(key, None)
    if include_artifacts:
        for art in declared.get("artifacts") or []:
            scope.set(f"{prefix}.{name}.outputs.artifacts.{art['name']}", {})
    if declared.get("result") is not None:
        scope.set_skipped(f"{prefix}.{name}.outputs.result", None)


def suspend_outputs(tmpl: Mapping[str, Any]) -> tuple[Outputs | None, dict[str, str | None]]:
    """addRawOutputFields: a suspend node's `supplied` outputs (no value yet) and the default each takes on an
    automatic resume (its own, or the same-named input parameter's)."""
    out: Outputs | None = None
    defaults: dict[str, str | None] = {}
    for param in (tmpl.get("outputs") or {}).get("parameters") or []:
        value_from = param.get("valueFrom") or {}
        if value_from.get("supplied") is None:
            continue
        default = value_from.get("default")
        if default is None:
            for inp in (tmpl.get("inputs") or {}).get("parameters") or []:
                if inp.get("name") == param["name"] and inp.get("default") is not None:
                    default = inp["default"]
                    break
        out = out or Outputs()
        out.parameters.append(Parameter(param["name"], None))
        defaults[param["name"]] = None if default is None else any_string(default)
    return out, defaults


def resume_with_defaults(outputs: Outputs | None, defaults: Mapping[str, str | None]) -> None:
    """OverrideOutputParametersWithDefault: each supplied output without a value takes its default."""
    if outputs is None:
        return
    for param in outputs.parameters:
        if param.value is None:
            default = defaults.get(param.name)
            if default is None:
                raise OutputError(f"raw output parameter '{param.name}' has not been set and does not have a "
                                  f"default value")
            param.value = default
