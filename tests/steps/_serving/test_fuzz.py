"""What no client input may do to the model server: get a 5xx, or move the error counter that the canary analysis
divides by the requests (model_inference_errors_total). Fuzzed V1 and V2 bodies go through the App on a real event
loop and batcher (fast, so many examples); fuzzed raw request bytes go through the transport of a forked Worker on a
real socket. Both bounded in time: a fixed number of examples, and timeouts on every socket."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps._serving.app import App, Settings
from steps._serving.batcher import Batcher
from steps._serving.exchange import Request
from steps._serving.metrics import Metrics
from tests.support.serving import MODEL, ROW, served

PREDICT, INFER = f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
TENSORS = [{"name": "amount", "datatype": "FP64", "shape": [1], "data": [40.0]},
           {"name": "channel", "datatype": "BYTES", "shape": [1], "data": ["app"]}]
SERVER_ERROR = re.compile(rb"HTTP/1\.[01] 5\d\d ")

# --- JSON a client can send ----------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(2**63, 10**300) | st.floats()
           | st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=20)
# JSON text orjson refuses and the standard library reads (or refuses in its own way), and shapes that are costly to
# describe in an error.
ODD = st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', "NaN", "-Infinity", "1e999", "-0", "1" * 5000, "1" * 4000,
                       '"' + "x" * 100_000 + '"', "[" + ",".join(["1"] * 5000) + "]", '{"a": 1, "a": 2}',
                       '"web\\u0000"', "[[1]]", '[["app"]]', "[1, 2]", "[true]", "[null]"])
NESTED = st.tuples(st.integers(1, 3000), st.sampled_from(["[]", "{}"])).map(
    lambda d: "".join(('{"k":' if d[1] == "{}" else "[") for _ in range(d[0]))
    + "".join(("}" if d[1] == "{}" else "]") for _ in range(d[0])))
TOKENS = VALUES.map(lambda v: json.dumps(v, allow_nan=True)) | ODD | NESTED


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A path and a body: a valid V1 or V2 body with one place replaced by a token, a whole body of any JSON, or
    bytes."""
    v2 = draw(st.booleans())
    path = INFER if v2 else PREDICT
    how = draw(st.sampled_from(["value", "key", "tensor", "whole", "bytes"]))
    if how == "bytes":
        return path, draw(st.binary(max_size=300))
    if how == "whole":
        return path, draw(TOKENS).encode()
    body: Any = {"id": "r", "inputs": json.loads(json.dumps(TENSORS))} if v2 else {"instances": [dict(ROW)]}
    if how == "tensor" and v2:
        tensor = body["inputs"][draw(st.integers(0, len(TENSORS) - 1))]
        tensor[draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]))] = "@@"
    elif how == "value" and v2:
        body[draw(st.sampled_from(["id", "inputs", "parameters", "outputs"]))] = "@@"
    elif how == "value":
        body["instances"][0][draw(st.sampled_from([*ROW, "is_fraud"]))] = "@@"
    else:
        (body if v2 else body["instances"][0])[draw(st.text(max_size=8))] = "@@"
    return path, json.dumps(body).replace('"@@"', draw(TOKENS)).encode()


# --- in-process: the App on a real loop and batcher ----------------------------------------------------------


class Answer:
    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""

    @property
    def answered(self) -> bool:
        return self.status is not None

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        assert self.status is None, "answered twice"
        self.status, self.body = status, body


class Idle:
    receiving = 0

    def batch_finished(self) -> None:
        pass


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[App, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    model = served()
    app = App(model, Metrics(model.name, model.version, model.contract.names, model.contract.bin_labels))
    app.batcher = Batcher(loop, model.predictor.predict, True, app, Idle(), 32, 0.005)
    app.ready = True
    yield app, loop
    loop.close()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=bodies(), content_type=st.sampled_from([b"application/json", None, b"application/json; charset=utf-8"]))
