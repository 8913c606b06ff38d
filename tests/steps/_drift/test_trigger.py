"""The retrain request (steps/_drift/trigger.py) on a real registry against real HTTP endpoints on 127.0.0.1: the
drift episode's cooldown stands only for a delivered alert; a delivery that failed in any way (a redirect, an
answer that is not HTTP, an interrupted POST) releases it, so the next check re-sends the same idempotency key."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from steps._core.errors import TransientError
from steps._core.policy import DriftPolicy
from steps._drift import cooldown
from steps._drift.rule import RETRAIN, DriftResult, FeatureDrift
from steps._drift.trigger import trigger
from steps._storage.registry import Registry
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

MODEL = "fraud-detection"
TOKEN = "s3cret-token"
RESULT = DriftResult(method="psi", threshold=0.15, drift_share=0.3, min_samples=100, samples=4000,
                     features=(FeatureDrift("amount", "numeric", "psi", 0.9, None, True, 4000),
                               FeatureDrift("region", "categorical", "psi", 0.01, None, False, 4000)),
                     share=0.5, decision=RETRAIN, reason="1 of 2 features drifted")


class Endpoint:
    """A real HTTP endpoint recording each request (method, path, Authorization, body); `replies` are
    (status, headers) for the first requests in order, then 200."""

    def __init__(self, replies: list[tuple[int, dict[str, str]]] | None = None, hang: bool = False):
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        self.replies = list(replies or [])
        self.arrived = threading.Event()
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
                endpoint.arrived.set()
                if hang:  # never answers: the sender is interrupted while it waits
                    endpoint.release.wait(20)
                    return
                status, headers = endpoint.replies.pop(0) if endpoint.replies else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drift"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    started: list[Endpoint] = []
    yield started
    for endpoint in started:
        endpoint.close()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.open(str(tmp_path / "registry"))


def record(registry: Registry) -> dict[str, Any]:
    state, _ = cooldown.read(registry, MODEL)
    assert state is not None
    return dict(state)


def send(registry: Registry, url: str) -> Any:
    return trigger(registry, MODEL, 3, RESULT, DriftPolicy(), url, TOKEN, backoff=0.01, attempts=2)


def test_a_redirect_is_a_failed_delivery_that_releases_the_episode_for_the_next_check(
        registry: Registry, endpoints: list[Endpoint]) -> None:
    elsewhere = Endpoint()
    redirecting = Endpoint([(302, {"Location": elsewhere.url})] * 2)
    endpoints += [elsewhere, redirecting]
    with pytest.raises(TransientError, match="not delivered after 2 attempts; last error: HTTP 302 Found"):
        send(registry, redirecting.url)
    assert elsewhere.requests == []  # no GET, no token at the other origin
    state = record(registry)
    assert state["status"] == "failed" and "HTTP 302 Found: redirects to" in state["detail"]
    # The EventSource is back: the next check re-sends the same episode's key, which then holds the cooldown.
    webhook = Endpoint()
    endpoints.append(webhook)
    sent = send(registry, webhook.url)
    assert (sent.status, sent.idempotency_key) == ("sent", state["idempotency_key"])
    [(method, _, auth, body)] = webhook.requests
    assert (method, auth, json.loads(body)["idempotency_key"]) == ("POST", f"Bearer {TOKEN}", sent.idempotency_key)
    assert send(registry, webhook.url).status == "cooldown" and len(webhook.requests) == 1


def test_an_answer_that_is_not_http_releases_the_episode(registry: Registry, endpoints: list[Endpoint]) -> None:
    """Before: http.client's BadStatusLine escaped the sender, the step crashed, and the episode stayed claimed:
    every check of the next 10 minutes (the claim's lease) said cooldown and nothing was re-sent."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/drift"

        def answer_garbage() -> None:
            for _ in range(2):
                conn, _ = server.accept()
                with conn:
                    conn.settimeout(10)
                    conn.recv(65536)
                    conn.sendall(b"garbage\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        with pytest.raises(TransientError, match="not an HTTP answer"):
            send(registry, url)
        thread.join(10)
    key = record(registry)["idempotency_key"]
    assert record(registry)["status"] == "failed"
    webhook = Endpoint()
    endpoints.append(webhook)
    assert (send(registry, webhook.url).status, len(webhook.requests)) == ("sent", 1)
    assert json.loads(webhook.requests[0][3])["idempotency_key"] == key


# The drift step interrupted (Ctrl-C) while its POST waits for an answer: a child process runs `trigger` against
# an endpoint that never answers, and is sent SIGINT once the request has arrived.
_INTERRUPTED = """
import sys
from steps._core.policy import DriftPolicy
from steps._drift.rule import DriftResult, FeatureDrift
from steps._drift.trigger import trigger
from steps._storage.registry import Registry
result = DriftResult("psi", 0.15, 0.3, 100, 4000, (FeatureDrift("amount", "numeric", "psi", 0.9, None, True, 4000),),
                     1.0, "retrain", "drift")
trigger(Registry.open(sys.argv[1]), "fraud-detection", 3, result, DriftPolicy(), sys.argv[2], "tok", attempts=1)
"""


def test_an_interrupted_post_releases_the_episode(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    silent = Endpoint(hang=True)
    endpoints.append(silent)
    child = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, str(tmp_path / "registry"), silent.url], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert silent.arrived.wait(30), "the POST never arrived"
        time.sleep(0.2)  # the child is now waiting for the answer
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert "KeyboardInterrupt" in err
    state = record(Registry.open(str(tmp_path / "registry")))
    assert state["status"] == "failed" and "interrupted" in state["detail"]
