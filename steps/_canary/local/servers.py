"""The model servers of the local deployment: one `python -m steps.serve` process per version, on a free port of
127.0.0.1, started, health-checked and stopped (several at once, in parallel)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

from steps._core.errors import StepError

READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0  # after SIGTERM: the server drains, then it is killed
ROLE_ENV = "MLOPS_DEPLOY_ROLE"  # the role a server was started in (stable | canary): its process says what it is
_POLL_SECONDS = 0.1


class DeployError(StepError):
    """The local deployment refused a change (no stable yet, a weight out of range, a bad control body)."""

    exit_code = 2


class Unhealthy(DeployError):
    """A version's server exited or never became ready: a verdict on the version, not on the deployment."""


class Unauthorized(DeployError):
    """A local deployment answered, but refused the control token given (or found none): 401."""


class ServerRecord(TypedDict):
    """A server in the control endpoint's status."""

    version: int
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One `python -m steps.serve` for one version, on a free port of 127.0.0.1. Its environment names the role
    it was started in (MLOPS_DEPLOY_ROLE) and its version (MODEL_VERSION)."""

    def __init__(self, model: str, version: int, registry: str, role: str):
        self.model, self.version, self.role = model, version, role
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"mlops-deploy-{model}-v{version}-", suffix=".log",  # noqa: SIM115
                                               delete=False)
        command = [sys.executable, "-m", "steps.serve", "--model", f"{model}@{version}", "--registry", registry,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "MODEL_VERSION": str(version), ROLE_ENV: role})
        self._terminated = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS, stop: threading.Event | None = None) -> None:
        """Until /v1/health/ready answers 200. Raises Unhealthy when the server exits or is not ready within
        `timeout` (then it is stopped), DeployError as soon as `stop` is set (the deployment is closing)."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unhealthy(f"{self.model} v{self.version} ({self.role}) exited with code "
                                f"{self.process.returncode} before it was ready: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if stop.wait(_POLL_SECONDS):
                self.stop()
                raise DeployError(f"{self.model} v{self.version} ({self.role}): the local deployment is shutting down")
        self.stop()
        raise Unhealthy(f"{self.model} v{self.version} ({self.role}) not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-600:].strip()
        except OSError:
            return "(no log)"

    def terminate(self) -> None:
        """SIGTERM (once): the server stops accepting, answers what it has read, and exits."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; its log file is removed."""
        self.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def describe(self) -> ServerRecord:
        return {"version": self.version, "url": self.url, "pid": self.process.pid}


def stop_all(servers: Iterable[ServerProcess | None], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop servers together: every one gets SIGTERM first and they share one grace period, so their drains
    overlap instead of adding up."""
    running = [server for server in servers if server is not None]
    for server in running:
        server.terminate()
    deadline = time.monotonic() + grace
    for server in running:
        server.stop(max(0.0, deadline - time.monotonic()))
