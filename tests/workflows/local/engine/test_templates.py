"""Template resolution through the store: a templateRef switches the base its own plain names resolve in."""

from __future__ import annotations

import pytest

from workflows.local.engine.state import Holder
from workflows.local.engine.templates import TemplateContext, TemplateNotFound, is_pod_type
from workflows.local.templates import Resolver, TemplateStore

STORE = TemplateStore([{"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
                        "metadata": {"name": "lib"},
                        "spec": {"templates": [{"name": "outer", "steps": [[{"name": "s", "template": "inner"}]]},
                                               {"name": "inner", "script": {"command": ["sh"], "source": "true"}}]}}])
WORKFLOW = {"metadata": {"name": "w"}, "spec": {"templates": [{"name": "inner", "container": {"command": ["x"]}}]}}


def test_a_template_ref_switches_the_base_for_plain_names() -> None:
    root = TemplateContext(Resolver(WORKFLOW, STORE))
    ctx, outer = root.resolve(Holder(template_ref={"name": "lib", "template": "outer"}))
    assert ctx.scope == "namespaced/lib"
    _, inner = ctx.resolve(Holder(template="inner"))
    assert inner.get("script") is not None and is_pod_type(inner)
    _, local = root.resolve(Holder(template="inner"))
    assert local.get("container") is not None


def test_an_unknown_template_is_not_found() -> None:
    with pytest.raises(TemplateNotFound, match="template nope not found"):
        TemplateContext(Resolver(WORKFLOW, STORE)).resolve(Holder(template="nope"))
