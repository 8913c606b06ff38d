"""The local router's HTTP/1.1 transport: a thread per connection, each request read with httptools (llhttp, the
parser of Node.js and of the model servers behind the router), so a body is framed as they frame it: chunked or by
Content-Length, pipelined requests in order, Expect: 100-continue. Framing two parsers could read differently
(Content-Length with Transfer-Encoding, two Content-Lengths, a bad chunk) and what is not HTTP/1.x get 400 (or 505)
and the connection is closed, so no byte after them is read as a request; the Limits answer 413, 431, 408 and 503.
It hands each request to a handler and knows no route (steps._canary.local.router)."""

from __future__ import annotations

import http
import json
import socket
import socketserver
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httptools

_LINGER_SECONDS = 1.0  # after a refusal, what the client still sends is discarded this long: it reads our answer
_RECV_BYTES = 65536


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the router; past a limit it gets a 4xx (or 503) and its connection is closed."""

    max_header_bytes: int = 64 * 1024  # the request line and headers: 431
    # 4x the model server's default: its own 413 still answers between the two, the router only guards its memory.
    max_body_bytes: int = 16 * 1024 * 1024
    max_connections: int = 256  # open at once (a thread each): 503
    request_seconds: float = 30.0  # from a request's first byte to its last (the model server's own): 408
    idle_seconds: float = 75.0  # a keep-alive connection between requests (the model server's own): closed
    send_seconds: float = 30.0  # an answer the client does not read: closed


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as sent: /path?query, or the absolute form
    headers: list[tuple[str, str]]  # names in lower case, in the order sent
    body: bytes
    keep_alive: bool

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def origin(self) -> str:
        """The target as a server behind the router takes it: path and query."""
        parts = urllib.parse.urlsplit(self.target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)  # Content-Length and Connection are the transport's
    close: bool = False
    length: int | None = None  # answering HEAD: the length of the body it stands for (default: len(body))


def json_response(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(body).encode(), [("Content-Type", "application/json"), *(headers or [])])


class Refused(Exception):
    """A request answered with an error, then the connection closed: its bytes cannot be trusted, or are too many."""

    def __init__(self, status: int, message: str, rule: str):
        super().__init__(message)
        self.status, self.rule = status, rule

    def response(self) -> Response:
        return Response(self.status, json.dumps({"error": str(self), "rule": self.rule}).encode(),
                        [("Content-Type", "application/json")], close=True)


def encode(response: Response, head_only: bool = False) -> bytes:
    """The response on the wire: its headers (any holding a line break dropped), its length, and its body."""
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers
              if not any(c in name + value for c in "\r\n\0")]
    length = response.length if head_only and response.length is not None else len(response.body)
    lines.append(f"Content-Length: {length}")
    if response.close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + response.body


class Server(socketserver.ThreadingTCPServer):
    """Serves `handle` on `address`, a thread per connection. Keeps its open connections, so closing it also ends
    the keep-alive ones: a client that holds one (a Prometheus scraping /metrics/<role>) must not go on talking to
    a closed router's handler thread."""

    daemon_threads = True
    allow_reuse_address = True  # a restarted `mlops deploy` gets its port back at once

    def __init__(self, address: tuple[str, int], handle: Callable[[Request], Response],
                 limits: Limits | None = None):
        self.handle, self.limits = handle, limits or Limits()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            full = len(self.connections) >= self.limits.max_connections
            if not full:
                self.connections.add(request)
        if full:
            refusal = Refused(503, f"the router already has {self.limits.max_connections} connections open",
                              "max_connections")
            with suppress(OSError):
                request.settimeout(0.5)  # this is the accepting thread: never wait on one client
                request.sendall(encode(refusal.response()))
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # the handler thread's read ends; it closes the socket


class _Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        _Connection(self.request, self.server.handle, self.server.limits).serve()


