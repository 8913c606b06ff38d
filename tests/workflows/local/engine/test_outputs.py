"""Result capture and loop aggregation as Argo's controller decides them."""

from __future__ import annotations

from workflows.local.engine.nodes import SUCCEEDED, Node, Outputs, Parameter
from workflows.local.engine.outputs import aggregate, has_output_result_ref, step_or_task_name
from workflows.local.engine.scope import Scope


def test_result_is_captured_only_when_the_parent_refers_to_it() -> None:
    dag = {"dag": {"tasks": [{"name": "a"}, {"name": "b", "arguments": {"parameters": [
        {"name": "x", "value": "{{tasks.a.outputs.result}}"}]}}]}}
    assert has_output_result_ref("a", dag)
    assert not has_output_result_ref("b", dag)


def test_step_or_task_name_strips_loops_and_retries() -> None:
    assert step_or_task_name("wf.fanout(0:1)(0)") == "fanout"
    assert step_or_task_name("wf[0].step") == "step"


def _child(index: int, result: str, value: str) -> Node:
    return Node(id=str(index), name=f"wf.t({index}:{index})", display_name=f"t({index}:{index})", type="Pod",
                phase=SUCCEEDED, outputs=Outputs(parameters=[Parameter("p", value)], result=result))


def test_loop_outputs_are_json_lists_by_loop_index() -> None:
    scope = Scope(None)
    aggregate(scope, "tasks", "t", [_child(1, "4", "b"), _child(0, '{"a": 1}', "a")])
    assert scope.data["tasks.t.outputs.result"] == '[{"a":1},4]'
    assert scope.data["tasks.t.outputs.parameters.p"] == '["a","b"]'
    assert scope.data["tasks.t.outputs.parameters"] == '[{"p":"a"},{"p":"b"}]'
