"""The gRPC side of real `python -m steps.serve` processes: several workers share the gRPC port (SO_REUSEPORT) and
one metrics table; a model that fails is INTERNAL (a server error, counted 500), never a client's status; a gRPC
port the server cannot have stops it before it is ready; a bad --grpc-port is a usage error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steps._core.data import generate
from steps._core.policy import load_policy
from tests.support import faults
from tests.support.models import Trained
from tests.support.paths import ROOT
from tests.support.processes import free_port
from tests.support.serving import Server, metric, start, wait_ready

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (a dev extra) is not installed")
pytestmark = pytest.mark.integration
MODEL = "fraud-detection"
DTYPES = {"FP64": np.float64, "INT64": np.int64, "BYTES": np.object_}


def _inputs(server: Server, trained: Trained) -> list[Any]:
    meta = server.call("GET", f"/v2/models/{MODEL}")[1]
    policy = load_policy(trained.policy)
    records = json.loads(generate(20, seed=9)[policy.data.feature_names].to_json(orient="records"))
    rows = [r for r in records if None not in r.values()][:2]
    out = []
    for spec in meta["inputs"]:
        tensor = grpcclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(np.array([r[spec["name"]] for r in rows], dtype=DTYPES[spec["datatype"]]))
        out.append(tensor)
    return out


def test_workers_share_the_grpc_port_and_the_metrics(trained: Trained, tmp_path: Path) -> None:
    grpc_port = free_port()
    server = start(trained.bundle, tmp_path, "--workers", "2", "--grpc-port", str(grpc_port))
    try:
        inputs = _inputs(server, trained)
        for _ in range(12):  # a new connection each time: the kernel spreads them over the workers' sockets
            client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
            assert client.infer(MODEL, inputs).as_numpy("score").shape == (2,)
            client.close()
        text = server.call("GET", "/metrics")[1]
        assert metric(text, "model_requests_total", code="200", protocol="grpc") == 12
        ready = [line for line in server.log_lines() if line.get("event") == "ready"]
        assert sorted(line["worker"] for line in ready) == [0, 1]
        assert {line["grpc_address"] for line in ready} == {f"127.0.0.1:{grpc_port}"}
    finally:
        assert server.stop() == 0


def test_draining_is_not_ready_over_grpc_but_still_answers(trained: Trained, tmp_path: Path) -> None:
    grpc_port = free_port()
    server = start(trained.bundle, tmp_path, "--grpc-port", str(grpc_port), "--drain-seconds", "30")
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    try:
        inputs = _inputs(server, trained)
        assert client.is_server_ready() and client.is_model_ready(MODEL)
        server.proc.send_signal(signal.SIGTERM)
        while client.is_server_ready():  # until the worker has handled the signal
            pass
        assert not client.is_model_ready(MODEL) and client.is_server_live()
        assert client.infer(MODEL, inputs).as_numpy("score").shape == (2,)  # the load balancer's stragglers
    finally:
        client.close()
        server.proc.kill()
        server.proc.wait(timeout=30)


def test_a_call_still_running_after_the_grace_is_cancelled_and_the_server_exits(
        trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes kills a pod after its grace period: the server must not outlive it waiting on a call."""
    faults.inject(monkeypatch, "latency_ms=4000")
    port, grpc_port = free_port(), free_port()
    # steps.serve with a 0.5 s grace (Settings.grace_seconds has no flag: Kubernetes' 30 s sets it).
    code = ("import dataclasses, sys; from steps import serve; settings = serve._settings; "
            "serve._settings = lambda args: dataclasses.replace(settings(args), grace_seconds=0.5); "
            "sys.exit(serve.main(sys.argv[1:]))")
    log = tmp_path / "server.log"
    env = {**os.environ, "MLOPS_DEPLOY_ROLE": "canary",
           "PYTHONPATH": os.pathsep.join([str(faults.FOLDER), os.environ.get("PYTHONPATH", ""), str(ROOT)])}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, "--model-dir", str(trained.bundle), "--host", "127.0.0.1",
                                 "--port", str(port), "--grpc-port", str(grpc_port), "--predictor", "skops"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, port, log, env)
    wait_ready(server)
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(client.infer, MODEL, _inputs(server, trained))
            threading.Event().wait(0.5)  # the call is in the model, which takes 4 s
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(grpcclient.InferenceServerException) as caught:
                running.result()
        assert str(caught.value.status()) in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED")
        assert proc.wait(timeout=30) == 0
        assert "grace_expired" in [line.get("event") for line in server.log_lines()]
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_http_only_server_never_loads_grpc() -> None:
    """grpc and the stubs cost memory and start-up time: only a server with --grpc-port imports them."""
    done = subprocess.run([sys.executable, "-c", "import sys, steps.serve, steps._serving.supervisor, "
                           "steps._serving.http; print(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc' "
                           "or m.startswith('steps._serving.grpc')))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_failing_model_is_internal_and_counted_as_a_server_error(trained: Trained, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    faults.inject(monkeypatch, "error_rate=1")
    grpc_port = free_port()
    server = start(trained.bundle, tmp_path, "--grpc-port", str(grpc_port), env={"MLOPS_DEPLOY_ROLE": "canary"},
                   pythonpath=str(faults.FOLDER))
    try:
        client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        with pytest.raises(grpcclient.InferenceServerException) as caught:
            client.infer(MODEL, _inputs(server, trained))
        client.close()
        assert str(caught.value.status()) == "StatusCode.INTERNAL"
        assert "the model failed on this request" in caught.value.message()
        text = server.call("GET", "/metrics")[1]
        assert metric(text, "model_requests_total", code="500", protocol="grpc") == 1
        assert metric(text, "model_inference_errors_total") == 1
    finally:
        assert server.stop() == 0


def test_a_grpc_port_in_use_stops_the_server_before_it_is_ready(trained: Trained, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = start(trained.bundle, tmp_path, "--grpc-port", str(taken.getsockname()[1]), wait=False)
        assert server.proc.wait(timeout=60) == 2
    events = [line["event"] for line in server.log_lines()]
    assert "grpc_unusable" in events and "ready" not in events


@pytest.mark.parametrize(("value", "said"), [("http", "must be a port number"), ("70000", "must be 0 to 65535"),
                                             ("same", "the same port as --port")])
def test_a_bad_grpc_port_is_a_usage_error(trained: Trained, value: str, said: str) -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "steps.serve", "--model-dir", str(trained.bundle), "--port",
                           str(port), "--grpc-port", str(port) if value == "same" else value], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and said in done.stderr, done.stderr[-500:]
