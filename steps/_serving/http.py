"""The model server's transport: a lean HTTP/1.1 server on asyncio (uvloop when installed) with httptools'
parser (keep-alive, pipelining, Expect: 100-continue, body limits, timeouts) and a draining shutdown. It hands
each request to the App (steps._serving.app) with a Responder (steps._serving.exchange), and knows no route.

One `Worker` is one process with one event loop and one copy of the model; `steps.serve` starts one or
forks several (steps._serving.supervisor; each with its own SO_REUSEPORT socket). Everything here runs on the
loop's thread: the compiled predictor is pure Python, so a thread would only add switching; a scikit-learn
model runs in one helper thread instead, so the loop keeps reading requests (and batching them) while it
computes.

Why not uvicorn + an ASGI app: measured on one core with the same 23-feature V2 body, a do-nothing JSON
handler served 4.6k req/s under uvicorn (httptools, uvloop, raw ASGI) and 11.4k req/s as an asyncio
Protocol; per request that is ~130 us of the ~250 us budget of the model itself.
"""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import time
from collections import deque
from typing import Any, cast

import httptools

from steps._serving import app as _app
from steps._serving.app import App, ServedModel, Settings
from steps._serving.batcher import Batcher
from steps._serving.codec import dumps
from steps._serving.exchange import JSON, Request
from steps._serving.log import log
from steps._serving.metrics import Metrics

_REASONS = {100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 413: b"Content Too Large", 415: b"Unsupported Media Type",
            422: b"Unprocessable Content", 500: b"Internal Server Error", 503: b"Service Unavailable"}
_PIPELINE_LIMIT = 32  # queued responses per connection before it stops reading
_LINGER_SECONDS = 2.0
STARTUP_FAILED = 2  # a worker that exits with this could not start: the supervisor gives up, never ready


def _head(status: int, content_type: bytes, length: int, close: bool, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n"
            % (status, _REASONS.get(status, b"Unknown"), content_type, length, extra,
               b"connection: close\r\n" if close else b""))


class _Slot:
    """One request's place in its connection's response order: the Responder the App answers through."""

    __slots__ = ("close", "conn", "data")

    def __init__(self, conn: Connection, close: bool = False):
        self.conn = conn
        self.data: bytes | None = None  # the whole response, once answered
        self.close = close

    @property
    def answered(self) -> bool:
        return self.data is not None

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        self.data = _head(status, content_type, len(body), close, extra_headers) + (b"" if head_only else body)
        self.close = close
        self.conn.flush()


# --- HTTP/1.1 connections -------------------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One client connection: parses requests (keep-alive, pipelining, Expect: 100-continue) and writes the
    responses in request order."""

    def __init__(self, worker: Worker):
        self.worker, self.app = worker, worker.app
        self.max_body = worker.settings.max_body_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Slot] = deque()
        self.in_message = False
        self.closing = False
        self.paused = False
        self.dead = False  # answered with an error and closing: its remaining bytes are not read
        self.last_active = time.monotonic()
        self.started = self.last_active
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.content_type: bytes | None = None
        self.expect_continue = False
        self.body: list[bytes] = []
        self.body_size = 0

    # ---- asyncio callbacks -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_server's protocols get a stream transport; asyncio's signature names only its base class.
        self.transport = cast(asyncio.Transport, transport)
        self.worker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_message:
            self.in_message = False
            self.worker.receiving -= 1
        self.transport = None
        self.closing = True
        self.worker.connections.discard(self)
        self.worker.connection_closed()

    def data_received(self, data: bytes) -> None:
        if self.dead or self.closing:
            return  # a refused body still arriving (lingering close), or bytes after our last answer
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(400, "protocol upgrades are not supported", "http")
        except httptools.HttpParserError as err:
            if not self.dead:
                self.reject(400, f"malformed HTTP request: {err}", "http")

    # ---- httptools callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.dead:
            return
        self.in_message = True
        self.worker.receiving += 1
        self.started = time.monotonic()
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name == b"content-length":
            if value.strip().isdigit() and int(value) > self.max_body:
                self._too_large(int(value))
        elif name == b"expect" and value.strip().lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.expect_continue and not self.dead and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self.dead:
            return
        self.body_size += len(chunk)
        if self.body_size > self.max_body:
            self._too_large(self.body_size)
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.dead:
            return
        self.in_message = False
        self.worker.receiving -= 1
        self.worker.received += 1
        slot = _Slot(self)
        self.pending.append(slot)
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        req = Request(self.parser.get_method(), self.url.split(b"?", 1)[0], self.content_type, body,
                      self.parser.should_keep_alive())
        self.app.handle(req, slot)
        if len(self.pending) > _PIPELINE_LIMIT and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # ---- writing -----------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the answers that are ready, in request order (a slot answered early waits for those before)."""
        pending = self.pending
        while pending:
            slot = pending[0]
            data = slot.data
            if data is None:
                break
            pending.popleft()
            if self.transport is None:
                continue
            self.transport.write(data)
            self.worker.responded += 1
            if slot.close:
                self.close(linger=self.dead)
                return
        if self.paused and len(pending) <= _PIPELINE_LIMIT // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if self.worker.stopping and not pending:
            self.close_if_idle()

    def reject(self, status: int, message: str, rule: str) -> None:
        """Answer now and close: the rest of this connection's bytes cannot be trusted or are unwanted."""
        if self.in_message:
            self.in_message = False
            self.worker.receiving -= 1
        self.dead = True
        slot = _Slot(self, close=True)
        self.pending.append(slot)
        slot.respond(status, dumps({"error": message, "rule": rule}), JSON, True)

    def _too_large(self, size: int) -> None:
        if not self.dead:
            self.app.rejected(self.url.split(b"?", 1)[0], 413)
            self.reject(413, f"the body is {size} bytes, more than the server's limit of {self.max_body}",
                        "max_body_bytes")

    def close_if_idle(self) -> None:
        if not self.in_message and not self.pending:
            self.close()

    def close(self, linger: bool = False) -> None:
        """Close after the buffered writes. `linger`: the client may still be sending a body we refused; close
        our side for writing only and discard what still arrives for a moment, so that it gets to read our
        answer instead of a connection reset."""
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            transport.write_eof()
            self.worker.loop.call_later(_LINGER_SECONDS, transport.close)
        else:
            transport.close()


