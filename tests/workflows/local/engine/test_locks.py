"""Memoization caches outlive runs (a folder per cache name under the state folder); mutexes hold across
concurrent local runs."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local.engine.cases import bounded, node, output
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.locks import Locks
from workflows.local.engine.nodes import NodeTree
from workflows.local.engine.operator import Result, run_workflow


def _memoized(key: str) -> dict[str, Any]:
    return {"metadata": {"name": "memo"}, "spec": {"entrypoint": "stamp", "templates": [
        {"name": "stamp", "memoize": {"key": key, "maxAge": "1h", "cache": {"configMap": {"name": "stamps"}}},
         "container": {"image": "alpine:3.20", "command": ["sh", "-c", "date +%s%N > /tmp/stamp"]},
         "outputs": {"parameters": [{"name": "stamp", "valueFrom": {"path": "/tmp/stamp"}}]}}]}}


def _run(workflow: dict[str, Any], run_dir: Path, state: Path) -> Result:
    return run_workflow(workflow, run_dir=run_dir, executor=LocalExecutor(run_dir), state_dir=state)


def test_a_second_run_reuses_the_cached_outputs_without_running(tmp_path: Path) -> None:
    with bounded(30):
        first = _run(_memoized("k1"), tmp_path / "r1", tmp_path / "state")
        second = _run(_memoized("k1"), tmp_path / "r2", tmp_path / "state")
    one, two = node(first, "memo"), node(second, "memo")
    assert not one.memoized and two.memoized
    assert two.phase == "Succeeded"
    assert output(two, "stamp") == output(one, "stamp")
    assert not (tmp_path / "r2" / "pods").exists()
    assert (tmp_path / "state" / "memoize" / "stamps" / "k1.json").exists()


def test_another_key_runs_again(tmp_path: Path) -> None:
    with bounded(30):
        first = _run(_memoized("k1"), tmp_path / "r1", tmp_path / "state")
        other = _run(_memoized("k2"), tmp_path / "r2", tmp_path / "state")
    assert not node(other, "memo").memoized
    assert output(node(other, "memo"), "stamp") != \
        output(node(first, "memo"), "stamp")


def test_an_invalid_key_is_an_error_node(tmp_path: Path) -> None:
    with bounded(30):
        result = _run(_memoized("not a key"), tmp_path / "r1", tmp_path / "state")
    assert result.phase == "Error"
    assert "invalid memoization key" in node(result, "memo").message


def test_a_mutex_orders_two_concurrent_runs(tmp_path: Path) -> None:
    def guarded(name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"entrypoint": "hold", "templates": [
            {"name": "hold", "synchronization": {"mutexes": [{"name": "shared"}]},
             "container": {"image": "alpine:3.20", "command": ["sleep", "1"]}}]}}

    results: dict[str, Result] = {}

    def other() -> None:
        results["b"] = _run(guarded("b"), tmp_path / "b", tmp_path / "state")

    with bounded(30):
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.1)
        results["a"] = _run(guarded("a"), tmp_path / "a", tmp_path / "state")
        thread.join(20)
    a, b = node(results["a"], "a"), node(results["b"], "b")
    assert a.phase == b.phase == "Succeeded"
    first, second = sorted((a, b), key=lambda n: n.started_at or 0)
    assert (first.finished_at or 0) <= (second.started_at or 0) + 0.05


def test_a_cache_hit_hands_its_artifacts_to_the_next_steps(tmp_path: Path) -> None:
    def workflow(archive: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "memo-art"}, "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "make", "template": "make"}], [
                {"name": "read", "template": "read", "arguments": {"artifacts": [
                    {"name": "in", "from": "{{steps.make.outputs.artifacts.out}}"}]}}]]},
            {"name": "make", "memoize": {"key": "art", "maxAge": "1h", "cache": {"configMap": {"name": "arts"}}},
             "container": {"image": "alpine:3.20", "command": ["sh", "-c", "date +%s%N > /tmp/out.txt"]},
             "outputs": {"artifacts": [{"name": "out", "path": "/tmp/out.txt", "archive": archive}]}},
            {"name": "read", "inputs": {"artifacts": [{"name": "in", "path": "/tmp/in.txt"}]},
             "container": {"image": "alpine:3.20", "command": ["sh", "-c", "cat /tmp/in.txt > /tmp/seen"]},
             "outputs": {"parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/seen"}}]}}]}}

    archives: list[dict[str, Any]] = [{"none": {}}, {"tar": {}}]
    for archive in archives:
        state = tmp_path / f"state-{next(iter(archive))}"
        with bounded(30):
            first = _run(workflow(archive), tmp_path / f"a-{next(iter(archive))}", state)
            second = _run(workflow(archive), tmp_path / f"b-{next(iter(archive))}", state)
        assert second.phase == "Succeeded", second.message
        assert node(second, "memo-art[0].make").memoized
        assert output(node(second, "memo-art[1].read"), "seen") == output(node(first, "memo-art[1].read"), "seen")


def test_a_max_age_without_unit_is_an_error_node(tmp_path: Path) -> None:
    workflow = _memoized("k1")
    workflow["spec"]["templates"][0]["memoize"]["maxAge"] = "10"
    with bounded(30):
        result = _run(workflow, tmp_path / "r1", tmp_path / "state")
    assert result.phase == "Error"
    assert "missing unit" in node(result, "memo").message


def test_a_workflow_lock_that_cannot_be_taken_fails_the_workflow_before_anything_runs(tmp_path: Path) -> None:
    # operator.go:284-307: a TryAcquire error that is not transient marks the workflow Failed, "Failed to acquire
    # the synchronization lock. <error>", with no node and no exit handler
    workflow = {"metadata": {"name": "wf-sem"}, "spec": {
        "entrypoint": "hello", "onExit": "hello",
        "synchronization": {"semaphores": [{"configMapKeyRef": {"name": "my-config", "key": "workflow"}}]},
        "templates": [{"name": "hello", "container": {"image": "busybox", "command": ["echo", "hi"]}}]}}
    with bounded(30):
        result = _run(workflow, tmp_path / "r1", tmp_path / "state")
    assert (result.phase, result.message) == ("Failed", "Failed to acquire the synchronization lock. failed to "
                                              "initialize semaphore default/ConfigMap/my-config/workflow with limit")
    assert result.nodes.nodes == {}


def _semaphore_size(data: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    config_maps = {} if data is None else {"sizes": {"metadata": {"name": "sizes"}, "data": data}}
    return {"metadata": {"name": "tmpl-sem"}, "spec": {"entrypoint": "hello", "templates": [
        {"name": "hello", "synchronization": {"semaphores": [{"configMapKeyRef": {"name": "sizes", "key": "k"}}]},
         "container": {"image": "busybox", "command": ["echo", "hi"]}}]}}, config_maps


@pytest.mark.parametrize("data", [None, {}, {"k": "x"}, {"k": "0"}], ids=["no-configmap", "no-key", "not-a-number",
                                                                           "zero"])
def test_a_semaphore_without_a_positive_size_is_argos_error_node(data: dict[str, str] | None, tmp_path: Path) -> None:
    # semaphore.go:27-46 (a limit that cannot be read counts as 0, and 0 is an error); operator.go:2329-2338
    workflow, config_maps = _semaphore_size(data)
    with bounded(30):
        result = run_workflow(workflow, run_dir=tmp_path / "r1", executor=LocalExecutor(tmp_path / "r1"),
                              state_dir=tmp_path / "state", config_maps=config_maps)
    message = "failed to initialize semaphore default/ConfigMap/sizes/k with limit"
    assert (result.phase, node(result, "tmpl-sem").phase) == ("Error", "Error")
    assert node(result, "tmpl-sem").message == message
    assert result.message == f"error in entry template execution: {message}"


@pytest.mark.parametrize(("sync", "config_maps", "waiting"), [
    ({"mutexes": [{"name": "shared"}]}, {}, "Waiting for default/Mutex/shared lock. Lock status: 0/1"),
    ({"semaphores": [{"configMapKeyRef": {"name": "sizes", "key": "k"}}]},
     {"sizes": {"metadata": {"name": "sizes"}, "data": {"k": "2"}}},
     "Waiting for default/ConfigMap/sizes/k lock. Lock status: 0/2"),
], ids=["mutex", "semaphore"])
def test_a_node_waiting_for_a_lock_is_pending_with_argos_message(sync: dict[str, Any], config_maps: dict[str, Any],
                                                                waiting: str, tmp_path: Path) -> None:
    # sync/semaphore.go:233: "Waiting for <lock key> lock. Lock status: <free>/<limit>"; lock_name.go:118-125
    workflow = {"metadata": {"name": "wait"}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "s", "template": "hold", "withSequence": {"count": "3"}}]]},
        {"name": "hold", "synchronization": sync,
         "container": {"image": "alpine:3.20", "command": ["sleep", "0.3"]}}]}}
    messages: set[str] = set()

    def progress(tree: NodeTree) -> None:
        messages.update(n.message for n in tree.nodes.values() if n.phase == "Pending" and n.message)

    with bounded(30):
        result = run_workflow(workflow, run_dir=tmp_path / "r1", executor=LocalExecutor(tmp_path / "r1"),
                              state_dir=tmp_path / "state", config_maps=config_maps, progress=progress)
    assert result.phase == "Succeeded"
    assert messages == {waiting}


def test_ctrl_c_while_waiting_for_the_workflow_lock_ends_it_before_anything_runs(tmp_path: Path) -> None:
    # the workflow never started (it is Pending on its lock): nothing runs, not even its exit handler, as a
    # pending workflow's shutdown ends it (operator.go:591-602)
    workflow = {"metadata": {"name": "queued"}, "spec": {
        "entrypoint": "hello", "onExit": "hello", "synchronization": {"mutexes": [{"name": "busy"}]},
        "templates": [{"name": "hello", "container": {"image": "busybox", "command": ["echo", "hi"]}}]}}
    holder = Locks(tmp_path / "state", {})
    assert holder.try_acquire("someone-else", {"mutexes": [{"name": "busy"}]})[0]

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    try:
        result = _run(workflow, tmp_path / "r1", tmp_path / "state")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        holder.release_all()
    assert time.monotonic() - started < 10
    assert (result.phase, result.message) == ("Failed", "Stopped with strategy 'Stop'")
    assert result.nodes.nodes == {}
