"""The HTTP transport (steps._serving.http) on a real socket: a forked Worker serving a small pure-Python model,
spoken to byte by byte. Pipelined requests are answered in request order, Expect: 100-continue is honoured,
a malformed request or an oversized body is refused and the connection closed, and a request that never
finishes arriving gets 408."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from steps._serving.app import Settings
from steps._serving.http import Worker, listen_socket
from steps._serving.metrics import Metrics
from tests.support.serving import MODEL, served

pytestmark = pytest.mark.integration
PREDICT = f"/v1/models/{MODEL}:predict"
BODY = b'{"instances": [{"amount": 40.0, "channel": "app"}]}'


def _work(sock: socket.socket, settings: Settings) -> None:
    model = served()
    metrics = Metrics(model.name, model.version, model.contract.names, model.contract.bin_labels)
    os._exit(Worker(model, metrics, settings, sock).run())


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    settings = Settings(host="127.0.0.1", port=0, max_body_bytes=1024, request_timeout_seconds=0.5)
    sock = listen_socket(settings.host, 0, reuse_port=False)
    worker = multiprocessing.get_context("fork").Process(target=_work, args=(sock, settings), daemon=True)
    worker.start()
    port = sock.getsockname()[1]
    sock.close()
    try:
        wait_ready(port, worker)
        yield port
    finally:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(30)
    assert worker.exitcode == 0


def wait_ready(port: int, worker: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.is_alive():
        try:
            if b"200 OK" in exchange(port, get("/v1/health/ready")):
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"the worker did not get ready (exit code {worker.exitcode})")


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode()


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in ("host: test", "content-type: application/json",
                                        f"content-length: {len(body)}", *headers))
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def exchange(port: int, data: bytes, answers: int = 1, timeout: float = 5.0) -> bytes:
    """Send `data`, read until `answers` complete responses (or the server closes); return what arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        return read(conn, answers)


def read(conn: socket.socket, answers: int) -> bytes:
    got = b""
    while complete(got) < answers:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def complete(data: bytes) -> int:
    """How many whole responses `data` holds (100 Continue counts as none)."""
    n, rest = 0, data
    while b"\r\n\r\n" in rest:
        head, rest = rest.split(b"\r\n\r\n", 1)
        if head.startswith(b"HTTP/1.1 100"):
            continue
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length:"))
        if len(rest) < length:
            break
        rest = rest[length:]
        n += 1
    return n


def statuses(data: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_request_order(port: int) -> None:
    # The health check is answered at once, the predictions after the batch: the order still holds.
    data = post(PREDICT, BODY) + get("/v1/health/live") + post(PREDICT, BODY.replace(b"40.0", b"70.0"))
    got = exchange(port, data, answers=3)
    assert statuses(got) == [200, 200, 200]
    assert got.index(b'"score":0.4') < got.index(b'{"live":true}') < got.index(b'"score":0.7')


def test_expect_100_continue_gets_continue_before_the_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        request = post(PREDICT, BODY, "expect: 100-continue")
        head, body = request.split(b"\r\n\r\n", 1)
        conn.sendall(head + b"\r\n\r\n")
        assert conn.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        assert statuses(read(conn, 1)) == [200]


def test_a_malformed_request_gets_400_and_the_connection_closes(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"BREW /pot HTTP/1.1\r\n\x00\r\n\r\n")
        got = read(conn, 1)
        assert statuses(got) == [400] and b'"rule":"http"' in got and b"connection: close" in got
        assert closed(conn)


def test_an_oversized_body_is_refused_before_it_is_sent_and_counted(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"POST {PREDICT} HTTP/1.1\r\nhost: test\r\ncontent-length: 5000\r\n\r\n".encode())
        got = read(conn, 1)
    assert statuses(got) == [413] and b'"rule":"max_body_bytes"' in got
    scraped = exchange(port, get("/metrics"))
    assert b'model_requests_total{model="fraud-detection",model_version="3",code="413"} 1' in scraped


def test_a_request_that_never_finishes_arriving_gets_408(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(post(PREDICT, BODY)[:-10])
        started = time.monotonic()
        got = read(conn, 1)
        assert statuses(got) == [408] and b'"rule":"timeout"' in got
        assert 0.5 <= time.monotonic() - started < 3.0  # the timeout, found by the once-a-second sweep
