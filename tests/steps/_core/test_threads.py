"""How many threads a step uses: the container's CPU limit (cgroup v2 or v1), the CPU affinity, and the overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps._core import threads
from steps._core.errors import UsageError


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "limit"), [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
], ids=["v2-limit", "v2-unlimited", "v1-limit", "v1-cpuacct", "v1-unlimited", "no-cgroup"])
def test_the_cpu_limit_is_read_from_cgroup_v2_else_v1(tmp_path, files, limit):
    assert threads.cpu_limit(cgroup(tmp_path, files)) == limit


def test_a_pod_limited_to_1500m_gets_two_threads_and_never_more_than_its_cpus(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert threads.available(cgroup(tmp_path / "a", {"cpu.max": "150000 100000"})) == min(2, cpus)
    assert threads.available(cgroup(tmp_path / "b", {"cpu.max": "50000 100000"})) == 1
    assert threads.available(cgroup(tmp_path / "c", {"cpu.max": "6400000 100000"})) == cpus
    assert threads.available(tmp_path / "none") == cpus


def test_mlops_threads_overrides_the_policy_which_overrides_omp_num_threads_and_the_limit(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})  # a limit of one CPU
    assert threads.count(None, {"OMP_WAIT_POLICY": "PASSIVE"}, root) == 1
    assert threads.count(None, {"OMP_NUM_THREADS": "3"}, root) == 3
    assert threads.count(None, {"OMP_NUM_THREADS": "4,2"}, root) == 4  # a count per nesting level
    assert threads.count(2, {"OMP_NUM_THREADS": "3"}, root) == 2
    assert threads.count(2, {"MLOPS_THREADS": "5", "OMP_NUM_THREADS": "3"}, root) == 5
    assert threads.count(None, {"MLOPS_THREADS": " ", "OMP_WAIT_POLICY": "passive"}, root) == 1  # empty: not set


def test_by_default_the_pods_cpus_when_openmp_waits_passively_else_one_thread(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "200000 100000"})
    cpus = min(2, len(os.sched_getaffinity(0)))
    assert threads.count(None, {"OMP_WAIT_POLICY": "PASSIVE"}, root) == cpus
    assert threads.count(None, {}, root) == 1
    assert threads.count(None, {"OMP_WAIT_POLICY": "ACTIVE"}, root) == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_thread_count_that_is_not_a_positive_integer_is_refused_naming_the_variable(value):
    with pytest.raises(UsageError, match=f"MLOPS_THREADS: must be a whole number of threads, at least 1 .*{value}"):
        threads.count(None, {"MLOPS_THREADS": value})


def test_openmp_threads_sleep_at_barriers_unless_the_environment_chooses_or_openmp_has_loaded():
    chosen = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.wait_passively(chosen) is False and chosen == {"OMP_WAIT_POLICY": "ACTIVE"}
    # A fresh interpreter: before scikit-learn loads OpenMP the policy is set; after, too late, so it is not.
    script = ("import os; from steps._core import threads; env = {}; {first}; "
              "print(threads.wait_passively(env), env.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for first, expected in (("pass", "True PASSIVE"), ("import sklearn.ensemble", "False None")):
        out = subprocess.run([sys.executable, "-c", script.replace("{first}", first)], capture_output=True,
                             text=True, env=env, check=True)
        assert out.stdout.split() == expected.split(), first


@pytest.mark.parametrize(("others", "given", "expected"), [
    (0.0, None, threads.SPIN_COUNT),  # nothing else runs: spin briefly, then sleep
    (3.0, None, None),  # a busy machine: sleep at once
    (0.0, "0", "0"),  # the environment chose
], ids=["idle", "busy", "chosen"])
def test_threads_spin_briefly_before_sleeping_only_when_nothing_else_runs(others, given, expected):
    assert _waiting(others, given) == ["PASSIVE", str(expected)]


def test_other_running_processes_are_counted_and_keep_the_threads_passive():
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert threads._others_running() >= 1  # both hogs (or at least one of them) were running or ready to
        assert _waiting(None, None) == ["PASSIVE", "None"]
    finally:
        for process in busy:
            process.kill()
            process.wait()


def _waiting(others: float | None, given: str | None) -> list[str]:
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT as wait_passively leaves them in a fresh interpreter (OpenMP unloaded)."""
    script = ("from steps._core import threads; env = {given}; threads.wait_passively(env, load={others}); "
              "print(env.get('OMP_WAIT_POLICY'), env.get('GOMP_SPINCOUNT'))")
    given_env = {} if given is None else {"GOMP_SPINCOUNT": given}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", script.replace("{given}", repr(given_env)).replace(
        "{others}", repr(others))], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


def test_limit_sets_openmp_threads_within_the_block():
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    with threads.limit(1) as n:
        assert n == 1
        assert _openmp_effective_n_threads() == 1
