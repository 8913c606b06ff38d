"""The retrain webhook client (steps/_drift/webhook.py) against real HTTP servers on 127.0.0.1: what arrives, which
failures are retried (with what backoff) and which are not, and where the bearer token comes from."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from steps._core.errors import TransientError, UsageError
from steps._drift.webhook import MAX_ANSWER_BYTES, TOKEN_ENV, Delivery, post, read_token
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
BODY = {"model": "fraud-detection", "drifted_features": ["amount", "hour"], "idempotency_key": "k1"}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"accepted": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout test) closed the connection before the reply: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Hook:
    """A real webhook receiver recording every request; `replies` answers the first requests in order, then 200."""

    def __init__(self, replies: list[Reply] | None = None):
        self.requests: list[Received] = []
        self.replies = list(replies or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append(Received(self.command, self.path, dict(self.headers), body))
                reply = hook.replies.pop(0) if hook.replies else Reply()
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_GET = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    started: list[Hook] = []
    yield started
    for hook in started:
        hook.close()


def start(hooks: list[Hook], *replies: Reply) -> Hook:
    hooks.append(Hook(list(replies)))
    return hooks[-1]


class Sleeps(list[float]):
    """post's `sleep`: records each backoff instead of waiting it out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- delivery -----------------------------------------------------------------------------------------------------


def test_the_body_and_the_bearer_token_arrive(hooks: list[Hook]) -> None:
    hook = start(hooks, Reply(202, b"queued"))
    delivery = post(f"{hook.url}/retrain", BODY, TOKEN)
    assert delivery == Delivery(status=202, attempts=1, body="queued")
    [request] = hook.requests
    assert (request.method, request.path) == ("POST", "/retrain")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == BODY
    assert request.body == json.dumps(BODY, sort_keys=True).encode()  # stable bytes: a receiver may sign or dedupe


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408, 425])
def test_a_transient_status_is_retried_until_delivered(hooks: list[Hook], status: int) -> None:
    hook = start(hooks, Reply(status, b"busy"), Reply(status, b"busy"), Reply(200, b"ok"))
    sleeps, lines = Sleeps(), list[str]()
    delivery = post(hook.url, BODY, TOKEN, attempts=5, backoff=0.5, sleep=sleeps, log=lines.append)
    assert (delivery.status, delivery.attempts, delivery.body) == (200, 3, "ok")
    assert len(hook.requests) == 3 and all(json.loads(r.body) == BODY for r in hook.requests)
    assert sleeps == [0.5, 1.0]
    assert [line.split(": HTTP")[0] for line in lines] == [f"webhook {hook.url}: attempt {n}/5 failed" for n in (1, 2)]
    assert all(f"HTTP {status} " in line and line.endswith(": busy") for line in lines)


