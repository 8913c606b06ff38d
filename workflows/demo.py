"""`mlops demo`: the whole loop on this machine, no cluster, in about three minutes.

    mlops demo [--dir DIR] [--policy FILE] [--reference DATA --current DATA] [--rows N]

Round 1 (drift): data is generated; v1 is trained, gated, registered and put in production on a local deployment
(`mlops deploy`: a router before a stable and a canary server); traffic whose distribution has drifted is replayed
through it; the drift check reads the servers' metrics (or Prometheus, when PROMETHEUS_URL is set), finds the drift
and calls the local webhook (`mlops events serve`), whose Sensor starts the training workflow on the recent data;
v2 is gated against v1 on the same holdout and goes through the canary schedule (10 -> 30 -> 60 -> 100, analysed
at each step) and is promoted.
Round 2 (manual): a retrain started by hand (`reason=manual`) on data whose labels are shuffled: a gate rejects it,
and the stable version keeps serving all along.
It ends with the registry table and the paths of every report.

Everything is a real process running the same commands you would (`mlops run`, `mlops deploy`, `mlops events
serve`, `mlops drift check`), in DIR (default ./mlops-demo, emptied at the start of each run). The demo profile
(shorter windows, pauses and cooldowns) is written into DIR/gates/ with the policy it changes. Ctrl-C stops every
process the demo started; the registry is never left half-written (each write is create-only or a
compare-and-swap), and a second run starts afresh.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from steps._canary.local.router import DEFAULT_PORT as DEPLOY_PORT
from steps._canary.local.servers import free_port
from steps._canary.local.traffic import replay_rows
from steps._core.errors import StepError
from steps._core.policy import Policy, PolicyError, load_policy

DEFAULT_DIR = Path("mlops-demo")
MARKER = ".mlops-demo"  # a folder holding it is the demo's own, and may be emptied
DEFAULT_ROWS = 40_000
# Every process the demo starts carries this variable (children inherit it): how the stop finds them all.
RUN_ENV = "MLOPS_DEMO_RUN"
RUN_FOLDER = re.compile(r"^mlops run: \S+ \((\S+)/workflow\.yaml\)")  # `mlops run`'s first line names its folder
STOP_GRACE_SECONDS = 15.0
_POLL_SECONDS = 0.1
# Traffic replayed through the local deployment: requests per second over a few connections, rows per request.
# At 10% canary weight, 120/s gives the canary 12 requests/s: the demo's min_requests in well under a window.
TRAFFIC_RATE = 120
TRAFFIC_CONNECTIONS = 4
TRAFFIC_BATCH = 10

# The demo profile: what changes in the policy so that the loop takes minutes, not days. Each entry is a dotted
# policy key, its demo value, and why. Nothing else of the policy changes: the same gates, thresholds and rules.
DEMO_PROFILE: tuple[tuple[str, Any, str], ...] = (
    ("quality.latency_p95_ms.calls", 200, "200 timed single-row calls instead of 1000"),
    ("drift.min_samples", 4000, "decide after 4000 scored rows instead of 10000"),
    ("drift.window", "1m", "a Prometheus window of a minute instead of an hour"),
    ("drift.cooldown", "10m", "one retrain per 10 minutes instead of 6 hours"),
    ("canary.steps", [
        {"set_weight": 10, "pause": "2s", "analysis": True},
        {"set_weight": 30, "pause": "2s", "analysis": True},
        {"set_weight": 60, "pause": "2s", "analysis": False},
        {"set_weight": 100},
    ], "the same schedule, 10 -> 30 -> 60 -> 100, with 2 s pauses instead of 30 min and 1 h"),
    ("canary.analysis.interval", "3s", "a measurement every 3 s instead of every 5 min"),
    ("canary.analysis.min_requests", 20, "20 canary requests per measurement instead of 100"),
)


class DemoError(RuntimeError):
    """The loop did not do what the demo shows (a step failed, or an outcome differs)."""


# --- the demo folder ------------------------------------------------------------------------------------------


def prepare_dir(folder: Path) -> None:
    """An empty demo folder: a new one, or the previous demo's, emptied. Never someone else's folder.

    The previous demo's folder is first renamed aside (one atomic step), then deleted: a Ctrl-C while deleting leaves
    a `.<name>.old-*` folder that the next run deletes, never a half-emptied demo folder without its marker."""
    for leftover in folder.parent.glob(f".{folder.name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"--dir {folder}: exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).is_file():
            raise DemoError(f"--dir {folder}: not empty and not a demo folder (no {MARKER}); choose another --dir")
        aside = folder.with_name(f".{folder.name}.old-{secrets.token_hex(4)}")
        folder.rename(aside)
        shutil.rmtree(aside)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `mlops demo`; the next `mlops demo` empties this folder\n", encoding="utf-8")


def demo_policy(source: Path, out: Path) -> Policy:
    """Write `source` with the demo profile applied to `out`, and load it (the strict loader checks the result)."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: not a policy (a YAML mapping)")
    lines = [f"# {source} with `mlops demo`'s profile applied (workflows/demo.py, DEMO_PROFILE):"]
    for key, value, why in DEMO_PROFILE:
        set_key(raw, key, copy.deepcopy(value))
        lines.append(f"#   {key}: {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_policy(out)


def set_key(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


@dataclass(frozen=True)
class Datasets:
    reference: Path  # v1 trains on it
    current: Path  # recent data: drifted; replayed as traffic, and v2 trains on it
    shuffled: Path  # the reference with its labels shuffled: round 2's bad candidate trains on it


def make_datasets(policy: Policy, folder: Path, rows: int, reference: str | None, current: str | None) -> Datasets:
    from steps._core.data import generate, read_dataset, write_frame

    folder.mkdir(parents=True, exist_ok=True)
    if reference and current:
        ref_frame, cur_frame = read_dataset(reference).frame, read_dataset(current).frame
    else:
        ref_frame = generate(rows, seed=1)
        cur_frame = generate(rows, seed=2, drift=0.8)
        missing = [c for c in [*policy.data.feature_names, policy.data.target] if c not in ref_frame.columns]
        if missing:
            raise DemoError(f"the built-in synthetic data lacks {policy.model_name}'s columns "
                            f"({', '.join(missing)}): give --reference DATA and --current DATA")
    shuffled = ref_frame.copy()
    target = policy.data.target
    shuffled[target] = shuffled[target].sample(frac=1.0, random_state=3).to_numpy()
    out = Datasets(folder / "reference.parquet", folder / "current.parquet", folder / "shuffled-labels.parquet")
    write_frame(ref_frame, out.reference)
    write_frame(cur_frame, out.current)
    write_frame(shuffled, out.shuffled)
    return out


# --- processes ----------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """Every process the demo starts, each in its own session, stopped in reverse order."""

    run_id: str
    cwd: Path
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, args: list[str], log: Path | None = None, extra_env: dict[str, str] | None = None,
              ) -> subprocess.Popen[str]:
        out: IO[str] | int = open(log, "w", encoding="utf-8") if log else subprocess.PIPE  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows", *args], cwd=self.cwd, env={**self.env, **(extra_env or {})},
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
            start_new_session=True)  # Ctrl-C reaches the demo only; it stops each child in order
        if log:
            out.close()  # type: ignore[union-attr]
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


