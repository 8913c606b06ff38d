"""The variables of a steps or DAG template's scope (workflow/controller/scope.go wfScope, util/variables): the
template's inputs, each earlier step's or ancestor task's `steps.<name>.*`/`tasks.<name>.*`, loop aggregates,
`workflow.outputs.*`, and which of them are absent optionals of skipped or omitted nodes.

Artifacts in a scope are plain dicts as Argo's JSON has them (`name`, `path`, ...), with the local repository's
location under `_key` and `_archive` (see `artifact_dict`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from workflows.local.engine.nodes import ArtifactRef, Node, Outputs
from workflows.local.engine.substitute import PLACEHOLDER_ABSENT, SubstitutionError, replace_string
from workflows.local.lang.errors import LangError
from workflows.local.lang.exprlang import argo_env, compile_expr


def rfc3339(moment: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment or 0))


def artifact_dict(ref: ArtifactRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ref.name}
    if ref.path:
        out["path"] = ref.path
    if ref.key is not None:
        out["_key"] = ref.key
        out["_archive"] = ref.archive
    if ref.optional:
        out["optional"] = True
    return out


class Scope:
    """wfScope: a flat map of variable names to values (strings, None for an absent optional, artifact dicts)."""

    def __init__(self, template: Mapping[str, Any] | None = None):
        self.template = template
        self.data: dict[str, Any] = {}
        self.skipped: set[str] = set()
        inputs = (template or {}).get("inputs") or {}
        for param in inputs.get("parameters") or []:
            value = param.get("value")
            self.data[f"inputs.parameters.{param['name']}"] = "" if value is None else str(value)
        for art in inputs.get("artifacts") or []:
            self.data[f"inputs.artifacts.{art['name']}"] = art

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def set_skipped(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.skipped.add(key)

    def parameters_any(self, globals_: Mapping[str, str]) -> dict[str, Any]:
        """getParametersAny: the globals, then the scope's string and absent (None) values."""
        params: dict[str, Any] = dict(globals_)
        for key, value in self.data.items():
            if value is None or isinstance(value, str):
                params[key] = value
        return params

    def add_workflow_outputs(self, outputs: Outputs | None) -> None:
        if outputs is None:
            return
        for param in outputs.parameters:
            if param.value is not None:
                self.data[f"workflow.outputs.parameters.{param.name}"] = param.value
        for art in outputs.artifacts:
            self.data[f"workflow.outputs.artifacts.{art.name}"] = artifact_dict(art)

    def add_node(self, prefix: str, name: str, node: Node, last_attempt: Node | None) -> None:
        """buildLocalScope: a node's id, times, ip, status and outputs as `<prefix>.<name>.*` (a Retry node's
        last attempt stands for it)."""
        if last_attempt is not None:
            node = last_attempt
        ref = f"{prefix}.{name}"
        self.data[f"{ref}.id"] = node.id
        if node.started_at:
            self.data[f"{ref}.startedAt"] = rfc3339(node.started_at)
        if node.finished_at:
            self.data[f"{ref}.finishedAt"] = rfc3339(node.finished_at)
        if node.pod_ip:
            self.data[f"{ref}.ip"] = node.pod_ip
        if node.phase:
            self.data[f"{ref}.status"] = node.phase
        if node.host_node_name:
            self.data[f"{ref}.hostNodeName"] = node.host_node_name
        self.add_outputs(ref, node.outputs)

    def add_outputs(self, ref: str, outputs: Outputs | None) -> None:
        if outputs is None:
            return
        if outputs.result is not None:
            self.data[f"{ref}.outputs.result"] = outputs.result
        if outputs.exit_code is not None:
            self.data[f"{ref}.exitCode"] = outputs.exit_code
        for param in outputs.parameters:
            if param.value is not None:
                self.data[f"{ref}.outputs.parameters.{param.name}"] = param.value
        for art in outputs.artifacts:
            self.data[f"{ref}.outputs.artifacts.{art.name}"] = artifact_dict(art)

    def absent_optional_ref(self, value: str) -> bool:
        if not (value.startswith("{{") and value.endswith("}}")):
            return False
        key = value[2:-2].strip()
        if "{{" in key or "}}" in key:
            return False
        return key in self.skipped

    def mark_absent_optional_args(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """markAbsentOptionalArgs: a pure reference to an absent optional becomes the sentinel ProcessArgs reads as
        "not supplied"."""
        params = arguments.get("parameters") or []
        if not any(isinstance(p.get("value"), str) and self.absent_optional_ref(p["value"]) for p in params):
            return arguments
        marked = [dict(p, value=PLACEHOLDER_ABSENT) if isinstance(p.get("value"), str)
                  and self.absent_optional_ref(p["value"]) else p for p in params]
        return dict(arguments, parameters=marked)

    def resolve_var(self, text: str) -> tuple[str, Any]:
        """template.ResolveVar over the scope (with the template's input artifacts)."""
        data = dict(self.data)
        for art in ((self.template or {}).get("inputs") or {}).get("artifacts") or []:
            data[f"inputs.artifacts.{art['name']}"] = art
        tag = text.strip()
        if tag.startswith("{{"):
            tag = tag[2:]
        if tag.endswith("}}"):
            tag = tag[:-2]
        tag = tag.strip()
        if tag.startswith("="):
            try:
                result = compile_expr(tag[1:]).run(data)
            except LangError as err:
                raise SubstitutionError(f"Invalid expression: {tag[1:]!r}") from err
            if result is None:
                raise SubstitutionError(f"Unable to resolve: {tag!r}")
            return tag, result
        if tag not in data:
            raise SubstitutionError(f"Unable to resolve: {tag!r}")
        return tag, data[tag]

    def resolve_parameter(self, value_from: Mapping[str, Any]) -> tuple[Any, bool]:
        """resolveParameter: valueFrom.parameter or .expression; returns (value, from an absent optional)."""
        if value_from.get("expression"):
            text = value_from["expression"]
            env = argo_env(self.data)
            result = compile_expr(text).run(env)
            if result is None:
                raise SubstitutionError(f"failed to evaluate expression {text!r}")
            return result, False
        if not value_from.get("parameter"):
            return "", False
        tag, value = self.resolve_var(value_from["parameter"])
        return value, tag in self.skipped

    def resolve_artifact(self, art: Mapping[str, Any], globals_: Mapping[str, str]) -> dict[str, Any] | None:
        """resolveArtifact: `from` or `fromExpression` to the artifact it names, `subPath` appended."""
        if not art.get("from") and not art.get("fromExpression"):
            return None
        if art.get("fromExpression"):
            try:
                value = compile_expr(art["fromExpression"]).run(argo_env(self.data))
            except LangError as err:
                raise SubstitutionError(f"Unable to resolve: {art['fromExpression']!r}: {err}") from err
        else:
            _, value = self.resolve_var(art["from"])
        if not isinstance(value, dict):
            raise SubstitutionError(f"Variable {{{{{art}}}}} is not an artifact")
        resolved = dict(value)
        if art.get("subPath"):
            sub = replace_string(art["subPath"], self.parameters_any({}), None)
            if resolved.get("_key") is None and not art.get("optional"):
                raise SubstitutionError(f"artifact {art.get('name')} has no key to append subPath {sub} to")
            resolved["subPath"] = sub
        return resolved
