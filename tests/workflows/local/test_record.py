"""run.json (workflows/local/record.py): the run's and every node's phase as Argo reports them, rewritten whole
as the run goes, the tasks that ran a pod in the order they ran."""

from __future__ import annotations

import json
from pathlib import Path

from workflows.local.engine.nodes import ArtifactRef, Inputs, Node, NodeTree, Outputs, Parameter, node_id
from workflows.local.record import pod_name, workflow_document, write_workflow_json


def test_run_json_holds_every_task_in_the_order_it_ran_with_its_outputs(tmp_path: Path) -> None:
    """`tasks`: each node that ran a pod, by display name (a retried one: its last attempt), in the order a reader
    follows the run, its artifacts as paths of the run's repository and its log when the pod wrote one."""
    tree = NodeTree("loop-abc12")
    root = tree.add(Node("loop-abc12", "loop-abc12", "loop-abc12", "DAG", "Running", template_name="main"))
    train = tree.add(Node(node_id("loop-abc12", "loop-abc12.train"), "loop-abc12.train", "train", "Pod", "Succeeded",
                          template_name="train", boundary_id="loop-abc12", started_at=10.0, finished_at=12.34567,
                          outputs=Outputs([Parameter("fingerprint", "f1")], exit_code="0",
                                          artifacts=[ArtifactRef(name="bundle", key="k1/bundle.tgz")])), root)
    gate = tree.add(Node(node_id("loop-abc12", "loop-abc12.gate"), "loop-abc12.gate", "gate", "Retry", "Running",
                         template_name="gate", boundary_id="loop-abc12"), root)
    for attempt in range(2):
        name = f"loop-abc12.gate({attempt})"
        tree.add(Node(node_id("loop-abc12", name), name, f"gate({attempt})", "Pod", "Failed" if attempt == 0 else
                      "Running", template_name="gate", boundary_id="loop-abc12",
                      outputs=Outputs([], exit_code="3") if attempt == 0 else None), gate)
    log = tmp_path / "pods" / pod_name("loop-abc12", train) / "log"
    log.parent.mkdir(parents=True)
    log.write_text("trained\n")
    write_workflow_json(tmp_path, workflow_document(tree, "Running", "", None, {"model": "m"}, 3.14159, tmp_path))
    document = json.loads((tmp_path / "run.json").read_text())
    assert {k: document[k] for k in ("name", "phase", "message", "parameters", "duration")} == {
        "name": "loop-abc12", "phase": "Running", "message": "", "parameters": {"model": "m"}, "duration": 3.142}
    assert document["tasks"] == {
        "train": {"template": "train", "phase": "Succeeded", "message": "", "exitCode": 0, "attempts": 1,
                  "duration": 2.346, "log": str(log), "outputs": {
                      "parameters": {"fingerprint": "f1"},
                      "artifacts": {"bundle": str(tmp_path / "artifacts" / "k1" / "bundle.tgz")}}},
        "gate": {"template": "gate", "phase": "Running", "message": "", "exitCode": None, "attempts": 2,
                 "duration": None, "outputs": {"parameters": {}, "artifacts": {}}, "log": ""},
    }
    assert list(document["tasks"]) == ["train", "gate"]  # not sorted: the order a reader follows the run


def test_rewriting_run_json_leaves_no_temporary_file(tmp_path: Path) -> None:
    tree = NodeTree("w")
    tree.add(Node("w", "w", "w", "DAG", "Running", template_name="main"))
    for phase in ("Running", "Succeeded"):
        write_workflow_json(tmp_path, workflow_document(tree, phase, "", None, {}, 1.0, tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert json.loads((tmp_path / "run.json").read_text())["phase"] == "Succeeded"


def test_the_new_engine_run_json_holds_every_node_as_argo_status_nodes(tmp_path: Path) -> None:
    tree = NodeTree("w")
    root = tree.add(Node("w", "w", "w", "DAG", "Succeeded", template_name="main", started_at=100.0,
                         finished_at=103.7, outputs=Outputs([Parameter("answer", "hi"), Parameter("unset")])))
    tree.add(Node(node_id("w", "w.a"), "w.a", "a", "Pod", "Succeeded", template_name="echo", boundary_id="w",
                  inputs=Inputs([Parameter("x", "1")]), started_at=100.2, finished_at=101.9,
                  outputs=Outputs([Parameter("word", "hi"), Parameter("none")], result="hi", exit_code="0")), root)
    tree.add(Node(node_id("w", "w.b"), "w.b", "b", "Pod", "Succeeded", boundary_id="w", memoized=True,
                  outputs=Outputs([Parameter("word", "hi")], exit_code="0")), root)
    document = workflow_document(tree, "Succeeded", "", Outputs([Parameter("g", "v")]), {"p": "1"}, 3.71,
                                 metadata={"labels": {"team": "ml"}, "annotations": {"note": "x"}})
    write_workflow_json(tmp_path, document)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert (saved["phase"], saved["message"], saved["globalOutputs"]["parameters"]) == ("Succeeded", "", {"g": "v"})
    # the workflow's outputs as the Argo UI shows them: the entrypoint node's, those with a value
    assert saved["outputs"] == {"parameters": {"answer": "hi"}, "artifacts": {}}
    assert (saved["labels"], saved["annotations"]) == ({"team": "ml"}, {"note": "x"})
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
