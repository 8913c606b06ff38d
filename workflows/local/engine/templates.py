"""Where the controller resolves templates: a `TemplateContext` is the front-end's template Resolver
(workflows/local/templates.py, Argo's templateresolution: plain names in the current base, templateRefs from the
store, spec.templateDefaults merged in) bound to the base a node's template came from, as Argo's TemplateContext
is (workflow/templateresolution/context.go:123-269).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.local.engine.state import Holder
from workflows.local.templates import Base, Resolver, TemplateNotFound

__all__ = ["TemplateContext", "TemplateNotFound", "is_pod_type", "template_type"]

KINDS = ("container", "containerSet", "steps", "dag", "script", "resource", "data", "suspend", "http", "plugin")


def template_type(tmpl: Mapping[str, Any]) -> str:
    """wfv1.Template.GetType, "unknown" when no kind is set."""
    return next((kind for kind in KINDS if tmpl.get(kind) is not None), "unknown")


def is_pod_type(tmpl: Mapping[str, Any]) -> bool:
    return template_type(tmpl) in ("container", "script", "containerSet", "resource", "data")


class TemplateContext:
    """A Resolver and the base plain template names resolve in."""

    def __init__(self, resolver: Resolver, base: Base | None = None):
        self.resolver = resolver
        self.base = base or resolver.root

    @property
    def scope(self) -> str:
        """Node.template_scope: `local`, `namespaced/<wft>` or `cluster/<cwft>`."""
        return self.base.scope_name

    def resolve(self, holder: Holder) -> tuple[TemplateContext, dict[str, Any]]:
        """ResolveTemplate: the template (a copy, templateDefaults merged) and the context its own names use."""
        spec: dict[str, Any] = {"template": holder.template}
        if holder.template_ref:
            spec["templateRef"] = holder.template_ref
        if holder.inline is not None:
            spec["inline"] = holder.inline
        base, tmpl = self.resolver.resolve(spec, self.base)
        if template_type(tmpl) == "unknown":
            raise TemplateNotFound(f"template '{tmpl.get('name', '')}' type is unknown")
        return (self if base is self.base else TemplateContext(self.resolver, base)), tmpl