# --- traffic --------------------------------------------------------------------------------------------------


class Traffic:
    """Rows replayed through the deployment's router at a steady rate, on a thread; answers counted by status."""

    def __init__(self, url: str, model: str, rows: list[dict[str, Any]], rate: float = TRAFFIC_RATE,
                 batch: int = TRAFFIC_BATCH):
        self.url, self.model, self.rows, self.rate, self.batch = url, model, rows, rate, batch
        self.codes: dict[int, int] = {}
        self.failures = 0  # connection errors: the router was not answering
        self.rows_ok = 0
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), name=f"demo-traffic-{n}", daemon=True)
                        for n in range(TRAFFIC_CONNECTIONS)]

    def start(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def counts(self) -> tuple[int, int, int]:
        """(answered 2xx, answered otherwise or not at all, rows scored)."""
        with self.lock:
            ok = sum(n for code, n in self.codes.items() if 200 <= code < 300)
            return ok, sum(self.codes.values()) - ok + self.failures, self.rows_ok

    def _run(self, n: int) -> None:
        host, _, port = self.url.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        path = f"/v1/models/{self.model}:predict"
        i, period, next_at = n * 997, len(self.threads) / self.rate, time.monotonic()
        while not self.halt.is_set():
            chunk = [self.rows[(i + k) % len(self.rows)] for k in range(self.batch)]
            i += self.batch
            try:
                conn.request("POST", path, body=json.dumps({"instances": chunk}),
                             headers={"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                with self.lock:
                    self.codes[answer.status] = self.codes.get(answer.status, 0) + 1
                    if answer.status == 200:
                        self.rows_ok += len(chunk)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.failures += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            next_at = max(next_at + period, time.monotonic() - 1.0)
            self.halt.wait(max(0.0, next_at - time.monotonic()))


# --- the demo -------------------------------------------------------------------------------------------------


class Demo:
    def __init__(self, args: argparse.Namespace, out: Callable[[str], None]):
        self.args = args
        self.dir = args.dir.resolve()
        self.say_raw = out
        self.t0 = time.monotonic()
        self.run_id = secrets.token_hex(8)
        self.registry = str(self.dir / "registry")
        self.procs: Processes | None = None
        self.traffic: Traffic | None = None
        self.reports: list[tuple[str, Path]] = []

    def say(self, text: str, indent: bool = False) -> None:
        elapsed = int(time.monotonic() - self.t0)
        prefix = "         " if indent else f"[{elapsed // 60}:{elapsed % 60:02d}] "
        self.say_raw(prefix + text)

    # -- the steps --

    def run(self) -> int:
        args = self.args
        self.say(f"mlops demo: the whole loop, locally, in {self.dir}")
        prepare_dir(self.dir)
        source = args.policy or _builtin_policy()
        policy = demo_policy(source, self.dir / "gates" / source.name)
        model = policy.model_name
        self.say(f"policy: {source} with the demo profile -> {self.dir / 'gates' / source.name}")
        for key, _, why in DEMO_PROFILE:
            self.say(f"  {key}: {why}", indent=True)
        data = make_datasets(policy, self.dir / "data", args.rows, args.reference, args.current)
        self.say(f"data: {data.reference.name} (reference), {data.current.name} (drifted), "
                 f"{data.shuffled.name} (labels shuffled) in {data.reference.parent}")

        token_file = self.dir / "webhook-token"
        token_file.write_text(secrets.token_urlsafe(24), encoding="utf-8")
        token_file.chmod(0o600)
        prometheus = os.environ.get("PROMETHEUS_URL")
        # A Prometheus you run scrapes the deployment where `mlops deploy --print-scrape-config` says: its port.
        deploy_port, events_port = (DEPLOY_PORT if prometheus else free_port()), free_port()
        if prometheus:
            self.say(f"PROMETHEUS_URL={prometheus}: the canary analysis and the drift check query it; it must scrape "
                     f"the deployment (`mlops deploy --print-scrape-config` prints that configuration)")
        deploy_url, webhook = f"http://127.0.0.1:{deploy_port}", f"http://127.0.0.1:{events_port}"
        env = {**os.environ, RUN_ENV: self.run_id, "MLOPS_REGISTRY": self.registry, "MLOPS_DEPLOY_URL": deploy_url,
               "MLOPS_ROLLOUT_TIME_SCALE": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        env.pop("MLOPS_WEBHOOK_TOKEN", None)
        self.procs = Processes(self.run_id, self.dir, env)
        logs = self.dir / "logs"
        logs.mkdir()

        self.say(f"starting the local deployment: mlops deploy --model {model} --port {deploy_port}")
        deploy = self.procs.start(["deploy", "--model", model, "--registry", self.registry,
                                   "--port", str(deploy_port)], log=logs / "deploy.log")
        self.wait_http(f"{deploy_url}/control/status", deploy, logs / "deploy.log", "mlops deploy")
        self.say(f"starting the local webhook EventSource and Sensor: mlops events serve --port {events_port}")
        events = self.procs.start(["events", "serve", "--port", str(events_port), "--registry", self.registry,
                                   "--policy", str(policy.path), "--dataset", str(data.current),
                                   "--token-file", str(token_file), "--state-dir", str(self.dir / "events")],
                                  log=logs / "events.log")
        self.wait_http(f"{webhook}/runs", events, logs / "events.log", "mlops events serve")
        self.reports += [("deployment log", logs / "deploy.log"), ("events log", logs / "events.log")]

        # Round 1 -------------------------------------------------------------------------------------------
        self.say("round 1: train v1 on the reference data and put it in production")
        code = self.mlops_run(policy, data.reference, "initial", "v1")
        production = self.production(model)
        if code != 0 or production is None:
            raise DemoError(f"v1 was not promoted (mlops run exit {code}); see {logs / 'run-v1.log'}")
        self.say(f"v{production} is in production, serving on {deploy_url}")

        self.traffic = Traffic(deploy_url, model, replay_rows(policy, str(data.current), 5000)).start()
        need = policy.drift.min_samples
        self.say(f"replaying drifted traffic (up to {TRAFFIC_RATE} requests/s of {TRAFFIC_BATCH} rows) until the "
                 f"stable version has scored {need} rows (drift.min_samples)")
        self.wait_rows(need)

        source_args = (["--prometheus", prometheus] if prometheus
                       else ["--metrics-url", f"{deploy_url}/metrics/stable"])
        self.say("drift check: mlops drift check --model " + model + " " + " ".join(source_args))
        drift_dir = self.dir / "reports" / "drift"
        code = self.mlops(["drift", "check", "--model", model, "--registry", self.registry,
                           "--policy", str(policy.path), *source_args, "--report-dir", str(drift_dir),
                           "--webhook", f"{webhook}/drift", "--token-file", str(token_file)], logs / "drift.log")
        self.reports += [("drift report", drift_dir / "drift.html"), ("drift report (JSON)", drift_dir / "drift.json")]
        if code != 0:
            raise DemoError(f"the drift check failed (exit {code}); see {logs / 'drift.log'}")
        report = json.loads((drift_dir / "drift.json").read_text(encoding="utf-8"))
        trigger = report.get("trigger") or {}
        if trigger.get("status") != "sent":
            raise DemoError(f"the drift check did not call the webhook ({trigger}); see {drift_dir / 'drift.json'}")
        self.say("the webhook accepted the alert; the Sensor submitted the training workflow")

        name = self.wait_events_run(webhook, events, logs)
        production = self.production(model)
        if production != 2:
            raise DemoError(f"v2 was not promoted (production is v{production}); see {self.dir / 'events' / name}.log")
        self.say(f"v2 passed its gates and the canary, and is in production ({self.traffic_line()})")

        # Round 2 -------------------------------------------------------------------------------------------
        self.say("round 2: a retrain started by hand (reason=manual) on data whose labels are shuffled")
        before = self.traffic.counts()
        code = self.mlops_run(policy, data.shuffled, "manual", "v3")
        versions = self.versions(model)
        bad = versions[-1] if versions and versions[-1]["version"] == 3 else None
        if code == 0 or bad is None or bad["status"] != "rejected" or self.production(model) != 2:
            raise DemoError(f"the bad candidate was not rejected (mlops run exit {code}, v3: "
                            f"{bad and bad['status']}); see {logs / 'run-v3.log'}")
        ok, failed, _ = self.traffic.counts()
        self.say(f"v3 was rejected: {(bad.get('history') or [{}])[-1].get('why', '')}")
        self.say(f"v2 kept serving throughout: {ok - before[0]} answers, {failed - before[1]} errors during round 2")
        self.traffic.stop()
        if failed:
            raise DemoError(f"{failed} requests failed during the demo; see {logs / 'deploy.log'}")

        # The end -------------------------------------------------------------------------------------------
        self.say("the registry:")
        table = subprocess.run([sys.executable, "-m", "workflows", "registry", "list", "--model", model,
                                "--registry", self.registry], cwd=self.dir, env=self.procs.env,
                               capture_output=True, text=True, check=False)
        for line in (table.stdout or table.stderr).splitlines():
            self.say_raw("  " + line)
        self.say("reports:")
        for what, path in self.reports + self.run_reports():
            if path.exists():
                self.say_raw(f"  {what}: {_relative(path)}")
        self.say(f"done in {time.monotonic() - self.t0:.0f}s; everything is in {_relative(self.dir)}")
        return 0

    # -- helpers --

    def mlops(self, args: list[str], log: Path) -> int:
        """Run an `mlops` command to its end, its output in `log` and shown as it comes."""
        assert self.procs is not None
        process = self.procs.start(args)
        with open(log, "w", encoding="utf-8") as copy_to:
            assert process.stdout is not None
            for line in process.stdout:
                copy_to.write(line)
                self.say(line.rstrip(), indent=True)
        return process.wait()

    def mlops_run(self, policy: Policy, dataset: Path, reason: str, label: str) -> int:
        log = self.dir / "logs" / f"run-{label}.log"
        self.reports.append((f"training run ({label}) log", log))
        return self.mlops(["run", "training", "--policy", str(policy.path), "--registry", self.registry,
                           "-p", f"dataset={dataset}", "-p", f"reason={reason}"], log)

    def wait_http(self, url: str, process: subprocess.Popen[str], log: Path, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoError(f"{what} exited ({process.returncode}): {_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise DemoError(f"{what} did not answer on {url} within {timeout:.0f}s: {_tail(log)}")

    def wait_rows(self, need: int, timeout: float = 120) -> None:
        assert self.traffic is not None
        deadline = time.monotonic() + timeout
        while self.traffic.counts()[2] < need:
            if time.monotonic() > deadline:
                raise DemoError(f"the deployment scored only {self.traffic.counts()[2]} rows in {timeout:.0f}s "
                                f"({self.traffic_line()})")
            time.sleep(0.2)
        self.say(f"the stable version scored {self.traffic.counts()[2]} rows ({self.traffic_line()})")

    def wait_events_run(self, webhook: str, events: subprocess.Popen[str], logs: Path, timeout: float = 300) -> str:
        """Follow the workflow the Sensor started: its log's lines as they come, until it ends."""
        deadline = time.monotonic() + timeout
        name, shown, log = None, 0, None
        rollout_log, rollout_shown = None, 0
        while time.monotonic() < deadline:
            if events.poll() is not None:
                raise DemoError(f"mlops events serve exited ({events.returncode}): {_tail(logs / 'events.log')}")
            with urllib.request.urlopen(f"{webhook}/runs", timeout=5) as answer:
                runs = json.load(answer)["runs"]
            if runs and name is None:
                name = next(iter(runs))
                log = self.dir / "events" / f"{name}.log"
                self.say(f"workflow {name} (log: {_relative(log)})")
                self.reports.append((f"training run (v2, {name}) log", log))
            if log is not None and log.is_file():
                lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
                finished = name is not None and runs.get(name, "").startswith(("Succeeded", "Failed"))
                upto = len(lines) if finished else max(shown, len(lines) - 1)  # the last line may be partial
                for line in lines[shown:upto]:
                    self.say(line, indent=True)
                    found = RUN_FOLDER.search(line)
                    if found and rollout_log is None:
                        rollout_log = self.dir / found.group(1) / "tasks" / "rollout" / "log"
                shown = upto
                # The canary is one long task: show its steps and measurements as they happen.
                if rollout_log is not None and rollout_log.is_file():
                    steps = [line for line in rollout_log.read_text(encoding="utf-8", errors="replace").splitlines()
                             if line.startswith("rollout:")]
                    for line in steps[rollout_shown:]:
                        self.say("  " + line, indent=True)
                    rollout_shown = len(steps)
                if finished:
                    if not runs[name].startswith("Succeeded"):
                        raise DemoError(f"the retrain {name} {runs[name]}; see {log}")
                    return name
            time.sleep(0.3)
        raise DemoError(f"the retrain did not finish within {timeout:.0f}s")

    def registry_(self) -> Any:
        from steps._storage.registry import Registry

        return Registry.open(self.registry)

    def production(self, model: str) -> int | None:
        return self.registry_().production(model)  # type: ignore[no-any-return]

    def versions(self, model: str) -> list[dict[str, Any]]:
        return self.registry_().versions(model)  # type: ignore[no-any-return]

    def traffic_line(self) -> str:
        if self.traffic is None:
            return "no traffic"
        ok, failed, rows = self.traffic.counts()
        return f"{ok} answers, {failed} errors, {rows} rows so far"

    def run_reports(self) -> list[tuple[str, Path]]:
        found = []
        for run_dir in sorted((self.dir / ".mlops" / "runs").glob("*")):
            for what, sub in (("gate report", "tasks/gate/tmp/gate-report/gate.html"),
                              ("validation report", "tasks/validate/tmp/validation.json"),
                              ("rollout log", "tasks/rollout/log")):
                found.append((f"{what} ({run_dir.name})", run_dir / sub))
        return found

    def stop(self) -> tuple[int, int]:
        if self.traffic is not None:
            self.traffic.stop()
        return self.procs.stop_all() if self.procs else (0, 0)


def _builtin_policy() -> Path:
    from workflows.render import builtin_policy_dir

    found = sorted(builtin_policy_dir().glob("*.yaml"))
    if not found:
        raise DemoError("no policy packaged with argo-mlops: give --policy FILE")
    return found[0]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does (a `kill` or a closing terminal leaves nothing behind either)."""
    def raise_interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"the demo's folder, emptied first (default ./{DEFAULT_DIR}); a non-empty folder that is not a "
                   "previous demo's is refused")
    p.add_argument("--policy", type=Path, help="the policy to run the demo with (default: the one packaged with "
                   "argo-mlops, the fraud detector)")
    p.add_argument("--reference", help="training data for v1 (with --current; default: generated)")
    p.add_argument("--current", help="recent, drifted data: replayed as traffic, and v2 trains on it")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                   help=f"rows of each generated dataset (default {DEFAULT_ROWS})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (args.reference is None) != (args.current is None):
        print("mlops demo: error: give both --reference and --current, or neither", file=sys.stderr)
        return 2
    if args.rows < 1000:
        print(f"mlops demo: error: --rows {args.rows}: must be at least 1000", file=sys.stderr)
        return 2
    demo = Demo(args, lambda line: print(line, flush=True))
    code = 1
    # Started in the background by a shell (`mlops demo &`, nohup, CI), SIGINT arrives ignored, and an ignored
    # signal stays ignored in every child: then no command would clean up on the demo's SIGINT. A handled one is
    # reset to the default in the children, which then clean up on it as on Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with _interrupt_on_sigterm():
        try:
            code = demo.run()
        except KeyboardInterrupt:
            code = 130
            print("\nmlops demo: interrupted; stopping everything it started", file=sys.stderr, flush=True)
        except (DemoError, PolicyError, StepError) as err:
            code = 1 if isinstance(err, DemoError) else 2
            print(f"mlops demo: error: {err}", file=sys.stderr, flush=True)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            try:
                stopped, killed = demo.stop()
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if killed:
                print(f"mlops demo: {killed} processes did not stop on SIGINT within {STOP_GRACE_SECONDS:.0f}s and "
                      "were killed", file=sys.stderr, flush=True)
            if code == 130:
                print(f"mlops demo: stopped {stopped} processes; nothing is left running. The next `mlops demo` "
                      "starts afresh.", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
