"""The model server's transport: a lean HTTP/1.1 server on asyncio (uvloop when installed), one Connection
(steps._serving.connection: httptools' parser, limits, backpressure) per client, timeouts and a draining shutdown.
It hands each request to the App (steps._serving.app) with a Responder (steps._serving.exchange), and knows no
route.

One `Worker` is one process with one event loop and one copy of the model; `steps.serve` starts one or
forks several (steps._serving.supervisor; each with its own SO_REUSEPORT socket). With a gRPC port, the worker
also runs the KServe V2 gRPC service (steps._serving.grpc.service, grpc.aio) on the same loop and App.
Everything here runs on the loop's thread: the compiled predictor is pure Python, so a thread would only add
switching; a scikit-learn model runs in one helper thread instead, so the loop keeps reading requests (and
batching them) while it computes.

Why not uvicorn + an ASGI app: measured on one core with the same 23-feature V2 body, a do-nothing JSON
handler served 4.6k req/s under uvicorn (httptools, uvloop, raw ASGI) and 11.4k req/s as an asyncio
Protocol; per request that is ~130 us of the ~250 us budget of the model itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import time
from typing import Any

from steps._serving import app as _app
from steps._serving.app import App, ServedModel, Settings
from steps._serving.batcher import Batcher
from steps._serving.connection import Connection
from steps._serving.log import log
from steps._serving.metrics import Metrics

STARTUP_FAILED = 2  # a worker that exits with this could not start: the supervisor gives up, never ready


# --- one worker process ---------------------------------------------------------------------------------------


class Worker:
    """One event loop serving on one listening socket (and `grpc_port` when given: the gRPC service, its port
    shared with the other workers when `reuse_port`); SIGTERM drains it: readiness false, (after `drain_seconds`)
    no new connections or calls, every request and call already read is answered, then the loop stops."""

    def __init__(self, model: ServedModel, metrics: Metrics, settings: Settings, sock: socket.socket,
                 index: int = 0, grpc_port: int | None = None, reuse_port: bool = False):
        self.settings, self.sock, self.index = settings, sock, index
        self.grpc_port, self.reuse_port = grpc_port, reuse_port
        self.grpc_server: Any = None  # a grpc.aio.Server (grpc is imported only when it is served)
        self.grpc_stopped: asyncio.Task[None] | None = None
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
        listening: dict[str, Any] = {}
        if self.grpc_port is not None:
            try:
                self.grpc_server, port = loop.run_until_complete(self._start_grpc(self.grpc_port))
            except Exception as err:  # noqa: BLE001 - a port it cannot serve is a setting to fix: never ready
                log("grpc_unusable", "error", worker=self.index, port=self.grpc_port,
                    error=f"{type(err).__name__}: {err}")
                return STARTUP_FAILED
            listening["grpc_address"] = f"{self.settings.host}:{port}"
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain)
        app.ready = True
        log("ready", worker=self.index, model=app.model.name, model_version=app.model.version,
            address=_address(self.sock), **listening, **app.model.description)
        loop.call_later(1.0, self._sweep)
        try:
            loop.run_forever()
        finally:
            if self.grpc_server is not None:  # after the grace: whatever is still running is cancelled
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self.grpc_server.stop(0))
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

    async def _start_grpc(self, port: int) -> tuple[Any, int]:
        from steps._serving.grpc import service  # grpc and its stubs load only in a server that serves gRPC

        return await service.start(self.app, self.settings.host, port, self.reuse_port, self.settings.max_body_bytes)

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
        if self.grpc_server is not None:  # no new calls; the ones running finish within the grace
            self.grpc_stopped = self.loop.create_task(self.grpc_server.stop(self.settings.grace_seconds))
            self.grpc_stopped.add_done_callback(lambda _: self._maybe_stop())
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
        grpc_done = self.grpc_server is None or (self.grpc_stopped is not None and self.grpc_stopped.done())
        if not self.connections and (batcher is None or batcher.idle) and grpc_done:
            self.loop.stop()

    def _sweep(self) -> None:
        """Time out requests that never finish arriving, clients that read none of their answers, and idle
        keep-alive connections."""
        now = time.monotonic()
        settings = self.settings
        for conn in list(self.connections):
            transport = conn.transport
            if transport is None:
                continue
            if conn.write_paused:
                size = transport.get_write_buffer_size()
                if size != conn.stalled_size:  # the client read some: it is slow, not gone
                    conn.stalled_size, conn.stalled_since = size, now
                elif now - conn.stalled_since > settings.send_timeout_seconds:
                    transport.abort()
            elif conn.in_message and not conn.reading_paused:
                if now - conn.started > settings.request_timeout_seconds:
                    conn.reject(408, f"the request did not arrive within {settings.request_timeout_seconds:g} s",
                                "timeout")
            elif not conn.in_message and not conn.pending and not conn.deferred and (
                    now - conn.last_active > settings.keepalive_seconds):
                if conn.closing:  # closed, but its last answer is still unread
                    transport.abort()
                else:
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
