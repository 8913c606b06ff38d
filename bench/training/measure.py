"""One measured command: its wall time, the load average before and after, the peak resident memory of its largest
process (os.wait4, as the local runner records it per task) and, polled from /proc every 0.2 s, the peak of its
whole process tree and of each training step's processes (`python -m steps.<name>`), with a memory guard that
stops the tree once it holds more than a set size (so a run that would not fit ends with where it stopped)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.training import profile as _profile

_STEP = re.compile(rb"-m\x00steps\.([a-z_]+)\x00")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    argv: list[str]
    returncode: int
    wall_seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    max_rss_bytes: int  # the largest single process's peak (wait4)
    tree_peak_bytes: int  # the peak of the sum over the process tree (polled)
    step_peak_bytes: dict[str, int] = field(default_factory=dict)  # per `steps.<name>` (polled)
    stopped_by_guard: str = ""  # why the guard stopped it, empty when it did not
    stdout: str = ""
    stderr: str = ""

    def summary(self) -> dict[str, Any]:
        return {"wall_seconds": round(self.wall_seconds, 3), "returncode": self.returncode,
                "load_before": list(self.load_before), "load_after": list(self.load_after),
                "max_rss_bytes": self.max_rss_bytes, "tree_peak_bytes": self.tree_peak_bytes,
                "step_peak_bytes_polled": self.step_peak_bytes, "stopped_by_guard": self.stopped_by_guard}


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, guard_bytes: int | None = None,
        interval: float = 0.2, profile_dir: Path | None = None) -> Measured:
    """Run `argv` in its own process group and measure it (see the module's docstring). With `profile_dir`, each
    step's Python process is sampled by py-spy from when the poller first sees it (`<step>-<pid>.txt`)."""
    load_before = os.getloadavg()
    out, err = cwd / ".measure.stdout", cwd / ".measure.stderr"
    start = time.perf_counter()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    poller = _Poller(proc.pid, guard_bytes, interval, profile_dir)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    poller.stop()
    for sampler in poller.samplers:
        sampler.wait(timeout=60)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group (a guard stop, a stray server)
    return Measured(argv=argv, returncode=proc.returncode, wall_seconds=wall, load_before=load_before,
                    load_after=os.getloadavg(), max_rss_bytes=int(usage.ru_maxrss) * 1024,
                    tree_peak_bytes=poller.tree_peak, step_peak_bytes=dict(poller.step_peak),
                    stopped_by_guard=poller.stopped, stdout=out.read_text(errors="replace"),
                    stderr=err.read_text(errors="replace"))


class _Poller(threading.Thread):
    def __init__(self, root: int, guard_bytes: int | None, interval: float, profile_dir: Path | None):
        super().__init__(daemon=True)
        self.root, self.guard, self.interval, self.profile_dir = root, guard_bytes, interval, profile_dir
        self.samplers: list[subprocess.Popen[bytes]] = []
        self._sampled: set[int] = set()
        self.tree_peak = 0
        self.step_peak: dict[str, int] = {}
        self.stopped = ""
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            processes = _tree(self.root)
            total, steps = 0, dict[str, int]()
            for pid in processes:
                rss = _rss(pid)
                total += rss
                step = _step(pid)
                if step:
                    steps[step] = steps.get(step, 0) + rss
                    if self.profile_dir is not None and pid not in self._sampled and _is_python(pid):
                        self._sampled.add(pid)
                        self.samplers.append(_profile.sample(pid, self.profile_dir / f"{step}-{pid}.txt"))
            self.tree_peak = max(self.tree_peak, total)
            for step, rss in steps.items():
                self.step_peak[step] = max(self.step_peak.get(step, 0), rss)
            if self.guard is not None and total > self.guard and not self.stopped:
                running = ", ".join(sorted(steps)) or "no step"
                self.stopped = (f"memory guard: the process tree held {total / 2**30:.2f} GiB "
                                f"(> {self.guard / 2**30:.2f} GiB) while running {running}")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.root, signal.SIGKILL)


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc's parent ids."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _is_python(pid: int) -> bool:
    try:
        return "python" in os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False


def _step(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            match = _STEP.search(cmdline.read() + b"\x00")
    except OSError:
        return ""
    return match.group(1).decode() if match else ""

