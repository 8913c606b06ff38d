"""steps/_canary/local/transport.py, the local router's HTTP/1.1 transport, on raw sockets as a careless or hostile
client writes them: through the router (what a client of `mlops deploy` meets) a chunked body is read whole, and
framing that two parsers could read differently (Content-Length with Transfer-Encoding, two Content-Lengths, a bad
chunk) is answered 400 and the connection closed, so no request hidden in a body ever reaches the control endpoint;
with real model servers behind it, a chunked prediction is forwarded intact and a smuggled abort never aborts. With a
handler that echoes what it got: pipelining, Expect: 100-continue, HEAD, and the limits and timeouts a client meets
(413, 431, 408, 503 past the connection limit, idle connections closed), each answered and the connection closed."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from steps._canary.local import transport
from steps._canary.local.client import DeployClient
from steps._canary.local.deployment import Deployment
from steps._canary.local.router import Router
from steps._core.data import generate
from steps._core.policy import Policy
from tests.support.canary import short_canary_policy, stable_deployment, v1_production_v2_staged
from tests.support.models import Trained

PREDICT = "/v1/models/fraud-detection:predict"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Wire:
    """One client connection: bytes sent exactly as written, answers read as http.client reads them. Every read
    waits at most `timeout` seconds."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> Wire:
        self.sock.sendall(data)
        return self

    def answer(self, head: bool = False) -> Answer:
        """The next answer (`head`: to a HEAD request, so no body follows its headers)."""
        found = self._read(head)
        if found is None:
            raise AssertionError("the router closed the connection instead of answering")
        return found

    def answers(self) -> list[Answer]:
        """Every answer until the router closes the connection (a timeout fails: the router left it open)."""
        found = []
        while (answer := self._read()) is not None:
            found.append(answer)
        return found

    def _read(self, head: bool = False) -> Answer | None:
        try:
            line = self.file.readline(65537)
        except ConnectionResetError:
            return None
        if not line:
            return None
        if not line.startswith(b"HTTP/1.1 "):
            raise AssertionError(f"not an HTTP/1.1 answer: {line!r}")
        headers = http.client.parse_headers(self.file)
        length = 0 if head else int(headers.get("Content-Length") or 0)
        return Answer(int(line.split(b" ", 2)[1]), headers, self.file.read(length))


def request(method: str, path: str, headers: list[str], body: bytes = b"") -> bytes:
    head = "".join(f"{h}\r\n" for h in ["Host: 127.0.0.1", *headers])
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    started = Router(Deployment("fraud-detection", str(tmp_path / "registry")), port=0).start()
    yield started
    started.close()


def bearer(router: Router) -> str:
    return f"Authorization: Bearer {router.token}"


def test_a_chunked_body_is_read_whole_and_the_connection_stays_in_step(router: Router) -> None:
    body = chunked(b'{"vers', b'ion"', b": 0}")
    with Wire(router.port) as wire:
        first = wire.send(request("POST", "/control/stable", [bearer(router), "Transfer-Encoding: chunked",
                                                              "Content-Type: application/json"], body)).answer()
        second = wire.send(request("GET", "/control/status", [bearer(router)])).answer()
    assert (first.status, first.json()) == (409, {"error": "version 0: versions start at 1"})
    assert second.status == 200 and second.json()["stable"] is None


def test_a_request_inside_a_chunk_is_body_not_a_request(router: Router) -> None:
    # What a smuggler sends: a whole control request as the chunk of a prediction. It is the prediction's body.
    inner = request("POST", "/control/stable", [bearer(router), "Content-Length: 14"], b'{"version": 0}')
    with Wire(router.port) as wire:
        first = wire.send(request("POST", PREDICT, ["Transfer-Encoding: chunked"], chunked(inner))).answer()
        second = wire.send(request("GET", "/control/status", [bearer(router)])).answer()
    assert first.status == 503  # no stable version yet: the prediction itself was answered
    assert second.status == 200, "the next answer must be the next request's, not the chunk's"


