"""One client connection of the model server: HTTP/1.1 read with httptools' parser (keep-alive, pipelining,
Expect: 100-continue), answered in request order, within limits a careless or hostile client cannot get around.

Limits (steps._serving.app.Settings): the request target (414), each header line, all header lines, the number of
headers (431), the body (413); a request must arrive within the request timeout (408). A refused request is
answered and the connection closed. An HTTP/1.1 request needs exactly one Host (400); an expectation other than
100-continue gets 417. Backpressure: while the client does not read its answers (the transport's buffer is over
its high-water mark) or has many requests unanswered, the connection stops reading; a client that reads nothing
for the send timeout is disconnected (steps._serving.http's sweep).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from steps._serving.codec import dumps
from steps._serving.exchange import JSON, Request

if TYPE_CHECKING:
    from steps._serving.http import Worker

_REASONS = {100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 413: b"Content Too Large", 414: b"URI Too Long",
            415: b"Unsupported Media Type", 417: b"Expectation Failed", 422: b"Unprocessable Content",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable"}
PIPELINE_LIMIT = 32  # unanswered requests per connection before it stops reading
HIGH_WATER = 64 * 1024  # bytes of answers waiting for the client before it stops reading
_LINGER_SECONDS = 2.0


def _head(status: int, content_type: bytes, length: int, close: bool, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n"
            % (status, _REASONS.get(status, b"Unknown"), content_type, length, extra,
               b"connection: close\r\n" if close else b""))


class _Refused(Exception):
    """Raised in a parser callback once the request is answered with an error: httptools stops parsing."""


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


class Connection(asyncio.Protocol):
    """One client connection: parses requests and writes the answers in request order."""

    def __init__(self, worker: Worker):
        self.worker, self.app = worker, worker.app
        settings = worker.settings
        self.max_body = settings.max_body_bytes
        self.max_target = settings.max_request_line_bytes
        self.max_header = settings.max_header_bytes
        self.max_block = settings.max_header_block_bytes
        self.max_headers = settings.max_headers
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Slot] = deque()  # handed to the App, in request order
        # Read while the client was not reading its answers: handled once it does (a refused request's answer,
        # already made, keeps its place among them).
        self.deferred: deque[Request | _Slot] = deque()
        self.in_message = False
        self.headers_done = False
        self.messages = 0
        self.closing = False
        self.reading_paused = False
        self.write_paused = False
        self.stalled_since = 0.0  # while write_paused: since when the client has read nothing (the send timeout)
        self.stalled_size = 0
        self.peer_closed = False  # the client will send nothing more
        self.flushing = False
        self.dead = False  # answered with an error and closing: its remaining bytes are not read
        self.last_active = time.monotonic()
        self.started = self.last_active
        self._reset()

    def _reset(self) -> None:
        self.url: list[bytes] = []  # the target's pieces as they arrive: joined once (a `+=` would be quadratic)
        self.url_size = 0
        self.content_type: bytes | None = None
        self.expect: bytes | None = None
        self.header_length: int | None = None
        self.content_encoding: bytes | None = None
        self.hosts = 0
        self.headers = 0
        self.header_bytes = 0
        self.overhead = 0  # bytes of whole reads that were neither target nor body: see data_received
        self.body: list[bytes] = []
        self.body_size = 0

    def path(self) -> bytes:
        """The request target without its query (still percent-encoded)."""
        return b"".join(self.url).split(b"?", 1)[0]

    # ---- asyncio callbacks -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_server's protocols get a stream transport; asyncio's signature names only its base class.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)
        self.worker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_message:
            self.in_message = False
            self.worker.receiving -= 1
        self.transport = None
        self.closing = True
        self.deferred.clear()
        self.worker.connections.discard(self)
        self.worker.connection_closed()

    def data_received(self, data: bytes) -> None:
        if self.dead or self.closing:
            return  # a refused body still arriving (lingering close), or bytes after our last answer
        self.last_active = time.monotonic()
        within, message, body_size = self.in_message, self.messages, self.body_size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(400, "protocol upgrades are not supported", "http")
            return
        except httptools.HttpParserError as err:
            if not self.dead:  # else a callback refused the request and stopped the parser
                self.reject(400, f"malformed HTTP request: {err}", "http")
            return
        if within and self.in_message and self.messages == message:
            # A whole read inside one request: what is not body is header lines, chunk framing or trailers, which
            # httptools keeps (copying it on every read) until a line ends and our callbacks see it. Bound them
            # here, read by read.
            self.overhead += len(data) - (self.body_size - body_size)
            limit = self.max_block + (self.body_size if self.headers_done else self.max_target)
            if self.overhead > limit:
                self.reject(431, f"the request's head (or its chunk framing and trailers) passed {limit} bytes "
                            "before ending", "max_header_block_bytes", counted=True)

    def eof_received(self) -> bool | None:
        """The client sent all it will: answer the requests that arrived whole, then close."""
        self.peer_closed = True
        if self.in_message:  # cut short: it can never be answered
            self.in_message = False
            self.worker.receiving -= 1
            self.dead = True
        if not self.pending and not self.deferred:
            return None  # asyncio closes the transport
        return True  # flush closes it after the last answer

    def pause_writing(self) -> None:
        self.write_paused = True
        self.stalled_since = time.monotonic()
        self.stalled_size = self.transport.get_write_buffer_size() if self.transport is not None else 0
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.flush()

    # ---- httptools callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.dead:
            return
        self.in_message = True
        self.headers_done = False
        self.messages += 1
        self.worker.receiving += 1
        self.started = time.monotonic()
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url.append(url)
        self.url_size += len(url)
        if self.url_size > self.max_target:
            self.reject(414, f"the request target is more than the server's limit of {self.max_target} bytes",
                        "max_request_line_bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1
        size = len(name) + len(value) + 4  # as sent: `name: value\r\n`
        self.header_bytes += size
        if size > self.max_header or self.headers > self.max_headers or self.header_bytes > self.max_block:
            self._too_many_headers(name, size)
        if self.headers_done:
            return  # a chunked body's trailer: counted, never obeyed
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name == b"content-length":
            if value.strip().isdigit() and int(value) > self.max_body:
                self._too_large(int(value))
        elif name == b"host":
            self.hosts += 1
        elif name == b"expect":
            self.expect = value.strip().lower()
        elif name == b"content-encoding":
            self.content_encoding = value
        elif name == b"inference-header-content-length":
            # The binary tensor data extension's JSON part; not a byte count (or said twice, differently): -1,
            # which the App refuses naming the header.
            length = int(value) if value.strip().isdigit() and len(value) <= 18 else -1
            self.header_length = length if self.header_length in (None, length) else -1

    def on_headers_complete(self) -> None:
        if self.dead:
            return
        self.headers_done = True
        if self.hosts != 1 and (self.hosts > 1 or self.parser.get_http_version() != "1.0"):
            self.reject(400, f"an HTTP/1.1 request needs exactly one Host header; it has {self.hosts}", "host",
                        counted=True)
            raise _Refused
        expect = self.expect
        if expect is None:
            return
        if expect != b"100-continue":
            shown = expect.decode("latin-1")[:60]
            self.reject(417, f"Expect: {shown}: this server meets no expectation but 100-continue", "expect",
                        counted=True)
            raise _Refused
        # An interim answer must not overtake the answers to the requests before it; nor is one sent in HTTP/1.0.
        if (self.transport is not None and not self.pending and not self.deferred
                and self.parser.get_http_version() != "1.0"):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self.dead:
            return
        self.body_size += len(chunk)
        if self.body_size > self.max_body:
            self._too_large(self.body_size)
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.dead:
            return
        self.in_message = False
        self.headers_done = False
        self.worker.receiving -= 1
        self.worker.received += 1
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        req = Request(self.parser.get_method(), self.path(), self.content_type, body,
                      self.parser.should_keep_alive(), self.header_length, content_encoding=self.content_encoding)
        if self.write_paused or self.deferred or len(self.pending) >= PIPELINE_LIMIT:
            self.deferred.append(req)
            self._pause_reading()
            return
        slot = _Slot(self)
        self.pending.append(slot)
        self.app.handle(req, slot)

    # ---- refusing ----------------------------------------------------------------------------------------

    def reject(self, status: int, message: str, rule: str, field: str | None = None, counted: bool = False) -> None:
        """Answer now and close: the rest of this connection's bytes cannot be trusted or are unwanted.
        `counted`: the request's target is known, and a prediction counts in the metrics."""
        if self.in_message:
            self.in_message = False
            self.worker.receiving -= 1
        self.dead = True
        if counted:
            self.app.rejected(self.path(), status)
        slot = _Slot(self, close=True)
        (self.deferred if self.deferred else self.pending).append(slot)
        body: dict[str, str] = {"error": message, "rule": rule}
        if field is not None:
            body["field"] = field
        slot.respond(status, dumps(body), JSON, True)

    def _too_large(self, size: int) -> None:
        self.reject(413, f"the body is {size} bytes, more than the server's limit of {self.max_body}",
                    "max_body_bytes", counted=True)
        raise _Refused

    def _too_many_headers(self, name: bytes, size: int) -> None:
        shown = name.decode("latin-1")[:60]
        if size > self.max_header:
            self.reject(431, f"header {shown}: {size} bytes, more than the server's limit of {self.max_header} "
                        "per header line", "max_header_bytes", shown, counted=True)
        elif self.headers > self.max_headers:
            self.reject(431, f"more than the server's limit of {self.max_headers} header lines", "max_headers",
                        counted=True)
        else:
            self.reject(431, f"the header lines are more than the server's limit of {self.max_block} bytes",
                        "max_header_block_bytes", counted=True)
        raise _Refused

    # ---- writing -----------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the answers that are ready, in request order (a slot answered early waits for those before), and
        hand on the deferred requests while the client keeps up. Re-entered from an answer given while it runs,
        it returns: the running call writes that answer too."""
        if self.flushing:
            return
        self.flushing = True
        try:
            pending, deferred = self.pending, self.deferred
            while True:
                while pending and not self.write_paused:
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
                if not deferred or self.write_paused or len(pending) >= PIPELINE_LIMIT or self.transport is None:
                    break
                item = deferred.popleft()
                if isinstance(item, _Slot):
                    pending.append(item)
                else:
                    slot = _Slot(self)
                    pending.append(slot)
                    self.app.handle(item, slot)
        finally:
            self.flushing = False
        if self.reading_paused and not self.write_paused and not deferred and len(pending) <= PIPELINE_LIMIT // 2:
            self._resume_reading()
        if (self.peer_closed or self.worker.stopping) and not pending and not deferred:
            self.close_if_idle()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closing:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        self.reading_paused = False
        if self.transport is not None and not self.closing:
            self.started = time.monotonic()  # a request we stopped reading was not late
            self.transport.resume_reading()

    def close_if_idle(self) -> None:
        if not self.in_message and not self.pending and not self.deferred:
            self.close()

    def close(self, linger: bool = False) -> None:
        """Close after the buffered writes. `linger`: the client may still be sending a body we refused; close
        our side for writing only and discard what still arrives for a moment, so that it gets to read our
        answer instead of a connection reset."""
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof() and not self.peer_closed:
            transport.write_eof()
            self.worker.loop.call_later(_LINGER_SECONDS, transport.close)
        else:
            transport.close()
