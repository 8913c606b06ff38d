"""Node names and display names as Argo gives them (operator.go:3043-3095)."""

from __future__ import annotations

from pathlib import Path

from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.nodes import RUNNING, STEP_GROUP, STEPS, NodeTree, fnv32a
from workflows.local.engine.state import Holder, Operation


def _op(tmp_path: Path) -> Operation:
    return Operation(workflow="wf", spec={}, tree=NodeTree("wf"), executor=LocalExecutor(tmp_path), run_dir=tmp_path)


def test_display_names_are_relative_to_the_boundary(tmp_path: Path) -> None:
    op = _op(tmp_path)
    root = op.init_node("wf", STEPS, "local", Holder(template="main"), "", RUNNING)
    group = op.init_node("wf[0]", STEP_GROUP, "local", None, root.id, RUNNING)
    step = op.init_node("wf[0].hello", "Pod", "local", Holder(template="t"), root.id, RUNNING)
    assert (root.display_name, group.display_name, step.display_name) == ("wf", "[0]", "hello")
    assert root.id == "wf" and step.id == f"wf-{fnv32a('wf[0].hello')}"


def test_pod_names_carry_the_template(tmp_path: Path) -> None:
    assert _op(tmp_path).pod_name("wf[0].hello", "say") == f"wf-say-{fnv32a('wf[0].hello')}"
