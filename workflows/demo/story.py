"""The demo's story, step by step: the services it starts, round 1 (v1 to production, drifted traffic, the drift
check's webhook retraining v2 through the canary) and round 2 (a bad manual retrain rejected while v2 serves),
told as it happens, with the registry table and every report at the end."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steps._canary.local.router import DEFAULT_PORT as DEPLOY_PORT
from steps._canary.local.servers import free_port
from steps._canary.local.traffic import Traffic, replay_rows
from steps._core.documents import DriftReport, VersionRecord
from steps._core.errors import StepError
from steps._core.policy import Policy
from steps._storage.registry import Registry
from workflows.demo.follow import follow_events_run, relative, tail
from workflows.demo.index import write_index
from workflows.demo.processes import Processes
from workflows.demo.workspace import (
    DEMO_PROFILE,
    Datasets,
    DemoError,
    builtin_policy,
    demo_policy,
    make_datasets,
    prepare_dir,
)

# Traffic replayed through the local deployment: requests per second over a few connections, rows per request.
# At 10% canary weight, 120/s gives the canary 12 requests/s: the demo's min_requests in well under a window.
TRAFFIC_RATE = 120
TRAFFIC_CONNECTIONS = 4
TRAFFIC_BATCH = 10


@dataclass(frozen=True)
class Services:
    """What the demo started for the loop to run on."""

    deploy_url: str  # `mlops deploy`'s router
    webhook: str  # `mlops events serve`'s EventSource
    events: subprocess.Popen[str]
    token_file: Path  # the webhook's bearer token
    prometheus: str | None  # PROMETHEUS_URL: the analyses and the drift check query it


class Demo:
    def __init__(self, args: argparse.Namespace, out: Callable[[str], None]):
        self.args = args
        self.dir: Path = args.dir.resolve()
        self.say_raw = out
        self.t0 = time.monotonic()
        self.registry = str(self.dir / "registry")
        self.model: str | None = None  # once the policy is read
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
        source = args.policy or builtin_policy(args.task or "binary")
        policy = demo_policy(source, self.dir / "gates" / source.name)
        self.model = policy.model_name
        if args.task and policy.model.task != args.task:
            raise DemoError(f"--task {args.task}: {source} is a {policy.model.task} model (model.task); give a "
                            f"{args.task} policy or leave --task out")
        self.say(f"policy: {source} ({policy.model.task}) with the demo profile -> {self.dir / 'gates' / source.name}")
        for key, _, why in DEMO_PROFILE:
            self.say(f"  {key}: {why}", indent=True)
        data = make_datasets(policy, self.dir / "data", args.rows, args.reference, args.current)
        self.say(f"data: {data.reference.name} (reference), {data.current.name} (drifted), "
                 f"{data.shuffled.name} (labels shuffled) in {data.reference.parent}")
        self.round_1(policy, data, self.start_services(policy, data))
        self.round_2(policy, data)
        self.end(policy.model_name)
        return 0

    def start_services(self, policy: Policy, data: Datasets) -> Services:
        """`mlops deploy` and `mlops events serve`, each answering, and the webhook's token."""
        model = policy.model_name
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
        env = {**os.environ, "MLOPS_REGISTRY": self.registry, "MLOPS_DEPLOY_URL": deploy_url,
               "MLOPS_ROLLOUT_TIME_SCALE": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        env.pop("MLOPS_WEBHOOK_TOKEN", None)
        self.procs = Processes(secrets.token_hex(8), self.dir, env)
        logs = self.dir / "logs"
        logs.mkdir()

        self.say(f"starting the local deployment: mlops deploy --model {model} --port {deploy_port}")
        deploy = self.procs.start(["deploy", "--model", model, "--registry", self.registry,
                                   "--port", str(deploy_port)], log=logs / "deploy.log")
        # Its control endpoint answers only with its token: its public metrics route says it is listening.
        self.wait_http(f"{deploy_url}/metrics/stable", deploy, logs / "deploy.log", "mlops deploy")
        self.say(f"starting the local webhook EventSource and Sensor: mlops events serve --port {events_port}")
        events = self.procs.start(["events", "serve", "--port", str(events_port), "--registry", self.registry,
                                   "--policy", str(policy.path), "--dataset", str(data.current),
                                   "--token-file", str(token_file), "--state-dir", str(self.dir / "events")],
                                  log=logs / "events.log")
        self.wait_http(f"{webhook}/runs", events, logs / "events.log", "mlops events serve")
        self.reports += [("deployment log", logs / "deploy.log"), ("events log", logs / "events.log")]
        return Services(deploy_url, webhook, events, token_file, prometheus)

    def round_1(self, policy: Policy, data: Datasets, services: Services) -> None:
        model, logs = policy.model_name, self.dir / "logs"
        deploy_url, webhook, prometheus = services.deploy_url, services.webhook, services.prometheus
        self.say("round 1: train v1 on the reference data and put it in production")
        code = self.mlops_run(policy, data.reference, "initial", "v1")
        production = self.production(model)
        if code != 0 or production is None:
            raise DemoError(f"v1 was not promoted (mlops run exit {code}); see {logs / 'run-v1.log'}")
        self.say(f"v{production} is in production, serving on {deploy_url}")

        self.traffic = Traffic(deploy_url, model, replay_rows(policy, str(data.current), 5000), rate=TRAFFIC_RATE,
                               batch=TRAFFIC_BATCH, connections=TRAFFIC_CONNECTIONS).start()
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
                           "--webhook", f"{webhook}/drift", "--token-file", str(services.token_file)],
                          logs / "drift.log")
        self.reports += [("drift report", drift_dir / "index.html"), ("drift report (JSON)", drift_dir / "drift.json")]
        if code != 0:
            raise DemoError(f"the drift check failed (exit {code}); see {logs / 'drift.log'}")
        report: DriftReport = json.loads((drift_dir / "drift.json").read_text(encoding="utf-8"))
        if report["trigger"]["status"] != "sent":
            raise DemoError(f"the drift check did not call the webhook ({report['trigger']}); "
                            f"see {drift_dir / 'drift.json'}")
        self.say("the webhook accepted the alert; the Sensor submitted the training workflow")

        name, log = follow_events_run(webhook, services.events, logs / "events.log", self.dir, self.say)
        self.reports.append((f"training run (v2, {name}) log", log))
        production = self.production(model)
        if production != 2:
            raise DemoError(f"v2 was not promoted (production is v{production}); see {log}")
        self.say(f"v2 passed its gates and the canary, and is in production ({self.traffic_line()})")

    def round_2(self, policy: Policy, data: Datasets) -> None:
        assert self.traffic is not None  # round 1 started it
        model, logs = policy.model_name, self.dir / "logs"
        self.say("round 2: a retrain started by hand (reason=manual) on data whose labels are shuffled")
        before = self.traffic.counts()
        code = self.mlops_run(policy, data.shuffled, "manual", "v3")
        versions = self.versions(model)
        bad = versions[-1] if versions and versions[-1]["version"] == 3 else None
        if code == 0 or bad is None or bad["status"] != "rejected" or self.production(model) != 2:
            raise DemoError(f"the bad candidate was not rejected (mlops run exit {code}, v3: "
                            f"{bad and bad['status']}); see {logs / 'run-v3.log'}")
        ok, failed, _ = self.traffic.counts()
        self.say(f"v3 was rejected: {bad['history'][-1]['why'] if bad['history'] else ''}")
        self.say(f"v2 kept serving throughout: {ok - before[0]} answers, {failed - before[1]} errors during round 2")
        self.traffic.stop()
        if failed:
            raise DemoError(f"{failed} requests failed during the demo; see {logs / 'deploy.log'}")

    def end(self, model: str) -> None:
        self.say("the registry:")
        env = self.procs.env if self.procs else None
        table = subprocess.run([sys.executable, "-m", "workflows", "registry", "list", "--model", model,
                                "--registry", self.registry], cwd=self.dir, env=env,
                               capture_output=True, text=True, check=False)
        for line in (table.stdout or table.stderr).splitlines():
            self.say_raw("  " + line)
        self.say("reports:")
        for what, path in self.reports + self.run_reports():
            if path.exists():
                self.say_raw(f"  {what}: {relative(path)}")
        index = self.write_page(f"The loop ran: v{self.production(model)} of {model} is in production")
        self.say(f"done in {time.monotonic() - self.t0:.0f}s; everything is in {relative(self.dir)}")
        self.say_raw(f"the demo's page: {relative(index)}")

    def write_page(self, headline: str, tone: str = "pass") -> Path:
        """DIR/index.html: every run, report and log of the demo so far, under `headline`."""
        assert self.model is not None  # run() read the policy
        try:
            versions = self.versions(self.model) if Path(self.registry).exists() else []
        except StepError:
            versions = []
        return write_index(self.dir, self.model, self.registry, headline, tone,
                           ", ".join(f"v{v['version']} {v['status']}" for v in versions))

    # -- helpers --

    def mlops(self, args: list[str], log: Path) -> int:
        """Run an `mlops` command to its end, its output in `log` and shown as it comes."""
        assert self.procs is not None  # start_services made it
        process = self.procs.start(args)
        with open(log, "w", encoding="utf-8") as copy_to:
            assert process.stdout is not None  # started without a log: a pipe
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
                raise DemoError(f"{what} exited ({process.returncode}): {tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise DemoError(f"{what} did not answer on {url} within {timeout:.0f}s: {tail(log)}")

    def wait_rows(self, need: int, timeout: float = 120) -> None:
        assert self.traffic is not None  # round 1 started it
        deadline = time.monotonic() + timeout
        while self.traffic.counts()[2] < need:
            if time.monotonic() > deadline:
                raise DemoError(f"the deployment scored only {self.traffic.counts()[2]} rows in {timeout:.0f}s "
                                f"({self.traffic_line()})")
            time.sleep(0.2)
        self.say(f"the stable version scored {self.traffic.counts()[2]} rows ({self.traffic_line()})")

    def production(self, model: str) -> int | None:
        return Registry.open(self.registry).production(model)

    def versions(self, model: str) -> list[VersionRecord]:
        return Registry.open(self.registry).versions(model)

    def traffic_line(self) -> str:
        if self.traffic is None:
            return "no traffic"
        ok, failed, rows = self.traffic.counts()
        return f"{ok} answers, {failed} errors, {rows} rows so far"

    def run_reports(self) -> list[tuple[str, Path]]:
        found = []
        for run_dir in sorted((self.dir / ".mlops" / "runs").glob("*")):
            for what, pattern in (("gate report", "pods/*-gate-*/volumes/emptyDir/tmp/gate-report/index.html"),
                                  ("validation report", "pods/*-validate-*/volumes/emptyDir/tmp/validation.json"),
                                  ("rollout log", "pods/*-rollout-*/log")):
                paths = list(run_dir.glob(pattern))  # a retried task has a pod per attempt: the last one
                found.append((f"{what} ({run_dir.name})", max(paths, key=lambda p: p.stat().st_mtime) if paths
                              else run_dir / pattern))
        return found

    def stop(self) -> tuple[int, int]:
        """Stop the traffic and every process started; (processes stopped, of which killed)."""
        if self.traffic is not None:
            self.traffic.stop()
        return self.procs.stop_all() if self.procs else (0, 0)