class _Connection:
    """One client connection: requests parsed in order and answered one at a time."""

    def __init__(self, sock: socket.socket, handle: Callable[[Request], Response], limits: Limits):
        self.sock, self.handle, self.limits = sock, handle, limits
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[Request | Refused] = deque()  # parsed, not yet answered
        self.broken = False  # refused: no byte after this point is parsed
        self.started: float | None = None  # when the request being read began to arrive
        self.last = time.monotonic()  # the end of the last answer: idle since
        self._reset()

    def _reset(self) -> None:
        """Before each request: what it has sent so far."""
        self.target = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.upgrade = False

    def serve(self) -> None:
        try:
            while (item := self._next()) is not None:
                if isinstance(item, Refused):
                    return self._refuse(item)
                response = self._answer(item)
                close = response.close or not item.keep_alive
                if close and not response.close:
                    response = Response(response.status, response.body, response.headers, True, response.length)
                self._write(encode(response, head_only=item.method == "HEAD"))
                if close:
                    return
                self.last = time.monotonic()
        except OSError:
            return  # the client went away, or the router is closing

    def _answer(self, request: Request) -> Response:
        try:
            return self.handle(request)
        except Exception as err:  # noqa: BLE001 - a bug in a route: a 500 naming it, and the router keeps serving
            traceback.print_exc()
            return Refused(500, f"internal error: {type(err).__name__}: {err}", "internal").response()

    def _next(self) -> Request | Refused | None:
        """The next request (or refusal) in order; None when the client closed or stayed idle too long."""
        while not self.ready:
            if self.broken:
                return None
            now = time.monotonic()
            if self.started is not None:
                left = self.started + self.limits.request_seconds - now
                if left <= 0:
                    return Refused(408, f"the request did not arrive within {self.limits.request_seconds:g} s",
                                   "request_seconds")
            else:
                left = self.last + self.limits.idle_seconds - now
                if left <= 0:
                    return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue
            if not data:
                return None
            self._feed(data)
        return self.ready.popleft()

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__  # what our callback raised
            if isinstance(cause, Refused):
                self._broke(cause)
            elif isinstance(cause, OSError):
                raise cause from None  # writing 100 Continue to a client that left
            else:
                raise
        except httptools.HttpParserUpgrade:
            self._broke(Refused(400, "protocol upgrades (Upgrade, CONNECT) are not supported", "http"))
        except httptools.HttpParserError as err:
            self._broke(Refused(400, f"malformed HTTP request: {err}", "http"))

    def _broke(self, refusal: Refused) -> None:
        if not self.broken:
            self.broken = True
            self.ready.append(refusal)

    def _refuse(self, refusal: Refused) -> None:
        """Answer, then close: our side first, reading (and dropping) what the client still sends for a moment, so
        that it reads the answer instead of a connection reset."""
        self._write(encode(refusal.response()))
        self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_SECONDS
        with suppress(OSError):
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(_RECV_BYTES):
                    return

    def _write(self, data: bytes) -> None:
        self.sock.settimeout(self.limits.send_seconds)
        self.sock.sendall(data)

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.limits.max_header_bytes:
            raise Refused(431, f"the request line and headers are more than the router's limit of "
                               f"{self.limits.max_header_bytes} bytes", "max_header_bytes")

    def _too_large(self) -> Refused:
        return Refused(413, f"the body is more than the router's limit of {self.limits.max_body_bytes} bytes",
                       "max_body_bytes")

    # ---- httptools callbacks (a Refused raised here stops the parser; _feed queues it) ----

    def on_message_begin(self) -> None:
        self.started = time.monotonic()
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        key = name.decode("latin-1").lower()
        if key == "content-length" and value.isdigit() and int(value) > self.limits.max_body_bytes:
            raise self._too_large()  # before the body is sent: a client waiting on 100-continue never sends it
        self.headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise Refused(505, f"HTTP/{version}: the router speaks HTTP/1.1 and 1.0", "http")
        self.upgrade = self.parser.should_upgrade()
        expects = [value.strip().lower() for key, value in self.headers if key == "expect"]
        # Only for the request answered next: a 100 between the answers of pipelined requests would corrupt them.
        if expects == ["100-continue"] and version == "1.1" and not self.upgrade and not self.ready:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes > self.limits.max_body_bytes:
            raise self._too_large()
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.started = None
        if self.upgrade:
            raise Refused(400, "protocol upgrades (Upgrade, CONNECT) are not supported", "http")
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() == "1.1"
        self.ready.append(Request(self.parser.get_method().decode("latin-1"), self.target.decode("latin-1"),
                                  self.headers, b"".join(self.body), keep_alive))