def framing(name: str, smuggled: bytes) -> tuple[list[str], bytes]:
    """The headers and body of a prediction whose framing two parsers could read differently, `smuggled` after
    the bytes that one of them takes for the whole body."""
    size = b"%x\r\n" % len(smuggled)
    return {
        # Content-Length covers only the chunk-size line: a parser that trusts it reads the chunk as a request.
        "content-length-and-chunked": ([f"Content-Length: {len(size)}", "Transfer-Encoding: chunked"],
                                       size + smuggled + b"\r\n0\r\n\r\n"),
        "chunked-and-content-length": (["Transfer-Encoding: chunked", f"Content-Length: {len(size)}"],
                                       size + smuggled + b"\r\n0\r\n\r\n"),
        "two-content-lengths": (["Content-Length: 0", "Content-Length: 0"], smuggled),
        "different-content-lengths": (["Content-Length: 0", f"Content-Length: {len(smuggled)}"], smuggled),
        "content-length-list": (["Content-Length: 0, 0"], smuggled),
        "chunk-size-not-hex": (["Transfer-Encoding: chunked"], b"zz\r\n" + smuggled),
        "chunk-size-negative": (["Transfer-Encoding: chunked"], b"-1\r\n" + smuggled),
        "chunk-size-overflow": (["Transfer-Encoding: chunked"], b"f" * 20 + b"\r\n" + smuggled),
        "chunk-longer-than-its-size": (["Transfer-Encoding: chunked"], b"1\r\nxy\r\n" + smuggled),
        "unknown-transfer-encoding": (["Transfer-Encoding: gzip"], smuggled),
    }[name]


FRAMINGS = ["content-length-and-chunked", "chunked-and-content-length", "two-content-lengths",
            "different-content-lengths", "content-length-list", "chunk-size-not-hex", "chunk-size-negative",
            "chunk-size-overflow", "chunk-longer-than-its-size", "unknown-transfer-encoding"]


@pytest.mark.parametrize("name", FRAMINGS)
def test_ambiguous_framing_is_refused_with_400_and_the_connection_closed(router: Router, name: str) -> None:
    # The hidden request carries the token: only the framing decides whether its bytes are a request.
    smuggled = request("POST", "/control/stable", [bearer(router), "Content-Length: 14"], b'{"version": 0}')
    headers, body = framing(name, smuggled)
    with Wire(router.port) as wire:
        answers = wire.send(request("POST", PREDICT, headers, body)).answers()
    assert [a.status for a in answers] == [400], [a.body for a in answers]
    assert answers[0].headers["Connection"] == "close"
    error = answers[0].json()
    assert error["rule"] == "http" and error["error"].startswith("malformed HTTP request: "), error


# --- with real model servers behind the router ------------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path: Path, trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """What `mlops deploy` runs: the router with v1 of the trained model as the stable server."""
    policy = short_canary_policy(trained, tmp_path_factory)
    with stable_deployment(v1_production_v2_staged(tmp_path, trained, policy), policy) as router:
        yield router


def rows(policy: Policy, n: int) -> bytes:
    frame = generate(n, seed=3)
    return json.dumps({"instances": json.loads(frame[policy.data.feature_names].to_json(orient="records"))}).encode()


