"""`mlops events serve`: the webhook EventSource and the retrain Sensors, locally.

The same contract as the cluster: POST /drift with `Authorization: Bearer <token>` (401 otherwise); each model's
Sensor (workflows/local/sensors.py), rendered in memory by `workflows.events.build_sensor` (the code `mlops
compile` runs), decides: its data
filters (an alert for an unknown model or reason is ignored, logged, and answered 200 as Argo Events does), its
parameter mapping from the body to the Workflow, the Workflow's name from the idempotency key (a name already
used is refused, like AlreadyExists), and its trigger's `rateLimit` (a trigger beyond the rate waits for its
turn, as Argo Events' rate limiter makes it wait; nothing is dropped). Accepted alerts run the training template
with the local runner (`mlops run`), in the background, one at a time.

    mlops events serve [--port P] [--host H] [--token-file F] [--policy FILE ...] [--registry LOC]
                       [--template-file FILE] [--dataset URI] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import hmac
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from steps._core.errors import StepError
from steps._core.policy import PolicyError, load_policy
from steps._drift.webhook import read_token
from workflows import events, render
from workflows.local.sensors import SensorError, Sensors

DEFAULT_PORT = int(events.WEBHOOK_PORT)
STATE_DIR = Path(".mlops/events")


# --- running the Workflows, one at a time ---------------------------------------------------------------------

@dataclass
class Runs:
    state_dir: Path
    registry: str | None = None
    template_file: Path | None = None
    policies: dict[str, Path] = field(default_factory=dict)  # model -> the policy file its Sensor came from
    dataset: str | None = None  # else `mlops run` uses the policy's data (generated reference data locally)
    log: Callable[[str], None] = print
    status: dict[str, str] = field(default_factory=dict)
    jobs: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    triggered: dict[str, float] = field(default_factory=dict)  # when the Sensor created the Workflow (time.time)
    started: dict[str, float] = field(default_factory=dict)  # when its run began (time.time)
    timers: list[threading.Timer] = field(default_factory=list)

    def start(self) -> None:
        threading.Thread(target=self._worker, name="events-runs", daemon=True).start()

    def submit(self, workflow: dict[str, Any], delay: float = 0.0) -> None:
        """Create the Workflow now, or after `delay` seconds (its trigger's turn under the rateLimit)."""
        self.status[workflow["metadata"]["name"]] = "Pending"
        if delay <= 0:
            self._create(workflow)
            return
        timer = threading.Timer(delay, self._create, args=(workflow,))
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _create(self, workflow: dict[str, Any]) -> None:
        self.triggered[workflow["metadata"]["name"]] = time.time()
        self.jobs.put(workflow)

    def stop(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.jobs.put(None)

    def command(self, workflow: dict[str, Any]) -> list[str]:
        """`mlops run` for the Workflow: its template, its parameters."""
        template = workflow["spec"]["workflowTemplateRef"]["name"]
        params = [f"{p['name']}={p['value']}" for p in workflow["spec"]["arguments"]["parameters"]]
        cmd = [sys.executable, "-m", "workflows", "run"]
        if self.template_file is not None:
            cmd += ["--from", str(self.template_file), template]
        else:
            model = next(p["value"] for p in workflow["spec"]["arguments"]["parameters"] if p["name"] == "model")
            cmd += ["training", "--model", model]
            if model in self.policies:
                cmd += ["--policy", str(self.policies[model])]
        if self.dataset:
            cmd += ["-p", f"dataset={self.dataset}"]
        for item in params:
            cmd += ["-p", item]
        if self.registry:
            cmd += ["--registry", self.registry]
        return cmd

    def _worker(self) -> None:
        while True:
            workflow = self.jobs.get()
            if workflow is None:
                return
            name = workflow["metadata"]["name"]
            self.started[name] = time.time()
            self.status[name] = "Running"
            log_file = self.state_dir / f"{name}.log"
            self.log(f"events: running {name} (log: {log_file})")
            with open(log_file, "w", encoding="utf-8") as out:
                code = subprocess.call(self.command(workflow), stdout=out, stderr=subprocess.STDOUT)
            self.status[name] = "Succeeded" if code == 0 else f"Failed (exit {code})"
            self.log(f"events: {name}: {self.status[name]}")


# --- the HTTP server ------------------------------------------------------------------------------------------

def make_server(host: str, port: int, token: str, sensors: Sensors, runs: Runs,
                log: Callable[[str], None] = print) -> ThreadingHTTPServer:
    expected = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/runs":
                self._reply(200, {"runs": dict(runs.status), "triggered": dict(runs.triggered),
                                  "started": dict(runs.started)})
            else:
                self._reply(404, {"error": f"no {self.path}; POST {events.WEBHOOK_ENDPOINT}, GET /runs"})

        def do_POST(self) -> None:
            if self.path != events.WEBHOOK_ENDPOINT:
                self._reply(404, {"error": f"no {self.path}; POST {events.WEBHOOK_ENDPOINT}"})
                return
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                log(f"events: 401 for {self.client_address[0]}: missing or wrong bearer token")
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._reply(400, {"error": "the body is not JSON"})
                return
            decision = sensors.handle({"body": body, "header": dict(self.headers)})
            log(f"events: {decision.status}: {decision.detail}")
            if decision.status == "submitted" and decision.workflow is not None:
                runs.submit(decision.workflow, decision.delay)
            self._reply(200, {"status": decision.status, "detail": decision.detail, "workflow": decision.name,
                              "delay_seconds": round(decision.delay, 3)})

        def _reply(self, code: int, doc: dict[str, Any]) -> None:
            data = (json.dumps(doc) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass  # one line per decision above is the log

    return ThreadingHTTPServer((host, port), Handler)


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="mlops events serve", description=__doc__)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}, as in the cluster)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--registry", help="registry location for the training runs (default: $MLOPS_REGISTRY)")
    p.add_argument("--token-file", help="file holding the bearer token (else $MLOPS_WEBHOOK_TOKEN)")
    p.add_argument("--policy", type=Path, action="append", default=[],
                   help="a policy file (repeatable; default: every gates/*.yaml)")
    p.add_argument("--template-file", type=Path,
                   help="run this WorkflowTemplate YAML (named as the Sensor's workflowTemplateRef) instead of "
                   "rendering the model's training template")
    p.add_argument("--dataset", help="the training runs' dataset (default: the template's; `mlops run` "
                   "generates the reference data locally)")
    p.add_argument("--state-dir", type=Path, default=STATE_DIR, help=f"run logs (default {STATE_DIR})")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["serve"]:
        print("usage: mlops events serve [--port P] [--token-file F] [--policy FILE ...] [--registry LOC]",
              file=sys.stderr)
        return 2
    args = parser().parse_args(argv[1:])
    try:
        token = read_token(args.token_file)
        policies = args.policy or render.find_policies()
        if not policies:
            raise PolicyError("no policy found (./gates/*.yaml or --policy FILE)")
        sensors = Sensors.from_policies(policies)
    except (StepError, PolicyError, SensorError) as err:
        print(f"mlops events serve: error: {err}", file=sys.stderr)
        return 2
    args.state_dir.mkdir(parents=True, exist_ok=True)
    # A Workflow once submitted keeps its name (Argo refuses it again while it exists): so do restarts here.
    sensors.used.update(p.stem for p in args.state_dir.glob("*.log"))
    runs = Runs(args.state_dir, args.registry, args.template_file,
                policies={load_policy(p).model_name: p for p in policies}, dataset=args.dataset,
                log=lambda line: print(line, flush=True))
    runs.start()
    server = make_server(args.host, args.port, token, sensors, runs, log=lambda line: print(line, flush=True))
    models = ", ".join(s["metadata"]["name"] for s in sensors.sensors)
    print(f"mlops events serve: POST http://{args.host}:{server.server_address[1]}{events.WEBHOOK_ENDPOINT} "
          f"(sensors: {models})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        runs.stop()
    return 0
