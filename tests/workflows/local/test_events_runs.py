"""The runs of `mlops events serve` (workflows/local/events.py) with a real (tiny) template run by `mlops run`: an
alert whose idempotency key cannot name a Workflow is refused with 400 and never queued, a job that cannot start
is an Error and the queue goes on, and a SIGTERM or Ctrl-C stops the running `mlops run` and its task before the
command exits, so nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import POLICY, ROOT
from tests.support.processes import free_port
from tests.support.workflows import container, workflow
from workflows.local import events as events_serve
from workflows.local.sensors import Sensors

pytestmark = pytest.mark.integration

MODEL = "fraud-detection"
TOKEN = "local-token"
# Records the key it was given as its output parameter `out` (run.json keeps it).
RECORD = "import sys; open('/tmp/out', 'w').write(sys.argv[1])"
PARAMS = ["model", "reason", "drifted-features", "idempotency-key", "baseline-version"]  # what the Sensor passes
# Prints its pid and the `mlops run` process's (an ancestor: the sandbox may stand between) and waits to be stopped.
SLEEP = ("import os, time\n"
         "pid = os.getppid()\n"
         "while pid > 1 and b'\\0run\\0' not in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
         "    pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
         "print(os.getpid(), pid, flush=True)\n"
         "time.sleep(120)\n")


def alert(key: str) -> bytes:
    return json.dumps({"model": MODEL, "reason": "automated_drift_detection", "drifted_features": ["amount"],
                       "idempotency_key": key, "production_version": 3, "drift_share": 0.5, "samples": 12000,
                       "window": "1h"}).encode()


def post(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{url}/drift", data=data, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def template(folder: Path, code: str) -> Path:
    """A one-task WorkflowTemplate named as the Sensor's workflowTemplateRef, running `python -c code key`."""
    args = ["{{workflow.parameters.idempotency-key}}"]
    outputs = {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out", "default": ""}}]}
    doc = workflow([{"name": "train", "template": "task"}], [container("task", code, args=args, outputs=outputs)],
                   arguments={"parameters": [{"name": p, "value": ""} for p in PARAMS]})
    doc["metadata"]["name"] = f"{MODEL}-training"
    path = folder / "tiny-training.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def recorded(folder: Path) -> list[str]:
    """The key each finished run of the template recorded, in the order the runs started."""
    found = []
    for run_json in sorted(folder.glob(".mlops/runs/*/run.json")):
        task = json.loads(run_json.read_text()).get("tasks", {}).get("train") or {}
        if task.get("phase") == "Succeeded":
            found.append(task["outputs"]["parameters"]["out"])
    return found


def wait_until_settled(runs: events_serve.Runs, names: list[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dict(runs.status)
        if all(status.get(n) not in (None, "Pending", "Running") for n in names):
            return status
        time.sleep(0.1)
    raise AssertionError(f"not settled after {timeout}s: {dict(runs.status)}")


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[events_serve.Runs]:
    monkeypatch.chdir(tmp_path)  # the local runner's .mlops/runs go here
    (tmp_path / "state").mkdir()
    started = events_serve.Runs(tmp_path / "state", template_file=template(tmp_path, RECORD),
                                log=lambda line: None)
    started.start()
    yield started
    started.stop()


def test_a_key_that_cannot_name_a_workflow_is_400_never_queued_and_the_next_alert_runs(
        runs: events_serve.Runs, tmp_path: Path) -> None:
    """`a/b` used to be answered 200 submitted; the worker then died on the log file's name, the run showed Running
    for ever and every later alert stayed Pending."""
    server = events_serve.make_server("127.0.0.1", 0, TOKEN, Sensors.from_policies([POLICY]), runs,
                                      log=lambda line: None)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code, answer = post(url, alert("a/b"))
        assert code == 400 and answer["status"] == "invalid" and answer["workflow"] is None
        assert answer["error"] == (f"{MODEL}-retrain: body.idempotency_key 'a/b' makes the Workflow name "
                                   f"'{MODEL}-retrain-a/b', which is not a DNS-1123 name (lowercase letters, "
                                   "digits, '-' and '.', beginning and ending with a letter or digit)")
        assert runs.status == {}
        code, answer = post(url, alert("0123456789ab"))
        assert (code, answer["status"]) == (200, "submitted")
        assert wait_until_settled(runs, [f"{MODEL}-retrain-0123456789ab"]) == {
            f"{MODEL}-retrain-0123456789ab": "Succeeded"}
        assert recorded(tmp_path) == ["0123456789ab"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_job_that_cannot_start_is_an_error_and_the_queue_goes_on(runs: events_serve.Runs, tmp_path: Path) -> None:
    good = Sensors.from_policies([POLICY]).handle({"body": json.loads(alert("cafe0123beef")), "header": {}})
    assert good.workflow is not None
    runs.submit({"metadata": {"name": "no-template-ref"}, "spec": {}})  # `mlops run` cannot be built for it
    runs.submit(good.workflow)
    status = wait_until_settled(runs, ["no-template-ref", good.workflow["metadata"]["name"]])
    assert status == {"no-template-ref": "Error (KeyError: 'workflowTemplateRef')",
                      f"{MODEL}-retrain-cafe0123beef": "Succeeded"}


def gone(pid: int) -> bool:
    """The process has ended (a zombie not yet reaped by init counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_running_job_and_its_task_before_the_command_exits(tmp_path: Path,
                                                                              sig: signal.Signals) -> None:
    def pids() -> str:  # the task's stdout, as its pod's log keeps it
        return "".join(p.read_text() for p in tmp_path.glob(".mlops/runs/*/pods/*/main.stdout")).strip()

    token = tmp_path / "token"
    token.write_text(TOKEN)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows", "events", "serve", "--port", str(port), "--token-file", str(token),
         "--policy", str(POLICY), "--template-file", str(template(tmp_path, SLEEP)),
         "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    task = runner = None
    try:
        assert proc.stdout is not None
        assert "POST http://127.0.0.1" in proc.stdout.readline()
        assert post(f"http://127.0.0.1:{port}", alert("5eed5eed5eed"))[0] == 200
        deadline = time.monotonic() + 60
        while not pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        task, runner = (int(n) for n in pids().split())
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert gone(runner) and gone(task), out  # neither `mlops run` nor its task outlived the command
        assert f"events: stopping ({sig.name}): stopping {MODEL}-retrain-5eed5eed5eed" in out
        assert f"events: {MODEL}-retrain-5eed5eed5eed: Failed (stopped by {sig.name})" in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        for pid in (task, runner):
            if pid is not None and not gone(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