@pytest.mark.integration
@pytest.mark.slow
def test_a_chunked_prediction_is_forwarded_intact(
        deployment: Router, trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> None:
    body = rows(short_canary_policy(trained, tmp_path_factory), 5)
    answers = []
    for chunks in ([body], [body[:7], body[7:100], body[100:]]):
        conn = http.client.HTTPConnection("127.0.0.1", deployment.port, timeout=10)
        try:
            if len(chunks) == 1:
                conn.request("POST", PREDICT, body=body, headers={"Content-Type": "application/json"})
            else:
                conn.request("POST", PREDICT, body=iter(chunks), encode_chunked=True,
                             headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            answer = conn.getresponse()
            answers.append((answer.status, answer.getheader("X-Model-Role"), json.loads(answer.read())))
        finally:
            conn.close()
    assert answers[0][:2] == (200, "stable") and len(answers[0][2]["predictions"]) == 5
    assert answers[1] == answers[0], "the chunked prediction must be answered as the same one with Content-Length"


@pytest.mark.integration
@pytest.mark.slow
def test_a_smuggled_abort_never_aborts_the_canary(deployment: Router) -> None:
    client = DeployClient(deployment.url)
    client.set_canary(2, 50)
    # With the token, even: only the framing decides whether these bytes are a request.
    abort = request("POST", "/control/abort", [bearer(deployment), "Content-Length: 2"], b"{}")
    size = b"%x\r\n" % len(abort)
    with Wire(deployment.port) as wire:
        refused = wire.send(request("POST", PREDICT, [f"Content-Length: {len(size)}", "Transfer-Encoding: chunked"],
                                    size + abort + b"\r\n0\r\n\r\n")).answers()
    with Wire(deployment.port) as wire:
        as_body = wire.send(request("POST", PREDICT, ["Transfer-Encoding: chunked"], chunked(abort))).answer()
        after = wire.send(request("GET", "/control/status", [bearer(deployment)])).answer()
    assert [a.status for a in refused] == [400]
    assert 400 <= as_body.status < 500 and as_body.headers["X-Model-Role"] in ("stable", "canary")
    assert after.status == 200
    status = client.status()
    assert status["canary"] is not None and status["canary"]["version"] == 2 and status["weight"] == 50, status


# --- the transport itself, with a handler that echoes what it was given ------------------------------------------


def echo(req: transport.Request) -> transport.Response:
    if req.path == "/crash":
        raise RuntimeError("a bug in a route")
    return transport.json_response(200, {"method": req.method, "target": req.target, "body": req.body.decode()})


@pytest.fixture
def serve() -> Iterator[Callable[..., transport.Server]]:
    """Start the transport with the echo handler and the given limits; stopped after the test."""
    started: list[transport.Server] = []

    def start(**limits: Any) -> transport.Server:
        server = transport.Server(("127.0.0.1", 0), echo, transport.Limits(**limits))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
        server.close_connections()


def port(server: transport.Server) -> int:
    return int(server.server_address[1])


def test_pipelined_requests_are_answered_in_request_order(serve: Callable[..., transport.Server]) -> None:
    data = (request("POST", "/a", ["Content-Length: 3"], b"one")
            + request("POST", "/b", ["Transfer-Encoding: chunked"], chunked(b"tw", b"o"))
            + request("HEAD", "/c", [])
            + request("GET", "/d?x=1", []))
    with Wire(port(serve())) as wire:
        answers = [wire.send(data).answer(), wire.answer(), wire.answer(head=True), wire.answer()]
    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert [a.json()["body"] for a in (answers[0], answers[1])] == ["one", "two"]
    assert answers[2].body == b"" and int(answers[2].headers["Content-Length"]) > 0  # HEAD: the headers only
    assert answers[3].json()["target"] == "/d?x=1"


def test_expect_100_continue_is_answered_before_the_body_is_sent(serve: Callable[..., transport.Server]) -> None:
    with Wire(port(serve())) as wire:
        interim = wire.send(request("POST", "/a", ["Content-Length: 5", "Expect: 100-continue"])).answer()
        final = wire.send(b"hello").answer()
    assert interim.status == 100
    assert final.status == 200 and final.json()["body"] == "hello"


@pytest.mark.parametrize(("headers", "body"), [(["Content-Length: 5000"], b""),
                                               (["Content-Length: 5000", "Expect: 100-continue"], b""),
                                               (["Transfer-Encoding: chunked"], chunked(b"x" * 600, b"y" * 600))],
                         ids=["content-length", "expect", "chunked"])
def test_a_body_over_the_limit_is_refused_413_without_reading_it(
        serve: Callable[..., transport.Server], headers: list[str], body: bytes) -> None:
    with Wire(port(serve(max_body_bytes=1000))) as wire:
        answers = wire.send(request("POST", "/a", headers, body)).answers()
    assert [a.status for a in answers] == [413]
    assert answers[0].json() == {"error": "the body is more than the router's limit of 1000 bytes",
                                 "rule": "max_body_bytes"}


def test_headers_over_the_limit_are_refused_431(serve: Callable[..., transport.Server]) -> None:
    with Wire(port(serve(max_header_bytes=1024))) as wire:
        answers = wire.send(request("GET", "/a", [f"X-Big: {'b' * 2000}"])).answers()
    assert [a.status for a in answers] == [431]
    assert answers[0].json()["rule"] == "max_header_bytes"


def test_a_request_that_does_not_arrive_in_time_is_answered_408(serve: Callable[..., transport.Server]) -> None:
    with Wire(port(serve(request_seconds=0.3))) as wire:
        started = time.monotonic()
        answers = wire.send(request("POST", "/a", ["Content-Length: 10"], b"abc")).answers()
    assert [a.status for a in answers] == [408] and time.monotonic() - started < 3
    assert answers[0].json()["rule"] == "request_seconds"


def test_an_idle_connection_is_closed_quietly(serve: Callable[..., transport.Server]) -> None:
    with Wire(port(serve(idle_seconds=0.3, request_seconds=5))) as wire:
        first = wire.send(request("GET", "/a", [])).answer()
        started = time.monotonic()
        assert wire.answers() == []  # closed, with no answer to a request never sent
    assert first.status == 200 and 0.2 < time.monotonic() - started < 3


def test_connections_beyond_the_limit_are_refused_503(serve: Callable[..., transport.Server]) -> None:
    server = serve(max_connections=2)
    with Wire(port(server)) as one, Wire(port(server)) as two:
        assert one.send(request("GET", "/a", [])).answer().status == 200
        assert two.send(request("GET", "/a", [])).answer().status == 200
        with Wire(port(server)) as three:
            refused = three.answers()
        assert [a.status for a in refused] == [503] and refused[0].json()["rule"] == "max_connections"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the two closed: their places are free again
        with Wire(port(server)) as again:
            if again.send(request("GET", "/a", [])).answer().status == 200:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("a connection was refused after the others had closed")


@pytest.mark.parametrize(("version", "headers"), [("HTTP/1.0", []), ("HTTP/1.1", ["Connection: close"])],
                         ids=["http-1.0", "connection-close"])
def test_the_connection_ends_after_the_answer_when_the_client_asks(
        serve: Callable[..., transport.Server], version: str, headers: list[str]) -> None:
    data = request("GET", "/a", headers).replace(b"HTTP/1.1", version.encode(), 1)
    with Wire(port(serve())) as wire:
        answers = wire.send(data).answers()
    assert [a.status for a in answers] == [200] and answers[0].headers["Connection"] == "close"


REFUSED = {
    "upgrade": (request("GET", "/a", ["Connection: Upgrade", "Upgrade: websocket"]), 400, "http"),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400, "http"),
    "http-2.0": (b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http"),
    "not-http": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40, 400, "http"),
}


@pytest.mark.parametrize(("data", "status", "rule"), REFUSED.values(), ids=REFUSED.keys())
def test_what_is_not_http_1_is_refused_and_the_connection_closed(
        serve: Callable[..., transport.Server], data: bytes, status: int, rule: str) -> None:
    with Wire(port(serve())) as wire:
        answers = wire.send(data).answers()
    assert [a.status for a in answers] == [status] and answers[0].json()["rule"] == rule


def test_a_route_that_fails_is_a_500_and_the_router_keeps_serving(serve: Callable[..., transport.Server]) -> None:
    server = serve()
    with Wire(port(server)) as wire:
        answers = wire.send(request("GET", "/crash", [])).answers()
    assert [a.status for a in answers] == [500]
    assert answers[0].json() == {"error": "internal error: RuntimeError: a bug in a route", "rule": "internal"}
    with Wire(port(server)) as wire:
        assert wire.send(request("GET", "/a", [])).answer().status == 200