# --- one worker process ---------------------------------------------------------------------------------------


class Worker:
    """One event loop serving on one listening socket; SIGTERM drains it: readiness false, (after
    `drain_seconds`) no new connections, every request already read is answered, then the loop stops."""

    def __init__(self, model: ServedModel, metrics: Metrics, settings: Settings, sock: socket.socket,
                 index: int = 0):
        self.settings, self.sock, self.index = settings, sock, index
        self.app = App(model, metrics)
        self.connections: set[Connection] = set()
        self.receiving = 0  # connections in the middle of a request
        self.received = 0
        self.responded = 0
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop = _new_loop()
        self.server: asyncio.AbstractServer | None = None
        self.deadline = math.inf

    def run(self) -> int:
        loop = self.loop
        asyncio.set_event_loop(loop)
        app, settings = self.app, self.settings
        batcher = app.batcher = Batcher(loop, app.model.predictor.predict, app.model.inline, app, self,
                                        settings.max_batch_size, settings.max_batch_latency_ms / 1000)
        try:
            app.inference_log = _app.open_inference_log(app.model, settings)
        except Exception as err:  # noqa: BLE001 - a log that cannot be written is a setting to fix: never ready
            log("inference_log_unusable", "error", worker=self.index, location=settings.inference_log,
                error=f"{type(err).__name__}: {err}")
            return STARTUP_FAILED
        try:
            _app.warm_up(app.model)  # through the module: tests/support/faults patches it
        except Exception as err:  # noqa: BLE001 - whatever breaks the first prediction keeps the worker unready
            log("warm_up_failed", "error", worker=self.index, error=f"{type(err).__name__}: {err}")
            return STARTUP_FAILED
        self.server = loop.run_until_complete(
            loop.create_server(lambda: Connection(self), sock=self.sock, backlog=2048))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain)
        app.ready = True
        log("ready", worker=self.index, model=app.model.name, model_version=app.model.version,
            address=_address(self.sock), **app.model.description)
        loop.call_later(1.0, self._sweep)
        try:
            loop.run_forever()
        finally:
            batcher.close()
            loop.close()
        extra: dict[str, Any] = {}
        if app.inference_log is not None:
            app.inference_log.close(timeout=settings.grace_seconds)
            extra = {"inference_log_rows": app.inference_log.written_rows,
                     "inference_log_dropped_rows": app.inference_log.dropped_rows}
        log("stopped", worker=self.index, requests=self.received, responses=self.responded,
            open_connections=len(self.connections), **extra)
        return 0

    def drain(self) -> None:
        if self.app.draining:
            return
        self.app.draining = True
        log("draining", worker=self.index, drain_seconds=self.settings.drain_seconds,
            open_connections=len(self.connections))
        self.loop.call_later(self.settings.drain_seconds, self._stop_accepting)

    def _stop_accepting(self) -> None:
        self.stopping = True
        self.deadline = time.monotonic() + self.settings.grace_seconds
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        self._maybe_stop()

    def connection_closed(self) -> None:
        if self.stopping:
            self._maybe_stop()

    def batch_finished(self) -> None:
        if self.stopping:
            self._maybe_stop()

    def _maybe_stop(self) -> None:
        batcher = self.app.batcher
        if not self.connections and (batcher is None or batcher.idle):
            self.loop.stop()

    def _sweep(self) -> None:
        """Close idle keep-alive connections and time out requests that never finish arriving."""
        now = time.monotonic()
        settings = self.settings
        for conn in list(self.connections):
            if conn.in_message and now - conn.started > settings.request_timeout_seconds:
                conn.reject(408, f"the request did not arrive within {settings.request_timeout_seconds:g} s",
                            "timeout")
            elif not conn.in_message and not conn.pending and now - conn.last_active > settings.keepalive_seconds:
                conn.close()
        inference_log = self.app.inference_log
        if inference_log is not None and inference_log.rows and now - inference_log.started > (
                settings.inference_log_flush_seconds):
            inference_log.flush()
        if self.stopping and now > self.deadline:
            log("grace_expired", "warning", worker=self.index, open_connections=len(self.connections))
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            self.loop.stop()
            return
        self.loop.call_later(0.05 if self.stopping else 1.0, self._sweep)


def listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound TCP socket (IPv6 when `host` is one). SO_REUSEPORT lets each worker bind its own socket to the
    same port: the kernel spreads connections across them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio's own loop still works
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
