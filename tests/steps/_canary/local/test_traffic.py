"""steps/_canary/local/traffic.py against a real HTTP server on 127.0.0.1: rows replayed in order, `batch` per
request, at the rate asked for; answers counted by status; a stop that comes promptly even while an answer never
comes, and counts nothing the stop itself cut short."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from steps._canary.local.traffic import Traffic


class Predictions:
    """A model server's predict route that records the rows it gets; `status` answers, `hang` never answers."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.requests = 0
        self.status = 200
        self.hang = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/models/m:predict"
                with outer.lock:
                    outer.requests += 1
                    outer.rows += body["instances"]
                if outer.hang.is_set():
                    outer.release.wait(30)
                    return
                data = b'{"predictions": []}'
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Predictions]:
    predictions = Predictions()
    yield predictions
    predictions.close()


ROWS = [{"x": i} for i in range(7)]


def test_rows_are_replayed_in_order_one_per_request_by_default(server: Predictions) -> None:
    with Traffic(server.url, "m", ROWS) as traffic:
        deadline = time.monotonic() + 10
        while traffic.counts()[2] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    ok, failed, rows = traffic.counts()
    assert failed == 0 and ok == rows >= 20 and ok == server.requests
    assert server.rows == [ROWS[i % len(ROWS)] for i in range(len(server.rows))]  # in order, in a loop


def test_the_rate_limits_requests_across_connections_and_rows_are_counted_by_batch(server: Predictions) -> None:
    traffic = Traffic(server.url, "m", ROWS, rate=40, batch=3, connections=4).start()
    time.sleep(1.5)
    traffic.stop()
    ok, failed, rows = traffic.counts()
    assert failed == 0 and rows == 3 * ok
    assert 20 <= ok <= 70, ok  # 40/s for 1.5 s, each connection's first request at once: never hundreds


def test_answers_are_counted_by_status(server: Predictions) -> None:
    server.status = 500
    with Traffic(server.url, "m", ROWS) as traffic:
        deadline = time.monotonic() + 10
        while traffic.counts()[1] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    ok, failed, rows = traffic.counts()
    assert ok == 0 and rows == 0 and failed >= 5 and traffic.codes.keys() == {500}


def test_stop_is_prompt_while_an_answer_never_comes_and_counts_no_failure(server: Predictions) -> None:
    server.hang.set()
    traffic = Traffic(server.url, "m", ROWS, connections=2).start()
    deadline = time.monotonic() + 10
    while server.requests < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    traffic.stop(timeout=0.5)
    assert time.monotonic() - began < 2.5
    assert not any(thread.is_alive() for thread in traffic.threads)
    assert traffic.counts() == (0, 0, 0)


def test_a_router_that_is_not_there_counts_as_failures(server: Predictions) -> None:
    url = server.url
    server.close()
    with Traffic(url, "m", ROWS) as traffic:
        time.sleep(0.3)
    ok, failed, _ = traffic.counts()
    assert ok == 0 and 1 <= failed <= 10  # a failed connection waits before the next try: no busy loop
