"""One container's view of the machine: the host's files, except the container's own paths (its /tmp, the paths of
its inputs and outputs, its working directory when the host has none) which live in a folder of the run, and its
volume mounts, bound to the run's volume folders; and the process that runs in it, in its own process group, with what
it used (peak resident memory, CPU time: os.wait4).

The view is made with bubblewrap (`bwrap`, Debian's `bubblewrap`). The container's root is a fresh folder of the
run (`root`); every entry of the host's `/` is bound into it, except the directories on the way to a container
path, which are folders of `root` with their host entries bound in one by one. So a command writes its own
`/tmp/out.txt` (however it names it: `sh -c "echo hello > /tmp/out.txt"`), creating `/output/x` creates it in
`root/output/x`, and the executor reads both from `root` once the command exited. What is not a container path
is the host's, as `bwrap --bind / /` would show it. Without bwrap, `View.command` raises `SandboxUnavailable`:
the executor runs directly only the pods whose result cannot differ (no container path declared, /tmp named
nowhere). Also here: the command line as the kubelet hands it over (`expand`: `$(VAR)`), and which Python a
`python` command is.

bwrap runs with --die-with-parent: its processes end with the thread that started them, so one run's pods are
started from the thread that runs its controller loop.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

_EXPANSION = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
# Host trees a container never sees as they are: its own /tmp, a fresh /dev and /proc.
_NOT_BOUND = ("/tmp", "/dev", "/proc")


class SandboxUnavailable(Exception):
    """bubblewrap is not installed: the pod's container paths cannot be given their own view."""


class SandboxRefused(Exception):
    """A container path this view cannot give (it passes through a host symlink or an existing host file)."""


def bwrap() -> str | None:
    """The bubblewrap executable, or None."""
    return shutil.which("bwrap")


@dataclass
class View:
    """The filesystem a container sees. `own` are container paths that live under `root`; `mounts` map a container
    path (a volume mount) to a host folder or file, `read_only` those the container may not write; `workdir` is
    the working directory ("/" when None, as in most images, so relative paths are the container's own)."""

    root: Path
    own: list[str] = field(default_factory=list)
    mounts: dict[str, Path] = field(default_factory=dict)
    workdir: str | None = None
    read_only: list[str] = field(default_factory=list)  # mounts bound read-only

    def host_path(self, container_path: str) -> Path:
        """Where a container path is on the host once the command ran: inside a mount's folder, else under
        `root` (an own path or below one)."""
        path = PurePosixPath(os.path.normpath(container_path))
        for target in sorted(self.mounts, key=len, reverse=True):
            if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
                return self.mounts[target] / path.relative_to(target)
        return self.root / path.relative_to("/")

    def command(self, argv: list[str], executable: str | None = None) -> list[str]:
        """The command line that runs `argv` in this view (prepares `root`); SandboxUnavailable without bwrap."""
        program = executable or bwrap()
        if program is None:
            raise SandboxUnavailable(
                "the container's own paths need bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap)")
        own = ["/tmp", *self.own]
        mounts = dict(self.mounts)
        workdir = self.workdir or "/"  # most images' WORKDIR; "/" is the container's own root folder
        if self._mounted(workdir):
            self.host_path(workdir).mkdir(parents=True, exist_ok=True)
        elif any(_under(_norm(workdir), _norm(p)) for p in own) or not os.path.isdir(workdir):
            own.append(workdir)  # the runtime creates a missing working directory
            (self.root / _norm(workdir).lstrip("/")).mkdir(parents=True, exist_ok=True)
        special = {_norm(p) for p in [*own, *mounts]}
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        (self.root / "tmp").chmod(0o1777)
        args = [program, "--bind", str(self.root), "/", "--dev", "/dev", "--proc", "/proc", "--die-with-parent"]
        self._expose("/", special, args)
        for path in own:  # a folder this machine has at a container path: there (empty), as the image likely has it
            if not _under(_norm(path), "/tmp") and os.path.isdir(path) and not os.path.islink(path):
                (self.root / _norm(path).lstrip("/")).mkdir(parents=True, exist_ok=True)
        read_only = set(self.read_only)
        hiding = [_norm(p) for p in [*own, *mounts]]
        for keep in runner_paths():  # the runner's own interpreter and checkout, where a container path hides them
            if any(_under(keep, p) for p in hiding) and not any(_under(_norm(p), keep) for p in own) \
                    and keep not in {_norm(t) for t in mounts}:
                mounts[keep] = Path(keep)  # in depth order with the mounts: over those above it, under those in it
                read_only.add(keep)
        for target in sorted(mounts, key=lambda t: _norm(t).count("/")):
            source = mounts[target]
            (self.root / _norm(target).lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            args += ["--ro-bind" if target in read_only else "--bind", str(source), _norm(target)]
        args += ["--chdir", workdir]
        return [*args, "--", *argv]

    def _mounted(self, path: str) -> bool:
        return any(_under(_norm(path), _norm(t)) for t in self.mounts)

    def _expose(self, directory: str, special: set[str], args: list[str]) -> None:
        """Bind each host entry of `directory` into the view, descending into those on the way to a special path."""
        try:
            entries = sorted(os.listdir(directory))
        except OSError as err:
            raise SandboxRefused(f"cannot read {directory} on this machine: {err}") from err
        for entry in entries:
            host = os.path.join(directory, entry)
            if host in _NOT_BOUND or host in special:
                continue
            inside = [p for p in special if _under(p, host) and p != host]
            if not inside:
                if os.path.islink(host):
                    link = self.root / host.lstrip("/")
                    if not link.is_symlink():
                        link.symlink_to(os.readlink(host))
                else:
                    args += ["--bind", host, host]
                continue
            if os.path.islink(host) or not os.path.isdir(host):
                raise SandboxRefused(
                    f"container path {sorted(inside)[0]} passes through {host}, which is not a folder on this machine")
            (self.root / host.lstrip("/")).mkdir(parents=True, exist_ok=True)
            self._expose(host, special, args)


@functools.cache
def runner_paths() -> tuple[str, ...]:
    """Host folders this runner's own Python needs, read-only: its prefix and base prefix (the virtualenv and the
    interpreter it was made from) and the checkout it imports argo-mlops from. A container's `python` may be this
    interpreter (see `same_python`), so where one of these lies under a container's own path (a clone under /tmp,
    as CI and pytest's folders have it) it is bound back at the same place; the container's other files there stay
    its own."""
    found = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(Path(__file__).resolve().parents[3])}
    return tuple(sorted(_norm(os.path.realpath(p)) for p in found if os.path.isdir(p)))