def test_a_5xx_that_persists_is_a_transient_error_after_the_last_attempt(hooks: list[Hook]) -> None:
    hook = start(hooks, *[Reply(503, b"down for maintenance")] * 4)
    sleeps = Sleeps()
    with pytest.raises(TransientError) as caught:
        post(hook.url, BODY, TOKEN, attempts=4, backoff=0.5, sleep=sleeps)
    assert str(caught.value) == (f"webhook {hook.url}: not delivered after 4 attempts; "
                                 f"last error: HTTP 503 Service Unavailable: down for maintenance")
    assert len(hook.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # doubling, and no sleep after the last attempt


def test_the_backoff_is_capped(hooks: list[Hook]) -> None:
    hook = start(hooks, *[Reply(429)] * 5)
    sleeps = Sleeps()
    with pytest.raises(TransientError, match="not delivered after 5 attempts; last error: HTTP 429 Too Many"):
        post(hook.url, BODY, TOKEN, attempts=5, backoff=4.0, max_backoff=10.0, sleep=sleeps)
    assert sleeps == [4.0, 8.0, 10.0, 10.0]


def test_the_backoff_really_waits_by_default(hooks: list[Hook]) -> None:
    hook = start(hooks, Reply(503), Reply(503))
    started = time.monotonic()
    assert post(hook.url, BODY, TOKEN, attempts=3, backoff=0.1).attempts == 3
    assert time.monotonic() - started >= 0.3  # 0.1 + 0.2


@pytest.mark.parametrize(("status", "reason"), [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"),
                                                (404, "Not Found"), (422, "Unprocessable Entity")])
def test_a_4xx_is_not_retried_and_is_a_usage_error(hooks: list[Hook], status: int, reason: str) -> None:
    hook = start(hooks, Reply(status, b'{"error": "bad token"}'))
    sleeps = Sleeps()
    with pytest.raises(UsageError) as caught:
        post(hook.url, BODY, TOKEN, attempts=5, sleep=sleeps)
    assert str(caught.value) == f'webhook {hook.url}: HTTP {status} {reason}: {{"error": "bad token"}} (not retried)'
    assert (len(hook.requests), sleeps) == (1, [])


def test_a_refused_connection_is_retried_then_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/retrain"
    sleeps = Sleeps()
    with pytest.raises(TransientError, match=rf"^webhook {url}: not delivered after 3 attempts; last error: .*refused"):
        post(url, BODY, TOKEN, attempts=3, backoff=0.25, sleep=sleeps)
    assert sleeps == [0.25, 0.5]


def test_a_receiver_that_does_not_answer_in_time_is_retried(hooks: list[Hook]) -> None:
    hook = start(hooks, Reply(200, delay=1.5), Reply(200, b"second try"))
    delivery = post(hook.url, BODY, TOKEN, attempts=2, timeout=0.5, sleep=Sleeps())
    assert (delivery.attempts, delivery.body) == (2, "second try")


def test_the_token_is_sent_as_given_and_long_error_bodies_are_cut(hooks: list[Hook]) -> None:
    hook = start(hooks, Reply(401, b"x" * 1000))
    with pytest.raises(UsageError) as caught:
        post(hook.url, BODY, "tok en", attempts=1)
    assert hook.requests[0].headers["Authorization"] == "Bearer tok en"
    assert str(caught.value).count("x") == 200


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "127.0.0.1:8080/hook", ""])
def test_a_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match=rf"^--webhook {url!r}: must be an http:// or https:// URL$"):
        post(url, BODY, TOKEN)


def test_fewer_than_one_attempt_is_a_usage_error(hooks: list[Hook]) -> None:
    hook = start(hooks)
    with pytest.raises(UsageError, match=r"^webhook attempts: must be at least 1 \(got 0\)$"):
        post(hook.url, BODY, TOKEN, attempts=0)
    assert hook.requests == []


# --- redirects and hostile endpoints ---------------------------------------------------------------------------
# A webhook is one POST to one URL: a redirect is never followed (urllib's default would turn a 301/302/303 into a
# body-less GET carrying `Authorization: Bearer` to wherever Location points, and report that page's 200 as
# delivered). A 3xx is a failed delivery, retried like a 5xx (a load balancer mid-change answers one for a while),
# then exit 3: the alert was not delivered.


@pytest.mark.parametrize(("status", "reason"), [(301, "Moved Permanently"), (302, "Found"), (303, "See Other"),
                                                (307, "Temporary Redirect"), (308, "Permanent Redirect")])
def test_a_redirect_is_not_followed_and_is_a_failed_delivery_retried_then_transient(
        hooks: list[Hook], status: int, reason: str) -> None:
    elsewhere = start(hooks, Reply(200, b"not the webhook"))
    location = f"{elsewhere.url}/landing"
    hook = start(hooks, *[Reply(status, b"moved", headers={"Location": location})] * 3)
    sleeps, lines = Sleeps(), list[str]()
    with pytest.raises(TransientError) as caught:
        post(hook.url, BODY, TOKEN, attempts=3, backoff=0.5, sleep=sleeps, log=lines.append)
    assert str(caught.value) == (f"webhook {hook.url}: not delivered after 3 attempts; last error: HTTP {status} "
                                 f"{reason}: redirects to {location}, not followed (a webhook is one POST to one URL)")
    assert elsewhere.requests == []  # neither the body nor the bearer token left for the other origin
    assert len(hook.requests) == 3 and all(json.loads(r.body) == BODY for r in hook.requests)
    assert sleeps == [0.5, 1.0]
    assert all(f"failed: HTTP {status} {reason}: redirects to {location}" in line for line in lines)


