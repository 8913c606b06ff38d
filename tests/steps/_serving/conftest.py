"""Fixtures for the transport's tests: a real Worker (steps._serving.http) forked on a socket of its own, serving the
small pure-Python model of tests.support.serving, with the settings a test module chooses."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace

import pytest

from steps._serving.app import Settings
from steps._serving.http import Worker, listen_socket
from steps._serving.metrics import Metrics
from tests.support.serving import Amount, served


@dataclass(frozen=True)
class Served:
    port: int
    pid: int


class Slow(Amount):
    """The test model in a helper thread (as a scikit-learn model runs), taking `seconds` per batch."""

    kind = "skops"

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        time.sleep(self.seconds)
        return super().predict(rows)


def _work(sock: socket.socket, settings: Settings, slow: float) -> None:
    model = served() if not slow else replace(served(Slow(slow)), inline=False)
    metrics = Metrics(model.name, model.version, model.contract.names, model.contract.bin_labels)
    os._exit(Worker(model, metrics, settings, sock).run())


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/v1/health/ready")
        return conn.getresponse().status == 200
    except OSError:  # not listening yet
        return False
    finally:
        conn.close()


@contextmanager
def _worker(settings: Settings, slow: float = 0.0) -> Iterator[Served]:
    sock = listen_socket(settings.host, 0, reuse_port=False)
    process = multiprocessing.get_context("fork").Process(target=_work, args=(sock, settings, slow), daemon=True)
    process.start()
    port = sock.getsockname()[1]
    sock.close()
    assert process.pid is not None
    try:
        deadline = time.monotonic() + 30
        while not _ready(port):
            if not process.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not get ready (exit code {process.exitcode})")
            time.sleep(0.05)
        yield Served(port, process.pid)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(30)
    assert process.exitcode == 0, "the worker did not drain and exit 0 on SIGTERM"


@pytest.fixture(scope="module")
def start_worker() -> Callable[..., AbstractContextManager[Served]]:
    """`with start_worker(Settings(...)) as w:` a ready Worker on 127.0.0.1:`w.port` (process `w.pid`), stopped
    with SIGTERM on exit; it must exit 0. `start_worker(settings, slow=s)`: the model runs in a helper thread and
    takes `s` seconds per batch."""
    return _worker
