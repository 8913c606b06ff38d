"""Traffic for a local deployment: rows of a dataset replayed through its router as predict requests, on threads,
answers counted by status. The rollout step replays it for a deployment nobody else uses; `mlops demo` for the
whole loop."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from contextlib import suppress
from typing import Any, Self

from steps._core.errors import UsageError
from steps._core.policy import Policy

_RETRY_SECONDS = 0.05  # after a connection error, before the next request: the router may be restarting


def replay_rows(policy: Policy, dataset: str | None, limit: int = 2000) -> list[dict[str, Any]]:
    """Rows to replay, the contract's features only: from `dataset`, else the policy's own data.source."""
    from steps._core.data import read_dataset

    source = dataset or policy.data.source
    frame = read_dataset(source).frame
    names = [f for f in policy.data.feature_names if f in frame.columns]
    if not names:
        where = "--dataset" if dataset else "data.source"
        raise UsageError(f"{where} {source}: has none of {policy.model_name}'s features")
    rows: list[dict[str, Any]] = json.loads(frame[names].head(limit).to_json(orient="records"))
    return rows


class Traffic:
    """`rows` in a loop, `batch` rows per request, over `connections` keep-alive connections to the router at
    `url`, at most `rate` requests per second in all (None: each connection as fast as the answers come)."""

    def __init__(self, url: str, model: str, rows: list[dict[str, Any]], *, rate: float | None = None,
                 batch: int = 1, connections: int = 1):
        if not rows:
            raise UsageError("traffic: no rows to replay")
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = f"/v1/models/{model}:predict"
        self.rows, self.rate, self.batch = rows, rate, batch
        self.codes: dict[int, int] = {}
        self.failures = 0  # connection errors: the router was not answering
        self.rows_ok = 0
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self._open: set[http.client.HTTPConnection] = set()
        self.threads = [threading.Thread(target=self._run, args=(n, connections), name=f"traffic-{n}", daemon=True)
                        for n in range(connections)]

    def start(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending; an answer still awaited after `timeout` seconds has its connection ended."""
        self.halt.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            stuck = [conn.sock for conn in self._open if conn.sock is not None]
        for sock in stuck:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the waiting thread's read ends now
        for thread in self.threads:
            if thread.is_alive():
                thread.join(1.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counts(self) -> tuple[int, int, int]:
        """(answered 2xx, answered otherwise or not at all, rows scored)."""
        with self.lock:
            ok = sum(n for code, n in self.codes.items() if 200 <= code < 300)
            return ok, sum(self.codes.values()) - ok + self.failures, self.rows_ok

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        with self.lock:
            self._open.add(conn)
        return conn

    def _close(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self.lock:
            self._open.discard(conn)

    def _run(self, n: int, connections: int) -> None:
        conn = self._connect()
        # Each connection starts elsewhere in the rows, and sends its share of the rate, evenly spaced.
        i, next_at = n * 997, time.monotonic()
        period = connections / self.rate if self.rate else 0.0
        try:
            while not self.halt.is_set():
                chunk = [self.rows[(i + k) % len(self.rows)] for k in range(self.batch)]
                i += self.batch
                try:
                    conn.request("POST", self.path, body=json.dumps({"instances": chunk}),
                                 headers={"Content-Type": "application/json"})
                    answer = conn.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException):
                    if self.halt.is_set():
                        return  # ended by stop(): not the router's failure
                    with self.lock:
                        self.failures += 1
                    self._close(conn)
                    conn = self._connect()
                    self.halt.wait(_RETRY_SECONDS)
                    continue
                with self.lock:
                    self.codes[answer.status] = self.codes.get(answer.status, 0) + 1
                    if answer.status == 200:
                        self.rows_ok += len(chunk)
                if period:
                    next_at = max(next_at + period, time.monotonic() - 1.0)
                    self.halt.wait(max(0.0, next_at - time.monotonic()))
        finally:
            self._close(conn)