def test_a_redirect_then_the_webhook_back_is_delivered_on_the_retry(hooks: list[Hook]) -> None:
    elsewhere = start(hooks)
    hook = start(hooks, Reply(302, b"", headers={"Location": f"{elsewhere.url}/"}), Reply(200, b"ok"))
    delivery = post(hook.url, BODY, TOKEN, attempts=2, sleep=Sleeps())
    assert (delivery.status, delivery.attempts, delivery.body) == (200, 2, "ok")
    assert elsewhere.requests == []


class RawEndpoint:
    """A TCP server on 127.0.0.1 that answers each connection with `reply` (bytes, whatever they are), then, when
    `stream` is set, keeps sending it until the client hangs up."""

    def __init__(self, reply: bytes, stream: bytes = b""):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/drift"
        self.connections = 0
        self.reply, self.stream = reply, stream
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                    deadline = time.monotonic() + 10
                    while self.stream and time.monotonic() < deadline:
                        conn.sendall(self.stream)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[list[RawEndpoint]]:
    started: list[RawEndpoint] = []
    yield started
    for endpoint in started:
        endpoint.close()


def test_an_answer_that_is_not_http_is_retried_then_transient(raw: list[RawEndpoint]) -> None:
    raw.append(RawEndpoint(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    with pytest.raises(TransientError, match=r"not delivered after 2 attempts; last error: not an HTTP answer: "):
        post(raw[0].url, BODY, TOKEN, attempts=2, sleep=Sleeps())
    assert raw[0].connections == 2


def test_an_endless_answer_is_read_only_up_to_its_cap(raw: list[RawEndpoint]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000000\r\n\r\n"
    raw.append(RawEndpoint(head, stream=b"x" * 65536))
    started = time.monotonic()
    delivery = post(raw[0].url, BODY, TOKEN, attempts=1)
    assert time.monotonic() - started < 5  # not the endless body
    assert (delivery.status, delivery.attempts, len(delivery.body)) == (200, 1, MAX_ANSWER_BYTES)


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc/drift", "http://:8080/drift", "http://127.0.0.1:99999/"],
                         ids=["port-not-a-number", "no-host", "port-out-of-range"])
def test_a_url_that_cannot_be_called_is_a_usage_error_naming_it(url: str) -> None:
    with pytest.raises(UsageError, match=rf"^--webhook {re.escape(repr(url))}: "):
        post(url, BODY, TOKEN, attempts=1)


@pytest.mark.parametrize(("token", "position"), [("tok\nen", 3), ("token\r\nX-Injected: 1", 5), ("tok\x00en", 3)],
                         ids=["lf", "crlf", "nul"])
def test_a_token_with_a_control_character_is_a_usage_error_that_does_not_echo_it(hooks: list[Hook], token: str,
                                                                                position: int) -> None:
    hook = start(hooks)
    with pytest.raises(UsageError) as caught:
        post(hook.url, BODY, token, attempts=1)
    assert str(caught.value) == (f"webhook token: has a control character (a line break?) at position {position}; "
                                 "a bearer token is one line of printable characters")
    assert hook.requests == []  # nothing sent, and the secret is not in the message


# --- the token ----------------------------------------------------------------------------------------------------


def test_the_token_comes_from_a_file_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    (tmp_path / "token").write_text(f"  {TOKEN}\n")
    assert read_token(tmp_path / "token") == TOKEN  # the file wins over the environment
    assert read_token(str(tmp_path / "token")) == TOKEN


def test_the_token_comes_from_the_environment_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, f" {TOKEN} \n")
    assert read_token(None) == TOKEN
    assert read_token("") == TOKEN


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_no_token_anywhere_is_a_usage_error_saying_where_to_put_one(monkeypatch: pytest.MonkeyPatch,
                                                                     value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    with pytest.raises(UsageError, match=rf"^webhook token: give --token-file FILE or set \${TOKEN_ENV}$"):
        read_token(None)


def test_an_empty_token_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # not a fallback for a file that was named
    (tmp_path / "token").write_text("\n")
    with pytest.raises(UsageError, match=rf"^--token-file {tmp_path / 'token'}: is empty$"):
        read_token(tmp_path / "token")


def test_an_unreadable_token_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=rf"^--token-file {tmp_path / 'absent'}: cannot read: "):
        read_token(tmp_path / "absent")