def test_no_body_gets_a_5xx_or_counts_as_a_server_error(app: tuple[App, asyncio.AbstractEventLoop],
                                                        case: tuple[str, bytes], content_type: bytes | None) -> None:
    served_app, loop = app
    path, body = case
    answer = Answer()
    served_app.handle(Request(b"POST", path.encode(), content_type, body, True), answer)
    for _ in range(20):  # the batch runs on the loop's next turn
        if answer.answered:
            break
        loop.run_until_complete(asyncio.sleep(0))
    assert answer.status is not None, "never answered"
    assert answer.status < 500, answer.body[:500]
    if answer.status != 200:
        error = json.loads(answer.body)
        assert isinstance(error["error"], str) and isinstance(error["rule"], str)
        assert len(answer.body) < 2000, "an error message should show a bounded part of what the client sent"
    metrics = served_app.metrics
    assert metrics.value("model_inference_errors_total") == 0 and metrics.value("model_requests_total", code="500") == 0


# --- over a real socket: raw request bytes through the transport --------------------------------------------

LIMITS = Settings()
HEADERS = st.sampled_from([
    ("host", "test"), ("host", ""), ("content-type", "application/json"), ("content-type", "text/csv"),
    ("content-length", "0"), ("content-length", "-1"), ("content-length", "99999999999999999999"),
    ("content-length", "3, 3"), ("transfer-encoding", "chunked"), ("transfer-encoding", "gzip, chunked"),
    ("transfer-encoding", "identity"), ("expect", "100-continue"), ("expect", "nothing"), ("connection", "close"),
    ("connection", "upgrade"), ("upgrade", "websocket"), ("x-big", "v" * (LIMITS.max_header_bytes + 1)),
    ("x-\x00", "1"), ("x", "a\rb"), ("", "empty name"),
]) | st.tuples(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10),
               st.text(max_size=30))


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Bytes a careless or hostile client sends: a request assembled from odd parts, maybe cut short, or noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=500))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS", "BREW", "get", ""]))
    target = draw(st.sampled_from([PREDICT, INFER, "/metrics", "/v2/health/ready", "/v1/models/x:predict", "*",
                                   "/" + "a" * (LIMITS.max_request_line_bytes + 1), "/%zz", "/v2?x=%00", ""])
                  | st.text(max_size=40))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "", "http/1.1"]))
    eol = draw(st.sampled_from(["\r\n", "\n", "\r\n", "\r\n"]))
    headers = draw(st.lists(HEADERS, max_size=8))
    if draw(st.integers(0, 19)) == 0:
        headers += [("x-many", "1")] * (LIMITS.max_headers + 1)
    path, body = draw(bodies())
    if draw(st.booleans()):
        headers.append(("content-length", str(len(body))))
    chunked = any(name.lower() == "transfer-encoding" for name, _ in headers) and draw(st.booleans())
    if chunked:
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    head = f"{method} {target} {version}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in headers) + eol
    data = head.encode("utf-8", "surrogatepass") + body
    cut = draw(st.integers(0, 4))
    return data[:draw(st.integers(0, len(data)))] if cut == 0 else data


def _received(port: int, data: bytes) -> bytes:
    """Send `data` and the end of sending; everything the server answers until it closes."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError):  # refused and closed while we were still sending
            pass
    return got


def _scrape(port: int) -> bytes:
    return _received(port, b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")


def _counter(scraped: bytes, series: str) -> float:
    match = re.search(rb"^" + re.escape(series.encode()) + rb" (\S+)$", scraped, re.MULTILINE)
    assert match, f"{series} not in the exposition"
    return float(match.group(1))


@pytest.fixture(scope="module")
def port(start_worker: Callable[..., AbstractContextManager[Any]]) -> Iterator[int]:
    # A short request timeout: a request cut short is answered 408 quickly instead of holding the test.
    with start_worker(Settings(host="127.0.0.1", port=0, request_timeout_seconds=0.5)) as w:
        yield w.port


LABELS = f'model="{MODEL}",model_version="3"'
ERRORS = f"model_inference_errors_total{{{LABELS}}}"
SERVER_ERRORS = f'model_requests_total{{{LABELS},code="500",protocol="http"}}'


@pytest.mark.integration
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_requests())
def test_no_request_bytes_get_a_5xx_or_count_as_a_server_error(port: int, data: bytes) -> None:
    got = _received(port, data)
    assert not SERVER_ERROR.search(got), got[:500]
    scraped = _scrape(port)
    assert (_counter(scraped, ERRORS), _counter(scraped, SERVER_ERRORS)) == (0, 0)
