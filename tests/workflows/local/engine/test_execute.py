"""executeTemplate's behaviour a user notices beyond the conformance cases: Ctrl-C stops the run (running pods
killed, no new pod, the exit handler still runs), an unknown template is an Error node, and a retry backoff waits
without spinning."""

from __future__ import annotations

import resource
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from tests.workflows.local.engine.cases import bounded, node
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.nodes import NodeTree
from workflows.local.engine.operator import Result, run_workflow


def _run(workflow: dict[str, Any], tmp_path: Path) -> Result:
    return run_workflow(workflow, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                        state_dir=tmp_path / "state")


def _sh(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine:3.20", "command": ["sh", "-c", script]}}


def test_ctrl_c_stops_the_pods_and_runs_the_exit_handler(tmp_path: Path) -> None:
    workflow = {"metadata": {"name": "stop-me"}, "spec": {"entrypoint": "main", "onExit": "bye", "templates": [
        {"name": "main", "steps": [[{"name": "long", "template": "long"}], [{"name": "never", "template": "long"}]]},
        _sh("long", "sleep 30"), _sh("bye", "echo bye")]}}

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    try:
        result = _run(workflow, tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
    assert result.phase == "Failed"
    assert result.message == "Stopped with strategy 'Stop'"
    assert node(result, "stop-me[0].long").phase == "Failed"
    assert result.nodes.by_name("stop-me[1].never") is None
    assert node(result, "stop-me.onExit").phase == "Succeeded"


def test_a_missing_template_is_an_error_node_and_the_workflow_errors(tmp_path: Path) -> None:
    workflow = {"metadata": {"name": "missing"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "a", "template": "nowhere"}]}}]}}
    with bounded(30):
        result = _run(workflow, tmp_path)
    task = node(result, "missing.a")
    assert (task.phase, task.type) == ("Error", "Skipped")
    assert "nowhere" in task.message
    assert result.phase == "Error"


def test_a_retry_backoff_waits_without_spinning(tmp_path: Path) -> None:
    workflow = {"metadata": {"name": "backoff"}, "spec": {"entrypoint": "fail", "templates": [
        dict(_sh("fail", "exit 1"), retryStrategy={"limit": 1, "backoff": {"duration": "1s"}})]}}
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    with bounded(30):
        result = _run(workflow, tmp_path)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert result.phase == "Failed"
    assert node(result, "backoff").message == "No more retries left"
    assert [node(result, f"backoff({i})").phase for i in range(2)] == ["Failed", "Failed"]
    assert elapsed >= 1.0
    assert cpu < 0.5 * elapsed, f"{cpu:.2f} s of CPU in {elapsed:.2f} s: the wait spins"


def test_an_http_template_is_an_http_node_with_the_body_as_result(tmp_path: Path) -> None:
    class Pong(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"pong"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Pong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ping"
    workflow = {"metadata": {"name": "web"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "get", "template": "get"}],
                                   [{"name": "show", "template": "show", "arguments": {"parameters": [
                                       {"name": "body", "value": "{{steps.get.outputs.result}}"}]}}]]},
        {"name": "get", "http": {"url": url, "method": "GET"}},
        {"name": "show", "inputs": {"parameters": [{"name": "body"}]},
         "container": {"image": "alpine:3.20", "command": ["echo", "{{inputs.parameters.body}}"]}}]}}
    seen: list[int] = []
    try:
        with bounded(30):
            result = run_workflow(workflow, run_dir=tmp_path / "run",
                                  executor=LocalExecutor(tmp_path / "run"),
                                  state_dir=tmp_path / "state", progress=lambda tree: seen.append(len(tree.nodes)))
    finally:
        server.shutdown()
    assert result.phase == "Succeeded", result.message
    get = node(result, "web[0].get")
    assert get.type == "HTTP"
    assert get.outputs is not None and get.outputs.result == "pong"
    assert node(result, "web[1].show").inputs.parameters[0].value == "pong"
    assert seen and seen[-1] == len(result.nodes.nodes)


def test_a_node_pending_past_its_timeout_fails(tmp_path: Path) -> None:
    lock = {"mutexes": [{"name": f"timeout-{tmp_path.name}"}]}
    workflow = {"metadata": {"name": "late"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "holder", "template": "hold"},
                                           {"name": "waiter", "template": "wait"}]}},
        dict(_sh("hold", "sleep 2"), synchronization=lock),
        dict(_sh("wait", "true"), synchronization=lock, timeout="1s")]}}
    with bounded(30):
        result = _run(workflow, tmp_path)
    holder, waiter = node(result, "late.holder"), node(result, "late.waiter")  # tasks start in name order
    assert holder.phase == "Succeeded"
    assert (waiter.phase, waiter.message) == ("Failed", "timeout")
    assert result.phase == "Failed"


