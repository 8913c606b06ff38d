"""One contender's life in the benchmark: spawn it pinned to a core, time it to ready, check its answers, load
it with wrk on the other core, sample its memory, stop it with SIGTERM. Plus the machine's description."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from bench.serving import wire
from bench.serving.contenders import Contender, Context, render, scores
from bench.serving.model import ReferenceModel

HERE = Path(__file__).resolve().parent
_MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A contender misbehaved or a tool is missing; the message names the contender and what happened."""


@dataclass
class Server:
    contender: Contender
    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path
    spawned_at: float
    command: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # the templates' values for this start (its ports)

    def render(self, template: str) -> str:
        return render(template, self.fields)

    def log_tail(self, chars: int = 2500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def require_tools(grpc: bool = False) -> None:
    tools = [("wrk", "apt-get update && apt-get install -y wrk"), ("taskset", "util-linux")]
    if grpc:
        tools.append(("h2load", "apt-get update && apt-get install -y --no-install-recommends nghttp2-client"))
    for tool, hint in tools:
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found on PATH (install: {hint})")


def free_ports(count: int) -> tuple[int, ...]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return tuple(s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()


def start(contender: Contender, ctx: Context, log: Path, cpus: str, nice: int = 0) -> Server:
    ports = free_ports(3)
    values = ctx.fields((ports[0], ports[1], ports[2]))
    command = [render(part, values) for part in contender.command]
    env = {**os.environ, **{k: render(v, values) for k, v in contender.env.items()}}
    # Servers keep the bytecode they compile, as an image would have it; the priming start writes it once.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cwd = Path(render(contender.cwd, values))
    cwd.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        spawned_at = time.monotonic()
        # A session of its own, so a server that leaves children behind can be cleaned up by its group.
        proc = subprocess.Popen([*_niced(nice), "taskset", "-c", cpus, *command], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return Server(contender, proc, f"http://127.0.0.1:{ports[0]}", log, spawned_at, command, values)


def _niced(nice: int) -> list[str]:
    return ["nice", "-n", str(nice)] if nice else []


def wait_ready(server: Server, ctx: Context, timeout: float) -> float:
    """Seconds from spawn to the first 200 on the readiness path (and, for a gRPC contender, then to the first
    ModelReady true over gRPC)."""
    path = render(server.contender.ready_path, ctx.fields())
    deadline = server.spawned_at + timeout
    http_ready = False
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.contender.name} exited with {server.proc.returncode} before it was ready; "
                             f"log {server.log}:\n{server.log_tail()}")
        try:
            if not http_ready:
                status, _ = request(server.base_url, "GET", path, None, timeout=1.0)
                http_ready = status == 200
            if http_ready and (server.contender.protocol != wire.GRPC
                               or wire.grpc_model_ready(server.render(server.contender.grpc_target), ctx.model)):
                return time.monotonic() - server.spawned_at
        except OSError:
            pass
        except Exception as err:  # grpc.RpcError: not listening yet
            if not _is_rpc_error(err):
                raise
        time.sleep(0.01)
    raise BenchError(f"{server.contender.name} not ready within {timeout:.0f} s at {path}; log {server.log}:\n"
                     f"{server.log_tail()}")


def request(base_url: str, method: str, path: str, body: bytes | None, timeout: float = 10.0) -> tuple[int, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return response.status, raw.decode(errors="replace")


def _is_rpc_error(err: BaseException) -> bool:
    import grpc

    return isinstance(err, grpc.RpcError)


def infer(server: Server, path: str, body: bytes, header_length: int | None) -> tuple[int | str, Any]:
    """One request on the contender's path: (status, answer in the V2 JSON form or V1's). A gRPC status other
    than OK is (`grpc <CODE>`, its details); a binary answer is read by tritonclient.http's own parser."""
    protocol = server.contender.protocol
    if protocol == wire.GRPC:
        try:
            return 200, wire.grpc_answer(wire.grpc_call(server.render(server.contender.grpc_target), path, body))
        except Exception as err:
            if not _is_rpc_error(err):
                raise
            return f"grpc {err.code().name}", err.details()  # type: ignore[attr-defined]
    if protocol == wire.BINARY:
        host, port = server.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10.0)
        try:  # as tritonclient.http sends it: the header length, no Content-Type
            conn.request("POST", path, body=body, headers={"Inference-Header-Content-Length": str(header_length)})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        status, answer, binary = wire.binary_answer(response.status, dict(response.getheaders()), raw)
        if binary:
            answer["binary"] = True  # the answer's tensors came as binary data (verify counts them)
        return status, answer
    return request(server.base_url, "POST", path, body)


def verify(server: Server, ctx: Context, model: ReferenceModel, tolerance: float, parallel: int) -> dict[str, Any]:
    """Every request row, one at a time and then `parallel` at once (which exercises batching), must come back
    with the in-process score of its row."""
    contender = server.contender
    path = render(contender.infer_path, ctx.fields())
    bodies = wire.read_bodies(contender.protocol, model.body_files[contender.protocol])
    binary_answers, lock = [0], threading.Lock()

    def check(i: int) -> float:
        status, answer = infer(server, path, *bodies[i])
        if isinstance(answer, dict) and answer.pop("binary", False):
            with lock:
                binary_answers[0] += 1
        if status != 200:
            raise BenchError(f"{contender.name}: {wire.path_name(contender.protocol)} {path} row {i} answered "
                             f"{status}: {str(answer)[:500]}")
        try:
            got = scores(contender.protocol, answer, model.positive_index)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise BenchError(f"{contender.name}: cannot read scores from {str(answer)[:500]}: {err!r}") from err
        if len(got) != 1:
            raise BenchError(f"{contender.name}: row {i}: expected 1 score, got {got}")
        diff = abs(got[0] - model.expected[i])
        if diff > tolerance:
            raise BenchError(f"{contender.name}: row {i}: score {got[0]!r} differs from the in-process "
                             f"{model.expected[i]!r} by {diff:.3g} > tolerance {tolerance}")
        return diff

    sequential = [check(i) for i in range(len(bodies))]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        concurrent = list(pool.map(check, range(len(bodies))))
    out = {"rows": len(bodies), "parallel": parallel, "max_abs_diff": max(sequential + concurrent)}
    if contender.protocol == wire.BINARY:
        out["binary_answers"] = binary_answers[0]
    return out


def run_load(server: Server, ctx: Context, model: ReferenceModel, *, connections: int, duration: float,
             cpus: str, nice: int = 0) -> dict[str, Any]:
    """One measured load on the contender's path: wrk for HTTP (JSON or binary), h2load for gRPC."""
    contender = server.contender
    if contender.protocol != wire.GRPC:
        return run_wrk(server, ctx, model, connections=connections, duration=duration, cpus=cpus, nice=nice)
    try:
        return wire.grpc_load([*_niced(nice), "taskset", "-c", cpus], server.render(contender.grpc_target),
                              render(contender.infer_path, ctx.fields()), wire.load_body(model.body_files[wire.GRPC]),
                              server.render(contender.metrics_url), connections=connections, duration=duration,
                              log=server.log.with_name(f"{server.log.stem}-h2load.tsv"))
    except wire.WireError as err:
        raise BenchError(f"{contender.name}: {err}") from err


def run_wrk(server: Server, ctx: Context, model: ReferenceModel, *, connections: int, duration: float,
            cpus: str, script: str = "post.lua", extra_args: tuple[str, ...] = (), nice: int = 0,
            requests: Path | None = None) -> dict[str, Any]:
    """One wrk run (one thread, `connections` connections, single-row requests, or the whole requests of a
    `#raw` file, bench/serving/mixed.py); the Lua `done` prints JSON."""
    url = server.base_url + render(server.contender.infer_path, ctx.fields())
    command = [*_niced(nice), "taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
               "--timeout", "10s", "-s", str(HERE / script), url, "--",
               str(requests or model.body_files[server.contender.protocol]), *extra_args]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=duration + 120)
    found = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
             for line in done.stdout.splitlines() if line.startswith(("BENCH_JSON ", "SOAK_STATUS "))}
    if done.returncode != 0 or "BENCH_JSON" not in found:
        raise BenchError(f"wrk against {server.contender.name} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-1500:]}")
    result = found["BENCH_JSON"]
    seconds = result["duration_us"] / 1e6
    latency = result["latency_us"]
    out = {
        "connections": connections,
        "seconds": round(seconds, 3),
        "requests": result["requests"],
        "throughput_rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
        "latency_ms": {k: round(v / 1000, 3) for k, v in latency.items()},
        "errors": result["errors"],
        "error_count": sum(result["errors"].values()),
    }
    if "SOAK_STATUS" in found:
        out["statuses"] = found["SOAK_STATUS"]
    return out


