"""HTTP templates as Argo's agent makes the request, and the readiness probes of daemons, against a real server."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workflows.local.engine import http
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.pods import PodRefused, PodResult, PodSpec

pytestmark = pytest.mark.integration


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        if self.path == "/redirect":
            self._answer(302, b"", {"Location": "/echo"})
        elif self.path == "/gzip":
            self._answer(200, gzip.compress(b"unzipped"), {"Content-Encoding": "gzip"})
        elif self.path == "/fail":
            self._answer(500, b"broken")
        else:
            self._echo()

    def do_POST(self) -> None:
        self._echo()

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"method": self.command, "path": self.path, "body": self.rfile.read(length).decode(),
                           "agent": self.headers.get("User-Agent"), "x": self.headers.get("X-Token")})
        self._answer(200, body.encode(), {"X-Served-By": "test"})

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is expected


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def run_http(tmp_path: Path, request: dict[str, Any], timeout: float = 20) -> PodResult:
    spec = PodSpec(workflow="wf", node_id="wf-1", node_name="wf.call", pod_name=f"wf-call-{uuid.uuid4().hex[:6]}",
                   kind="http", template={"http": request}, volumes=[])
    handle = LocalExecutor(tmp_path / "run").start(spec)
    deadline = time.monotonic() + timeout
    while (result := handle.poll()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return result


def test_a_2xx_answer_succeeds_with_the_body_as_result(server: str, tmp_path: Path) -> None:
    result = run_http(tmp_path, {"url": f"{server}/redirect"})
    assert result.phase == "Succeeded"
    body = json.loads(result.outputs.result or "")
    assert body["path"] == "/echo" and body["agent"] == "Go-http-client/1.1"  # redirect followed, Go's agent


def test_a_post_sends_its_body_and_headers(server: str, tmp_path: Path) -> None:
    result = run_http(tmp_path, {"method": "POST", "url": f"{server}/echo", "body": "payload",
                                 "headers": [{"name": "X-Token", "value": "t"}]})
    assert json.loads(result.outputs.result or "") | {"agent": None} == {
        "method": "POST", "path": "/echo", "body": "payload", "agent": None, "x": "t"}


def test_a_non_2xx_answer_fails_with_argos_message(server: str, tmp_path: Path) -> None:
    result = run_http(tmp_path, {"url": f"{server}/fail"})
    assert (result.phase, result.message, result.outputs.result) == (
        "Failed", "received non-2xx response code: 500", "broken")


def test_a_gzip_answer_is_unzipped_as_gos_client_does(server: str, tmp_path: Path) -> None:
    assert run_http(tmp_path, {"url": f"{server}/gzip"}).outputs.result == "unzipped"


@pytest.mark.parametrize("condition, phase", [
    ('response.statusCode == 500 && response.body == "broken"', "Succeeded"),
    ("response.statusCode == 200", "Failed"),
], ids=["true", "false"])
def test_success_condition_decides_over_request_and_response(server: str, tmp_path: Path, condition: str,
                                                             phase: str) -> None:
    result = run_http(tmp_path, {"url": f"{server}/fail", "successCondition": condition})
    assert result.phase == phase
    if phase == "Failed":
        assert result.message == f"successCondition '{condition}' evaluated false"


def test_response_headers_have_gos_canonical_keys(server: str, tmp_path: Path) -> None:
    result = run_http(tmp_path, {"url": f"{server}/echo",
                                 "successCondition": 'response.headers["X-Served-By"][0] == "test"'})
    assert result.phase == "Succeeded"


def test_timeout_and_unreachable_servers_fail_the_node(server: str, tmp_path: Path) -> None:
    started = time.monotonic()
    slow = run_http(tmp_path, {"url": f"{server}/slow", "timeoutSeconds": 1})
    assert slow.phase == "Failed" and slow.message.startswith(f'Get "{server}/slow": ')
    assert time.monotonic() - started < 2.9
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_http(tmp_path, {"url": f"http://127.0.0.1:{port}/"}).phase == "Failed"


def test_header_values_from_secrets_are_refused(tmp_path: Path) -> None:
    request = {"url": "http://127.0.0.1/", "headers": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}
    with pytest.raises(PodRefused, match="Secret"):
        run_http(tmp_path, request)


def test_probes_pass_once_the_server_answers(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    assert http.probe({"httpGet": {"path": "/echo", "port": "web"}}, [{"name": "web", "containerPort": port}], 1)
    assert not http.probe({"httpGet": {"path": "/fail", "port": port}}, [], 1)
    assert http.probe({"tcpSocket": {"port": port}}, [], 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not http.probe({"tcpSocket": {"port": closed}}, [], 1)