def _norm(path: str) -> str:
    return os.path.normpath("/" + path.lstrip("/"))


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def expand(text: str, mapping: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command, args and env values: a defined variable is replaced, `$$` is `$`,
    anything else is left as written (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return mapping.get(match.group(1), match.group(0))
    return _EXPANSION.sub(one, text)


@functools.cache
def same_python(command: str, path: str | None) -> bool:
    """Whether the host's `python`/`python3` is the interpreter running this runner (sys.executable, or the base of
    its virtualenv); a launcher script (a pyenv shim) is asked once."""
    found = shutil.which(command, path=path)
    mine = os.path.realpath(sys.executable)
    if found is None or os.path.realpath(found) == mine:
        return found is not None
    try:
        asked = subprocess.run([found, "-c", "import os, sys; print(os.path.realpath(sys.executable))"],
                               capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return asked.returncode == 0 and asked.stdout.strip() == mine


def needs_sandbox(template: dict[str, Any]) -> bool:
    """Whether a pod template's result may depend on its own view of container paths, so it cannot run without
    bubblewrap: it declares one (outputs, inputs' artifacts, a script, volume mounts, a working directory) or names
    /tmp anywhere (it would share the host's). For the front-end's up-front check too."""
    cset = template.get("containerSet") or {}
    containers = [template.get("container") or template.get("script") or {}, *(template.get("initContainers") or []),
                  *(template.get("sidecars") or []), *(cset.get("containers") or [])]
    outputs, inputs = template.get("outputs") or {}, template.get("inputs") or {}
    return bool("script" in template or outputs.get("artifacts") or inputs.get("artifacts")
                or any((p.get("valueFrom") or {}).get("path") for p in outputs.get("parameters") or [])
                or cset.get("volumeMounts") or "/tmp" in json.dumps(template)
                or any(c.get("volumeMounts") or c.get("workingDir") for c in containers))


class Process:
    """A container's process, in its own process group; stdout and stderr go to files. `stop` sends SIGTERM to the
    group now and SIGKILL once `grace` seconds passed (checked by `poll`). With `wrapped` (the leader is bwrap,
    which would die of SIGTERM at once and take the command with it), SIGTERM goes to every member but the leader,
    so the command handles it as in a container. Once it ended, `usage` holds its peak resident memory (the largest
    of its processes) and CPU time, also written beside stdout for run.json (`usage_path`)."""

    def __init__(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path, cwd: str | None = None,
                 wrapped: bool = False, append: bool = False):
        self.argv = argv
        self.wrapped = wrapped
        self.stdout = stdout
        self.stderr = stderr
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self._kill_at: float | None = None
        self._term_pending = False
        self.note = ""  # the runtime's word on the exit (a command bwrap could not execute)
        self.setup_error = ""  # bwrap could not set the container up: the runtime failed, not the command
        self.usage: dict[str, Any] | None = None  # once reaped: maxRSSBytes, cpuSeconds (see _reap)
        mode = "ab" if append else "wb"
        with open(stdout, mode) as out, open(stderr, mode) as err:
            self._popen = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                           cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """The exit code once the process ended (128 + N when killed by signal N), else None. Never blocks."""
        if self.exit_code is not None:
            return self.exit_code
        try:  # see the exit without reaping: the group's id stays ours until the leader is reaped
            ended = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            ended = None
        if ended is None and self._popen.returncode is None:
            if self._term_pending:  # bwrap had not started the command yet when stopped
                self._term_pending = not self._term_members()
            if self._kill_at is not None and time.monotonic() >= self._kill_at:
                self._signal(signal.SIGKILL)
            return None
        self._signal(signal.SIGKILL)  # what it left behind in its group (a shell's background jobs)
        code = self._reap()
        self.exit_code = 128 - code if code < 0 else code
        if self.wrapped and self.exit_code == 1:
            self._runtime_failure()
        elif self.exit_code == 127:  # a shell's "not found": a tool the image may have and this machine has not
            missing = _last_not_found(self.stderr)
            self.note = f"{missing} (not on this machine; the image is not used)" if missing else ""
        self.finished_at = time.time()
        return self.exit_code

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to its process group now, SIGKILL after `grace` seconds."""
        if self.poll() is not None or self._kill_at is not None:
            return
        self._kill_at = time.monotonic() + grace
        if self.wrapped:
            self._term_pending = not self._term_members()
        else:
            self._signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """Poll until it ended or `timeout` seconds passed (for tests and shutdown)."""
        end = time.monotonic() + timeout
        while (code := self.poll()) is None and time.monotonic() < end:
            time.sleep(0.01)
        return code

    def _reap(self) -> int:
        """Reap the leader with wait4, which also reports what it and the processes it waited for used (bwrap
        waits for the command, the command for its own children): the peak resident memory of the largest and the
        CPU time of all. Recorded in `usage` and beside stdout (`<container>.usage.json`) for run.json."""
        if self._popen.returncode is not None:
            return self._popen.returncode
        try:
            _, status, rusage = os.wait4(self._popen.pid, 0)
        except ChildProcessError:  # reaped elsewhere: no usage to report
            return self._popen.wait()
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        # Linux reports ru_maxrss in KiB.
        self.usage = {"maxRSSBytes": int(rusage.ru_maxrss) * 1024,
                      "cpuSeconds": round(rusage.ru_utime + rusage.ru_stime, 3)}
        with contextlib.suppress(OSError):
            usage_path(self.stdout).write_text(json.dumps(self.usage) + "\n")
        return self._popen.returncode

    def _runtime_failure(self) -> None:
        """bwrap's own failures, in its first line of stderr: execvp's is the emissary's exit 64 ("failed to find
        name in PATH"), any other a failure of the runtime."""
        with open(self.stderr, "rb") as err:
            first = err.readline(4096).decode(errors="replace").strip()
        if first.startswith("bwrap: execvp "):
            self.exit_code, self.note = 64, f"failed to find name in PATH: {first.removeprefix('bwrap: execvp ')}"
        elif first.startswith("bwrap: "):
            self.setup_error = first

    def _term_members(self) -> bool:
        members = _members(self._popen.pid)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        return bool(members)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


USAGE_SUFFIX = ".usage.json"


def usage_path(stdout: Path) -> Path:
    """Where a container's measured usage is written: beside its stdout (`main.stdout` -> `main.usage.json`)."""
    return stdout.with_name(stdout.stem + USAGE_SUFFIX)


def _last_not_found(stderr: Path) -> str:
    with open(stderr, "rb") as err:
        err.seek(max(err.seek(0, os.SEEK_END) - 4096, 0))
        lines = err.read().decode(errors="replace").splitlines()
    return next((line.strip() for line in reversed(lines) if line.rstrip().endswith("not found")), "")


def _members(group: int) -> list[int]:
    """The processes of a process group other than its leader (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == group:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            found.append(int(entry))
    return found