# --- memory -----------------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after the command name, which may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(tree)


def memory(root: int) -> list[dict[str, Any]]:
    """RSS and PSS of every process in the tree (PSS shares the pages that forked workers share)."""
    out = []
    for pid in process_tree(root):
        try:
            status = (Path(f"/proc/{pid}") / "status").read_text()
            rollup = (Path(f"/proc/{pid}") / "smaps_rollup").read_text()
            cmdline = (Path(f"/proc/{pid}") / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out.append({"pid": pid, "cmd": cmdline.strip()[:120], "rss_mib": _kib(status, "VmRSS:") / 1024,
                    "pss_mib": _kib(rollup, "Pss:") / 1024})
    return out


def _kib(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key):
            return float(line.split()[1])
    return 0.0


class MemorySampler:
    """Samples the server's process tree in the background; keeps the first, the peak and the last sample."""

    def __init__(self, root: int, interval: float = 0.5):
        self.root = root
        self.interval = interval
        self.first: list[dict[str, Any]] = []
        self.peak: list[dict[str, Any]] = []
        self.last: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._sample()
        self.first = self.last
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        snapshot = memory(self.root)
        if snapshot:
            self.last = snapshot
            if total(snapshot, "rss_mib") > total(self.peak, "rss_mib"):
                self.peak = snapshot

    def summary(self) -> dict[str, Any]:
        return {"processes": len(self.peak), "peak_rss_mib": round(total(self.peak, "rss_mib"), 1),
                "peak_pss_mib": round(total(self.peak, "pss_mib"), 1),
                "first_rss_mib": round(total(self.first, "rss_mib"), 1),
                "last_rss_mib": round(total(self.last, "rss_mib"), 1),
                "per_process": [{**p, "rss_mib": round(p["rss_mib"], 1), "pss_mib": round(p["pss_mib"], 1)}
                                for p in self.peak]}


def total(snapshot: list[dict[str, Any]], key: str) -> float:
    return float(sum(p[key] for p in snapshot))


# --- stopping ---------------------------------------------------------------------------------------------


def stop(server: Server, timeout: float = 30.0) -> dict[str, Any]:
    """SIGTERM, as Kubernetes does; SIGKILL the process group only if it does not exit in time."""
    if server.proc.poll() is not None:
        return {"exit_seconds": 0.0, "returncode": server.proc.returncode, "killed": False, "leftovers": 0}
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    killed = False
    try:
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        killed = True
        _kill_group(server.proc.pid)
        server.proc.wait(10)
    seconds = time.monotonic() - began
    # Helpers that finish exiting on their own a moment later (multiprocessing's resource tracker) are fine;
    # workers still running after a grace of a few seconds are the server's fault: count them, then end them.
    grace = time.monotonic() + 5.0
    leftovers = _group_members(server.proc.pid)
    while leftovers and time.monotonic() < grace:
        time.sleep(0.1)
        leftovers = _group_members(server.proc.pid)
    if leftovers:
        _kill_group(server.proc.pid)
    return {"exit_seconds": round(seconds, 3), "returncode": server.proc.returncode, "killed": killed,
            "leftovers": len(leftovers)}


def kill(server: Server) -> None:
    """For the error path: end the whole group at once."""
    _kill_group(server.proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(10)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    """Live processes of the group; zombies (exited, waiting to be reaped) do not count."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp follow the command name
                members.append(int(entry.name))
    return members


# --- the machine ------------------------------------------------------------------------------------------


def machine(repo: Path) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model_name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                       if line.startswith("model name")), platform.processor())
    meminfo = Path("/proc/meminfo").read_text()
    wrk = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model_name,
        "cores": os.cpu_count(),
        "hypervisor": "hypervisor" in cpuinfo,
        "memory_gib": round(_kib(meminfo, "MemTotal:") / _MIB, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0] if (wrk.stdout or wrk.stderr) else "",
        "git_commit": _git(repo, "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain", "--untracked-files=no")),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_probe(cpus: str, nice: int = 0) -> float:
    """Milliseconds for a fixed pure-Python loop on the servers' core: how fast the machine is right now,
    so a reader can tell a slow server from a busy machine."""
    code = ("import time\ns = time.perf_counter()\nx = 0\nfor i in range(1_000_000):\n    x += i\n"
            "print(time.perf_counter() - s)")
    done = subprocess.run([*_niced(nice), "taskset", "-c", cpus, sys.executable, "-c", code], check=False,
                          capture_output=True, text=True)
    return round(float(done.stdout.strip()) * 1000, 1) if done.returncode == 0 else float("nan")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
