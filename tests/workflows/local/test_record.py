"""run.json (workflows/local/record.py): the run's and every task's phase as Argo reports them, rewritten whole
as the run goes, tasks in the DAG's order."""

from __future__ import annotations

import json
from pathlib import Path

from workflows.local.engine.nodes import Inputs, Node, NodeTree, Outputs, Parameter, node_id
from workflows.local.record import RunResult, workflow_document, write_run_json, write_workflow_json
from workflows.local.task import TaskState


def test_run_json_holds_every_task_in_dag_order_with_its_outputs(tmp_path: Path) -> None:
    train = TaskState("train", "train", [], phase="Succeeded", exit_code=0, attempts=1, started=10.0,
                      finished=12.34567, parameters={"fingerprint": "f1"}, artifacts={"bundle": "/x/bundle"},
                      log="/x/tasks/train/log")
    gate = TaskState("gate", "gate", ["train"], phase="Running", attempts=2)
    write_run_json(tmp_path, "loop-abc12", "Running", "", {"model": "m"}, 3.14159, {"train": train, "gate": gate})
    document = json.loads((tmp_path / "run.json").read_text())
    assert document == {
        "name": "loop-abc12", "phase": "Running", "message": "", "parameters": {"model": "m"}, "duration": 3.142,
        "tasks": {
            "train": {"template": "train", "phase": "Succeeded", "message": "", "exitCode": 0, "attempts": 1,
                      "duration": 2.346, "outputs": {"parameters": {"fingerprint": "f1"},
                                                     "artifacts": {"bundle": "/x/bundle"}},
                      "log": "/x/tasks/train/log"},
            "gate": {"template": "gate", "phase": "Running", "message": "", "exitCode": None, "attempts": 2,
                     "duration": None, "outputs": {"parameters": {}, "artifacts": {}}, "log": ""},
        },
    }
    assert list(document["tasks"]) == ["train", "gate"]  # not sorted: the order a reader follows the run


def test_rewriting_run_json_leaves_no_temporary_file(tmp_path: Path) -> None:
    task = TaskState("a", "a", [])
    for phase in ("Running", "Succeeded"):
        write_run_json(tmp_path, "w", phase, "", {}, 1.0, {"a": task})
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert json.loads((tmp_path / "run.json").read_text())["phase"] == "Succeeded"


def test_the_exit_code_says_how_the_run_ended(tmp_path: Path) -> None:
    codes = {phase: RunResult("w", phase, "", tmp_path, {}, {}, 0.0).exit_code
             for phase in ("Succeeded", "Failed", "Interrupted")}
    assert codes == {"Succeeded": 0, "Failed": 1, "Interrupted": 130}


def test_the_new_engine_run_json_holds_every_node_as_argo_status_nodes(tmp_path: Path) -> None:
    tree = NodeTree("w")
    root = tree.add(Node("w", "w", "w", "DAG", "Succeeded", template_name="main", started_at=100.0,
                         finished_at=103.7))
    tree.add(Node(node_id("w", "w.a"), "w.a", "a", "Pod", "Succeeded", template_name="echo", boundary_id="w",
                  inputs=Inputs([Parameter("x", "1")]), started_at=100.2, finished_at=101.9,
                  outputs=Outputs([Parameter("word", "hi"), Parameter("none")], result="hi", exit_code="0")), root)
    tree.add(Node(node_id("w", "w.b"), "w.b", "b", "Pod", "Succeeded", boundary_id="w", memoized=True,
                  outputs=Outputs([Parameter("word", "hi")], exit_code="0")), root)
    document = workflow_document(tree, "Succeeded", "", Outputs([Parameter("g", "v")]), {"p": "1"}, 3.71)
    write_workflow_json(tmp_path, document)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert (saved["phase"], saved["message"], saved["outputs"]["parameters"]) == ("Succeeded", "", {"g": "v"})
    a = saved["nodes"][node_id("w", "w.a")]
    assert {k: a[k] for k in ("name", "displayName", "type", "phase", "message", "inputs", "outputs", "startedAt",
                              "finishedAt", "memoized")} == {
        "name": "w.a", "displayName": "a", "type": "Pod", "phase": "Succeeded", "message": "",
        "inputs": {"parameters": {"x": "1"}},
        "outputs": {"parameters": {"word": "hi", "none": None}, "artifacts": {}, "exitCode": "0", "result": "hi"},
        "startedAt": "1970-01-01T00:01:40Z", "finishedAt": "1970-01-01T00:01:41Z", "memoized": False,
    }
    b = saved["nodes"][node_id("w", "w.b")]
    assert "result" not in b["outputs"]  # not captured: no parent refers to it
    assert b["memoized"] is True
    assert saved["nodes"]["w"]["children"] == [node_id("w", "w.a"), node_id("w", "w.b")]
