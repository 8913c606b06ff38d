"""The seam between the HTTP transport (steps._serving.http) and the App (steps._serving.app): the Request the
transport read, and the Responder through which the App answers it."""

from __future__ import annotations

import time
from typing import Protocol

JSON = b"application/json"


class Request:
    """One request, read whole: its method, path (no query, still percent-encoded), content type and body."""

    __slots__ = ("body", "content_encoding", "content_type", "header_length", "keep_alive", "method", "path",
                 "protocol", "started")

    def __init__(self, method: bytes, path: bytes, content_type: bytes | None, body: bytes, keep_alive: bool,
                 header_length: int | None = None, protocol: str = "http", content_encoding: bytes | None = None):
        self.method, self.path, self.content_type, self.body = method, path, content_type, body
        self.keep_alive = keep_alive
        # The binary tensor data extension's Inference-Header-Content-Length: the JSON part's size in `body`
        # (None: a plain JSON request; -1: the header was not a byte count, which the App refuses with 400).
        self.header_length = header_length
        self.protocol = protocol  # "http" or "grpc": the metrics' `protocol` label
        self.content_encoding = content_encoding  # as sent (e.g. b"gzip"); None: the body is as it is
        self.started = time.perf_counter()


class Responder(Protocol):
    """Where one request's answer goes. The transport keeps the answers of a connection in request order."""

    @property
    def answered(self) -> bool: ...

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        """Answer with `status` and `body`; `extra_headers` are complete `name: value\\r\\n` lines; `close`
        closes the connection after this answer; `head_only` leaves the body out (a HEAD request)."""
