"""The processes `mlops demo` starts, and their clean stop: Ctrl-C (SIGINT) to each, a grace period for every
process of the run to end (their children included), and only then SIGKILL for what is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Every process the demo starts carries this variable (children inherit it): how the stop finds them all.
RUN_ENV = "MLOPS_DEMO_RUN"
STOP_GRACE_SECONDS = 15.0
_POLL_SECONDS = 0.1


@dataclass
class Processes:
    """Every `mlops` command the demo starts, each in its own session (a Ctrl-C reaches the demo only, which then
    stops each command), marked with RUN_ENV=run_id."""

    run_id: str
    cwd: Path
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, args: list[str], log: Path | None = None) -> subprocess.Popen[str]:
        """`mlops <args>`, its output into `log`, else readable from the process' stdout."""
        out: IO[str] | int = open(log, "w", encoding="utf-8") if log else subprocess.PIPE  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows", *args], cwd=self.cwd, env={**self.env, RUN_ENV: self.run_id},
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
            start_new_session=True)
        if not isinstance(out, int):
            out.close()  # the child has its own copy
        self.started.append(process)
        return process

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> tuple[int, int]:
        """SIGINT each command's process group (each cleans up on Ctrl-C: the runner stops its tasks, the
        deployment its servers), and wait until every process of the run has ended, those in other sessions (a
        task of `mlops run`) or left behind by their parent included; after `grace` seconds, SIGKILL what is left.
        Returns (processes stopped, of which killed because they had not ended on SIGINT in time)."""
        leaders = [process for process in self.started if process.poll() is None]
        stopped = len(self._alive())
        for process in reversed(leaders):
            _signal_group(process.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        left = self._alive()
        while left and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            left = self._alive()
        killed = len(left)
        if left:
            for process in leaders:
                if process.poll() is None:
                    _signal_group(process.pid, signal.SIGKILL)
            for pid in left:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            for process in leaders:
                process.wait()
        for process in self.started:
            if process.stdout:
                process.stdout.close()
        return stopped, killed

    def _alive(self) -> set[int]:
        """The commands still running and every other process carrying the run's mark."""
        return {p.pid for p in self.started if p.poll() is None} | set(marked_processes(self.run_id))


def _signal_group(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def marked_processes(run_id: str) -> list[int]:
    """Processes whose environment carries RUN_ENV=run_id (Linux /proc; elsewhere nothing is found)."""
    mark = f"{RUN_ENV}={run_id}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does (a `kill` or a closing terminal leaves nothing behind either)."""
    def raise_interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the clean-up short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
