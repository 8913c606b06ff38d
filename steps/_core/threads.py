"""How many threads native code (scikit-learn's OpenMP, BLAS) may use: the pod's CPUs, not the node's cores.

A container limited to 2 CPUs on a 64-core node sees 64 cores; OpenMP starting 64 threads there is throttled
into a crawl. `available` reads the container's CPU limit (cgroup v2 `cpu.max`, else cgroup v1's CFS quota) and
the CPUs the process may run on (`os.sched_getaffinity`), and `count` lets a person override it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path

from steps._core.errors import UsageError

ENV = "MLOPS_THREADS"  # overrides the policy's model.threads and the CPU limit, for one run
CGROUP = Path("/sys/fs/cgroup")


def cpu_limit(root: Path = CGROUP) -> float | None:
    """The container's CPU limit in CPUs (1.5 for a pod with `limits.cpu: 1500m`), None when it has none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2: "max 100000" or "150000 100000"
        return None if quota == "max" else _ratio(quota, period)
    except (OSError, ValueError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct"):  # cgroup v1: a quota of -1 means no limit
        try:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        try:
            return None if int(quota) < 0 else _ratio(quota, period)
        except ValueError:
            return None
    return None


def _ratio(quota: str, period: str) -> float | None:
    q, p = int(quota), int(period)
    return q / p if q > 0 and p > 0 else None


def available(root: Path = CGROUP) -> int:
    """The CPUs this process can use: its CPU affinity, capped by the container's limit (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def count(setting: int | None = None, environ: Mapping[str, str] | None = None, root: Path = CGROUP) -> int:
    """The threads a step uses: $MLOPS_THREADS when set, else `setting` (the policy's model.threads), else
    $OMP_NUM_THREADS when set, else `available()` when OpenMP's threads wait passively (`passive`), else one:
    spinning threads collapse on shared CPUs. A value that is not a positive integer is a UsageError."""
    env = os.environ if environ is None else environ
    for name, text in ((ENV, env.get(ENV)), ("model.threads", None if setting is None else str(setting)),
                       ("OMP_NUM_THREADS", env.get("OMP_NUM_THREADS"))):
        if text is None or not text.strip():
            continue
        try:
            value = int(text.split(",")[0])  # OMP_NUM_THREADS may list a count per nesting level
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"{name}: must be a whole number of threads, at least 1 (got {text!r})")
        return value
    return available(root) if passive(env) else 1


def passive(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OpenMP's idle threads sleep at a barrier (OMP_WAIT_POLICY=PASSIVE, set by `wait_passively` or by
    the environment) rather than spin."""
    env = os.environ if environ is None else environ
    return env.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


# libgomp's spin before a waiting thread sleeps (GOMP_SPINCOUNT: iterations, ~0.1-0.2 ms here), when no other
# process is running. 800k rows, 2 cores, interleaved: at load ~1.3 the fit took 10.3-11.6 s passive, 8.0-8.6 s
# with this spin (8.3-9.0 s spinning libgomp's default 3 ms); with two busy processes beside it 16.4 s passive,
# 24.6 s with it, 40.4 s with the default; with four, 32 s passive, 58 s with it.
SPIN_COUNT = "10000"


def wait_passively(environ: MutableMapping[str, str] | None = None, load: float | None = None) -> bool:
    """Make OpenMP's idle threads sleep at a barrier instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless the
    environment already chooses or OpenMP is already loaded (it reads its environment once, when it loads): call
    it in a step's main(), before scikit-learn is imported. Returns `passive()`.

    Spinning threads collapse on CPUs that other work shares (a node's neighbours, a busy laptop or CI runner):
    at 1M rows and load 8 on 2 cores, two spinning threads took 262 s to fit what one thread fits in 45 s, and
    two passive ones 51.5 s. Sleeping at once costs a quiet machine a quarter of the fit, though (HistGradient-
    Boosting meets a barrier at every split): when no other process is running (`_idle_core`; `load` stands for
    the count of others), the threads first spin briefly (GOMP_SPINCOUNT=SPIN_COUNT, scikit-learn's libgomp)
    unless GOMP_SPINCOUNT is set. The model is the same either way; only the waiting differs.
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in env and not _openmp_loaded():
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        if "GOMP_SPINCOUNT" not in env and _idle_core(load):
            env["GOMP_SPINCOUNT"] = SPIN_COUNT
    return passive(env)


def _idle_core(load: float | None) -> bool:
    """Whether the machine leaves this process's threads its CPUs: no other process runs or waits to (`load`, by
    default a few looks at /proc/stat's procs_running less this process; the 1-minute load average less one where
    /proc cannot be read). Right now, not the last minute's: a previous step's load is gone when this one starts."""
    if load is None:
        load = _others_running()
    return load < 0.5


def _others_running(looks: int = 5, interval: float = 0.01) -> float:
    counts = []
    for look in range(looks):
        if look:
            time.sleep(interval)
        try:
            stat = Path("/proc/stat").read_text()
            running = next(int(line.split()[1]) for line in stat.splitlines() if line.startswith("procs_running "))
        except (OSError, StopIteration, IndexError, ValueError):
            try:
                return max(0.0, os.getloadavg()[0] - 1)
            except OSError:
                return math.inf
        counts.append(running - 1)  # this process is running: it is reading the file
    return sum(counts) / len(counts)


def _openmp_loaded() -> bool:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        import sys

        return "sklearn" in sys.modules  # scikit-learn loads its OpenMP runtime when it is imported
    return any(name in maps for name in ("libgomp", "libomp", "libiomp"))


@contextmanager
def limit(threads: int) -> Iterator[int]:
    """Run native code (OpenMP and BLAS thread pools) on `threads` threads within the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield threads
