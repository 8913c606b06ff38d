"""workflows/demo/processes.py: the demo's stop waits for every process of its run to end on Ctrl-C, children that
outlive their command and processes in other sessions included, and kills only what is still running after the
grace period; nothing carrying the run's mark is left."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from workflows.demo.processes import RUN_ENV, Processes, marked_processes

# A command that exits at once on SIGINT while its child, in the same process group, takes `linger` seconds to clean
# up (as `mlops events serve` and the `mlops run` it started once did); `ignore` makes the child ignore SIGINT
# altogether. The demo's stop must not count on any command waiting for its children.
COMMAND = textwrap.dedent("""
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", '''
    import signal, sys, time
    def stop(*_):
        time.sleep(float(sys.argv[1]))
        sys.exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[2] == "ignore" else stop)
    print("ready", flush=True)
    while True:
        time.sleep(1)
    ''', sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        sys.exit(0)
""")


def start(processes: Processes, linger: float, mode: str) -> subprocess.Popen[str]:
    """Started as Processes.start starts an `mlops` command: own session, the run's mark, output piped."""
    process = subprocess.Popen([sys.executable, "-c", COMMAND, str(linger), mode],
                               env={**processes.env, RUN_ENV: processes.run_id}, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    processes.started.append(process)
    return process


def test_a_child_that_outlives_its_command_is_waited_for_not_killed(tmp_path: Path) -> None:
    processes = Processes(f"test-{os.getpid()}-wait", tmp_path, dict(os.environ))
    start(processes, 1.5, "linger")
    began = time.monotonic()
    stopped, killed = processes.stop_all(grace=10)
    assert (stopped, killed) == (2, 0)
    assert 1.0 < time.monotonic() - began < 10
    assert marked_processes(processes.run_id) == []


def test_what_ignores_sigint_is_killed_after_the_grace_period_and_counted(tmp_path: Path) -> None:
    processes = Processes(f"test-{os.getpid()}-kill", tmp_path, dict(os.environ))
    start(processes, 0, "ignore")
    began = time.monotonic()
    stopped, killed = processes.stop_all(grace=1)
    assert (stopped, killed) == (2, 1)
    assert time.monotonic() - began < 5
    deadline = time.monotonic() + 5  # SIGKILL is immediate, the kernel's clean-up nearly so
    while marked_processes(processes.run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marked_processes(processes.run_id) == []
