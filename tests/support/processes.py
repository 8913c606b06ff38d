"""Real servers as plain processes for the tests: a free port on 127.0.0.1, and Prometheus or the Pushgateway
(Debian's packages, which `.ci/run` installs) started and stopped around a block."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Tests that need one of these skip, saying so, where it is absent.
PROMETHEUS = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
PUSHGATEWAY = Path(shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(binary: Path, args: list[str], folder: Path, port: int | None = None,
            timeout: float = 30) -> Iterator[str]:
    """Prometheus or the Pushgateway as a plain process on 127.0.0.1 (`port`, else a free one), once its
    /-/ready answers; yields its URL and stops it on exit. Skips the test when the binary is not installed."""
    if not binary.is_file():
        pytest.skip(f"{binary.name} is not installed at {binary} (Debian package {binary.name}; CI installs it)")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / f"{binary.name}.log"
    if binary == PUSHGATEWAY and not any(a.startswith("--persistence.file") for a in args):
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: one test's groups would
        # reappear in the next Pushgateway (and a push that disagrees with them in type gets a 400).
        args = [*args, f"--persistence.file={folder / 'pushgateway.data'}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), *args, f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"{binary.name} exited with {process.returncode}: "
                                         f"{log_path.read_text(errors='replace')[-2000:]}")
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                    break
                except OSError as err:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{binary.name} at {url} not ready after {timeout:.0f}s: {err}") from err
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@contextmanager
def prometheus(config: Path, folder: Path, port: int | None = None) -> Iterator[str]:
    """A real Prometheus scraping as `config` says, its data in `folder`; yields its URL."""
    with running(PROMETHEUS, [f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}"], folder,
                 port) as url:
        yield url