def _shut(strategy: str, entry: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "shut"}, "spec": {"entrypoint": "main", "shutdown": strategy, "onExit": "bye",
                                                   "templates": [entry, _sh("hello", "echo hello"), *extra]}}


def test_a_workflow_submitted_stopped_creates_no_pod_but_its_exit_handler(tmp_path: Path) -> None:
    # workflowpod.go:366-368: no pod while shutting down but the exit handler's (Stop); operator.go:542-543
    workflow = _shut("Stop", {"name": "main", "steps": [[{"name": "a", "template": "hello"}],
                                                        [{"name": "b", "template": "hello"}]]},
                     {"name": "bye", "dag": {"tasks": [{"name": "c", "template": "hello"}]}})
    with bounded(30):
        result = _run(workflow, tmp_path)
    assert (result.phase, result.message) == ("Failed", "Stopped with strategy 'Stop'")
    assert (node(result, "shut[0].a").phase, node(result, "shut[0].a").message) == \
        ("Failed", "workflow shutdown with strategy: Stop")
    assert result.nodes.by_name("shut[1].b") is None
    # a DAG exit handler runs to its end (dag.go:358: a shutdown fails a DAG only outside exit handlers)
    assert node(result, "shut.onExit").phase == "Succeeded"
    assert node(result, "shut.onExit.c").phase == "Succeeded"


def test_a_workflow_submitted_terminated_runs_nothing_not_even_its_exit_handler(tmp_path: Path) -> None:
    workflow = _shut("Terminate", {"name": "main", "dag": {"tasks": [{"name": "a", "template": "hello"},
                                                                     {"name": "b", "template": "hello"}]}})
    workflow["spec"]["templates"].append(_sh("bye", "echo bye"))
    with bounded(30):
        result = _run(workflow, tmp_path)
    assert (result.phase, result.message) == ("Failed", "Stopped with strategy 'Terminate'")
    assert node(result, "shut").phase == "Failed"
    assert {node(result, n).message for n in ("shut.a", "shut.b")} == {"workflow shutdown with strategy: Terminate"}
    assert result.nodes.by_name("shut.onExit") is None


def test_a_suspend_node_of_a_stopped_workflow_fails(tmp_path: Path) -> None:
    # failNodesWithoutCreatedPodsAfterDeadlineOrShutdown (operator.go:1390-1404)
    workflow = _shut("Stop", {"name": "main", "steps": [[{"name": "wait", "template": "wait"}]]},
                     {"name": "wait", "suspend": {}})
    workflow["spec"]["templates"].append(_sh("bye", "echo bye"))
    with bounded(30):
        result = _run(workflow, tmp_path)
    assert (result.phase, result.message, result.suspended) == ("Failed", "Stopped with strategy 'Stop'", [])
    assert (node(result, "shut[0].wait").phase, node(result, "shut[0].wait").message) == \
        ("Failed", "Stopped with strategy 'Stop'")
    assert node(result, "shut.onExit").phase == "Succeeded"


def test_a_container_sets_containers_are_nodes_from_the_pods_start_in_their_dependency_graph(tmp_path: Path) -> None:
    # container_set_template.go:30-45: once the pod is created, a Pending Container node per container; one with
    # no dependencies hangs from the pod node, the others from each container they depend on
    workflow = {"metadata": {"name": "cs"}, "spec": {"entrypoint": "group", "templates": [
        {"name": "group", "containerSet": {"containers": [
            {"name": "a", "image": "alpine:3.20", "command": ["sleep", "0.5"]},
            {"name": "b", "image": "alpine:3.20", "command": ["true"]},
            {"name": "main", "image": "alpine:3.20", "command": ["true"], "dependencies": ["a", "b"]}]}}]}}
    seen: list[dict[str, str]] = []

    def progress(tree: NodeTree) -> None:
        pod = tree.by_name("cs")
        if pod is not None and not pod.fulfilled:
            seen.append({n.display_name: n.phase for n in tree.nodes.values() if n.type == "Container"})

    with bounded(30):
        result = run_workflow(workflow, run_dir=tmp_path / "run", executor=LocalExecutor(tmp_path / "run"),
                              state_dir=tmp_path / "state", progress=progress)
    assert result.phase == "Succeeded"
    assert seen and set(seen[0]) == {"a", "b", "main"}
    assert seen[0]["main"] in ("Pending", "Running")
    tree = result.nodes
    children = {n.display_name: [tree.nodes[c].display_name for c in n.children] for n in tree.nodes.values()}
    assert children == {"cs": ["a", "b"], "a": ["main"], "b": ["main"], "main": []}
    assert {node(result, f"cs.{c}").phase for c in ("a", "b", "main")} == {"Succeeded"}
