"""A steps/DAG scope: a retried node stands for its last attempt; a skipped node's outputs are defaults or absent."""

from __future__ import annotations

from workflows.local.engine.nodes import SUCCEEDED, Node, Outputs, Parameter
from workflows.local.engine.outputs import add_skipped_outputs
from workflows.local.engine.scope import Scope
from workflows.local.engine.substitute import PLACEHOLDER_ABSENT


def test_a_retry_node_is_read_through_its_last_attempt() -> None:
    retry = Node(id="r", name="w.a", display_name="a", type="Retry", phase=SUCCEEDED)
    attempt = Node(id="r1", name="w.a(1)", display_name="a(1)", type="Pod", phase=SUCCEEDED,
                   outputs=Outputs(parameters=[Parameter("p", "v")], exit_code="0"))
    scope = Scope(None)
    scope.add_node("tasks", "a", retry, attempt)
    assert scope.data["tasks.a.outputs.parameters.p"] == "v"
    assert scope.data["tasks.a.exitCode"] == "0"
    assert scope.data["tasks.a.id"] == "r1"


def test_a_skipped_nodes_outputs_are_defaults_or_absent() -> None:
    skipped = Node(id="s", name="w.a", display_name="a", type="Skipped", phase="Skipped")
    tmpl = {"outputs": {"parameters": [{"name": "d", "valueFrom": {"path": "/x", "default": "dflt"}},
                                       {"name": "n", "valueFrom": {"path": "/y"}}]}}
    scope = Scope(None)
    add_skipped_outputs(scope, "tasks", "a", skipped, tmpl, False)
    assert scope.data["tasks.a.outputs.parameters.d"] == "dflt"
    assert scope.data["tasks.a.outputs.parameters.n"] is None
    args = scope.mark_absent_optional_args({"parameters": [{"name": "x", "value": "{{tasks.a.outputs.parameters.n}}"}]})
    assert args["parameters"][0]["value"] == PLACEHOLDER_ABSENT
