"""Template resolution as Argo v4.1.2 does it (workflow/templateresolution/context.go, workflow/util/merge.go): a
template named in the current template base (the Workflow, or the WorkflowTemplate a templateRef switched to),
inline, or by templateRef from the template store; and the spec a workflowTemplateRef runs.

The store is the front-end's: `TemplateStore(kind, name)` returns the WorkflowTemplate or ClusterWorkflowTemplate
resource (a dict) or None.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from workflows.local.engine.state import Holder

TemplateStore = Callable[[str, str], "dict[str, Any] | None"]
KINDS = ("container", "script", "steps", "dag", "suspend", "resource", "data", "http", "plugin", "containerSet")
_MERGE_BY_NAME = ("templates", "parameters", "artifacts", "volumes", "volumeClaimTemplates")


class TemplateNotFound(LookupError):
    """The template, WorkflowTemplate or ClusterWorkflowTemplate does not exist (Argo: CodeNotFound)."""


def template_type(tmpl: Mapping[str, Any]) -> str:
    for kind in KINDS:
        if tmpl.get(kind) is not None:
            return kind
    return "unknown"


def is_pod_type(tmpl: Mapping[str, Any]) -> bool:
    return template_type(tmpl) in ("container", "script", "containerSet", "resource", "data")


class TemplateContext:
    """A template base (its templates and scope name) and the store for templateRefs."""

    def __init__(self, templates: list[dict[str, Any]], scope: str, store: TemplateStore | None):
        self.templates = templates
        self.scope = scope  # local/<workflow>, namespaced/<wft>, cluster/<cwft>
        self.store = store

    def by_name(self, name: str) -> dict[str, Any]:
        for tmpl in self.templates:
            if tmpl.get("name") == name:
                return copy.deepcopy(tmpl)
        raise TemplateNotFound(f"template {name} not found")

    def _resource(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
        resource = self.store(kind, ref.get("name", "")) if self.store is not None else None
        if resource is None:
            raise TemplateNotFound(f"workflow template {ref.get('name')} not found")
        return resource

    def from_ref(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        resource = self._resource(ref)
        for tmpl in (resource.get("spec") or {}).get("templates") or []:
            if tmpl.get("name") == ref.get("template"):
                return copy.deepcopy(tmpl)
        raise TemplateNotFound(f"template {ref.get('template')} not found in workflow template {ref.get('name')}")

    def resolve(self, holder: Holder) -> tuple[TemplateContext, dict[str, Any]]:
        """ResolveTemplate: the template and the context its own references resolve in."""
        if holder.inline is not None:
            tmpl = copy.deepcopy(holder.inline)
        elif holder.template_ref:
            tmpl = self.from_ref(holder.template_ref)
        elif holder.template:
            tmpl = self.by_name(holder.template)
        else:
            raise TemplateNotFound("failed to get a template")
        new_ctx = self
        if holder.template_ref:
            resource = self._resource(holder.template_ref)
            scope = "cluster" if holder.template_ref.get("clusterScope") else "namespaced"
            new_ctx = TemplateContext((resource.get("spec") or {}).get("templates") or [],
                                      f"{scope}/{holder.template_ref.get('name')}", self.store)
        if template_type(tmpl) == "unknown":
            raise TemplateNotFound(f"template '{tmpl.get('name', '')}' type is unknown")
        return new_ctx, tmpl


def merge_spec(workflow_spec: Mapping[str, Any], template_spec: Mapping[str, Any]) -> dict[str, Any]:
    """JoinWorkflowSpec: the Workflow's spec merged over the (Cluster)WorkflowTemplate's; an argument with a value
    keeps the Workflow's version."""
    merged = _merge(copy.deepcopy(dict(template_spec)), copy.deepcopy(dict(workflow_spec)))
    merged.pop("workflowTemplateRef", None)
    wf_params = {p["name"]: p for p in ((workflow_spec.get("arguments") or {}).get("parameters") or [])}
    params = (merged.get("arguments") or {}).get("parameters") or []
    for i, param in enumerate(params):
        if param.get("name") in wf_params and ("value" in param or "valueFrom" in param):
            params[i] = copy.deepcopy(wf_params[param["name"]])
    return merged


def _merge(base: Any, over: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list) and key in _MERGE_BY_NAME:
        names = {item.get("name") for item in over if isinstance(item, dict)}
        over_by_name = {item.get("name"): item for item in over if isinstance(item, dict)}
        out_list = [_merge(item, over_by_name[item.get("name")]) if isinstance(item, dict)
                    and item.get("name") in names else item for item in base]
        base_names = {item.get("name") for item in base if isinstance(item, dict)}
        out_list.extend(item for item in over if not (isinstance(item, dict) and item.get("name") in base_names))
        return out_list
    return over


def apply_template_defaults(tmpl: dict[str, Any], defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """mergedTemplateDefaultsInto: spec.templateDefaults under the template (the template's fields win)."""
    if not defaults:
        return tmpl
    merged = _merge(copy.deepcopy(dict(defaults)), tmpl)
    return dict(merged)
