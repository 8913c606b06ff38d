"""What a hostile or careless client can do to the EventSource of `mlops events serve` (workflows/local/events.py),
over real sockets on 127.0.0.1: a request that arrives slowly, or never whole, is cut at the read deadline; a body
past the cluster EventSource's maxPayloadSize gets 413 unread; a Content-Length that is not a number, a chunked body
or JSON nested past what the server reads gets a 4xx; connections past the cap get 503 at once. Each gets an answer,
never a dropped connection. Every socket here has a timeout, so a regression fails instead of hanging."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import POLICY
from workflows import events
from workflows.local import events as events_serve
from workflows.local.sensors import Sensors

pytestmark = pytest.mark.integration

TOKEN = "local-token"
ALERT = {"model": "fraud-detection", "reason": "automated_drift_detection", "drifted_features": ["amount"],
         "idempotency_key": "0123456789ab", "production_version": 3, "drift_share": 0.5, "samples": 12000,
         "window": "1h"}
FAST = events_serve.Limits(read_seconds=1.0)  # the default 10 s, shortened so the tests take seconds


class Served:
    def __init__(self, port: int, runs: events_serve.Runs, log: list[str]):
        self.port, self.runs, self.log = port, runs, log
        self.url = f"http://127.0.0.1:{port}"

    def post(self, data: bytes, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"{self.url}/drift", data=data, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.settimeout(5)
        return sock

    def raw(self, data: bytes) -> tuple[int | None, bytes]:
        """Send `data` on a new connection and read until the server closes it: (status or None, the whole answer);
        None when the server closed without a word (or did not answer within 5 s)."""
        with self.connect() as sock:
            sock.sendall(data)
            return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int | None, bytes]:
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (TimeoutError, ConnectionError):
        pass
    if not answer.startswith(b"HTTP/"):
        return None, answer
    return int(answer.split(b" ", 2)[1]), answer


def error_of(answer: bytes) -> dict[str, Any]:
    return dict(json.loads(answer.split(b"\r\n\r\n", 1)[1]))


def head(content_length: str, token: str = TOKEN, extra: str = "") -> bytes:
    return (f"POST /drift HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n{extra}\r\n").encode()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[events_serve.Limits], Served]]:
    """Start the EventSource with the given limits; its runs are never started (accepted alerts only queue)."""
    stops: list[Callable[[], None]] = []

    def start(limits: events_serve.Limits) -> Served:
        log: list[str] = []
        runs = events_serve.Runs(tmp_path, log=log.append)
        server = events_serve.make_server("127.0.0.1", 0, TOKEN, Sensors.from_policies([POLICY]), runs,
                                          log=log.append, limits=limits)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        stops.append(server.shutdown)
        stops.append(server.server_close)
        return Served(server.server_address[1], runs, log)

    yield start
    for stop in stops:
        stop()


# --- the body: at most the cluster EventSource's maxPayloadSize -----------------------------------------------------

def test_the_body_limit_is_the_cluster_event_sources_max_payload_size() -> None:
    webhook = events.build_event_source()["spec"]["webhook"][events.EVENT_NAME]
    assert events_serve.Limits().max_body_bytes == webhook["maxPayloadSize"] == 64 * 1024


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413(serve: Callable[..., Served]) -> None:
    served = serve(FAST)
    text = json.dumps(ALERT).encode()
    code, answer = served.post(text + b" " * (65536 - len(text)))
    assert (code, answer["status"]) == (200, "submitted")
    code, answer = served.post(text + b" " * (65537 - len(text)))
    assert code == 413
    assert answer == {"error": "request body too large: Content-Length 65537 is more than the EventSource's "
                               "maxPayloadSize of 65536 bytes", "rule": "maxPayloadSize"}


def test_a_20_mb_body_is_413_before_it_is_read_and_the_sender_reads_the_answer(serve: Callable[..., Served]) -> None:
    served = serve(FAST)
    started = time.monotonic()
    code, answer = served.raw(head(str(20 * 1024 * 1024)))  # the headers only: the answer cannot wait for the body
    assert code == 413 and time.monotonic() - started < 1.0
    assert error_of(answer)["rule"] == "maxPayloadSize"
    # A real client sends the whole 20 MB first; it still reads the 413 (the rest is read and dropped, not kept).
    code, reply = served.post(b'{"pad": "' + b"x" * (20 * 1024 * 1024) + b'"}')
    assert code == 413 and "Content-Length 20971531 is more than" in reply["error"]
    assert served.runs.status == {}


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "+5", "0x10"])
def test_a_content_length_that_is_not_a_whole_number_is_400_naming_it(serve: Callable[..., Served],
                                                                       value: str) -> None:
    served = serve(FAST)
    code, answer = served.raw(head(value) + b'{"model": "fraud-detection"}')
    assert code == 400
    assert error_of(answer) == {"error": f"Content-Length {value!r}: must be a whole number of bytes",
                                "rule": "Content-Length"}


def test_two_different_content_lengths_are_400(serve: Callable[..., Served]) -> None:
    code, answer = serve(FAST).raw(head("2", extra="Content-Length: 30\r\n") + b"{}")
    assert code == 400 and "Content-Length" in error_of(answer)["error"]


def test_a_chunked_body_is_411_saying_to_send_a_content_length(serve: Callable[..., Served]) -> None:
    request = (b"POST /drift HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
               b"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    code, answer = serve(FAST).raw(request)
    assert code == 411
    assert error_of(answer) == {"error": "Transfer-Encoding 'chunked': not read here; send the body with a "
                                         "Content-Length", "rule": "Content-Length"}


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 30000 + b"]" * 30000, "the body nests deeper than this server reads JSON"),
    (b'{"model": "fraud-detection",', "the body is not JSON: "),
    (b'{"model": "\xff"}', "the body is not JSON: "),
], ids=["30000-deep", "cut-short", "not-utf-8"])
def test_a_body_that_is_not_json_it_can_read_is_400(serve: Callable[..., Served], body: bytes, message: str) -> None:
    served = serve(FAST)
    code, answer = served.raw(head(str(len(body))) + body)
    assert code == 400 and error_of(answer)["error"].startswith(message)
    assert served.post(json.dumps(ALERT).encode())[0] == 200  # and the server goes on


def test_a_wrong_token_is_401_before_the_body_is_read(serve: Callable[..., Served]) -> None:
    started = time.monotonic()
    code, answer = serve(FAST).raw(head(str(20 * 1024 * 1024), token="wrong"))
    assert code == 401 and time.monotonic() - started < 1.0
    assert error_of(answer)["error"] == "missing or wrong bearer token"


# --- time: every request arrives whole within the read deadline ----------------------------------------------------

def still_open_after(socks: list[socket.socket], seconds: float) -> list[socket.socket]:
    """The sockets the server has not closed within `seconds` (all of them waited on together)."""
    deadline, waiting = time.monotonic() + seconds, list(socks)
    while waiting and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(waiting, [], [], left)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                waiting.remove(sock)
    return waiting


def closed_within(sock: socket.socket, seconds: float) -> bool:
    return not still_open_after([sock], seconds)


def test_200_half_sent_requests_are_cut_at_the_read_deadline_and_hold_no_thread(serve: Callable[..., Served]) -> None:
    served = serve(events_serve.Limits(read_seconds=2.0))
    before = threading.active_count()
    stalled = [served.connect() for _ in range(200)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /drift HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
        deadline = time.monotonic() + 1.5
        while threading.active_count() < before + 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() >= before + 150  # a thread each, while they last
        code, answer = served.post(json.dumps(ALERT).encode())  # a real alert is answered meanwhile
        assert (code, answer["status"]) == (200, "submitted")
        left = still_open_after(stalled, 5.0)
    finally:
        for sock in stalled:
            sock.close()
    assert left == [], f"{len(left)} of 200 still open after 5 s"
    deadline = time.monotonic() + 3
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_a_request_trickled_in_byte_by_byte_is_cut_at_the_deadline_though_never_idle(
        serve: Callable[..., Served]) -> None:
    served = serve(FAST)
    with served.connect() as sock:
        sock.sendall(b"POST /drift HTTP/1.1\r\n")
        started, closed = time.monotonic(), None
        for byte in b"X-Slow: " + b"a" * 40:  # one byte each 0.1 s: never idle for the deadline's second
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                closed = time.monotonic() - started
                break
            if closed_within(sock, 0.1):
                closed = time.monotonic() - started
                break
    assert closed is not None and closed < FAST.read_seconds + 0.5, f"closed after {closed}"


def test_a_body_that_never_arrives_whole_is_408(serve: Callable[..., Served]) -> None:
    served = serve(FAST)
    started = time.monotonic()
    code, answer = served.raw(head("100") + b'{"model": ')
    assert code == 408 and FAST.read_seconds - 0.1 < time.monotonic() - started < FAST.read_seconds + 1.0
    assert error_of(answer) == {"error": "the request did not arrive whole within 1s", "rule": "read_seconds"}


def test_connections_past_the_cap_get_503_at_once_and_the_server_recovers(serve: Callable[..., Served]) -> None:
    served = serve(events_serve.Limits(read_seconds=1.0, max_connections=4))
    stalled = [served.connect() for _ in range(4)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /drift HTTP/1.1\r\n")
        time.sleep(0.2)
        with served.connect() as extra:
            code, answer = read_answer(extra)
        assert code == 503 and b"Retry-After: 1\r\n" in answer
        assert error_of(answer) == {"error": "the EventSource already has 4 connections open; retry",
                                    "rule": "max_connections"}
        assert still_open_after(stalled, 3.0) == []
    finally:
        for sock in stalled:
            sock.close()
    assert served.post(json.dumps(ALERT).encode())[0] == 200
