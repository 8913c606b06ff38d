"""executeTemplate's behaviour a user notices beyond the conformance cases: Ctrl-C stops the run (running pods
killed, no new pod, the exit handler still runs), an unknown template is an Error node, and a retry backoff waits
without spinning."""

from __future__ import annotations

import resource
import signal
import time
from pathlib import Path
from typing import Any

from tests.support.local_executor import LocalExecutor
from tests.workflows.local.engine.cases import bounded, node
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
