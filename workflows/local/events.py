"""`mlops events serve`: the webhook EventSource and the retrain Sensors, locally.

The same contract as the cluster: POST /drift with `Authorization: Bearer <token>` (401 otherwise); each model's
Sensor, rendered in memory by `workflows.events.build_sensor` (the code `mlops compile` runs), decides: its data
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
import copy
import hmac
import json
import queue
import re
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

DEFAULT_PORT = int(events.WEBHOOK_PORT)
STATE_DIR = Path(".mlops/events")
_TEMPLATE = re.compile(r"\{\{\s*\.Input\.([A-Za-z0-9_.-]+)\s*\}\}")
# A trigger's rateLimit.unit as Argo Events reads it (an absent unit is a second there too).
RATE_UNITS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}
# go.uber.org/ratelimit's default slack: after an idle time, up to this many triggers may go at once.
RATE_LIMIT_SLACK = 10


class SensorError(ValueError):
    """The Sensor cannot build a Workflow from this event (a missing key, an unsupported template)."""


@dataclass
class Decision:
    status: str  # submitted | ignored | duplicate | error
    detail: str
    workflow: dict[str, Any] | None = None
    delay: float = 0.0  # seconds the trigger waits for its turn under the trigger's rateLimit

    @property
    def name(self) -> str | None:
        return self.workflow["metadata"]["name"] if self.workflow else None


# --- the Sensor's semantics, read from the rendered Sensor ----------------------------------------------------

def lookup(data: Any, path: str) -> Any:
    """A gjson-style dotted path into the event (`body.model`); raises KeyError when absent."""
    for part in _split(path):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(path)
    return data


def as_text(value: Any) -> str:
    """A value as Argo Events passes it on: strings as they are, everything else as its JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def passes_filters(dependency: dict[str, Any], event: dict[str, Any]) -> tuple[bool, str]:
    """The dependency's data filters (type string: each value a regular expression, any may match; all
    filters must pass, Argo's default `and`)."""
    for f in (dependency.get("filters") or {}).get("data") or []:
        if f.get("type") != "string":
            raise SensorError(f"data filter on {f.get('path')}: type {f.get('type')!r} is not supported locally")
        try:
            actual = as_text(lookup(event, f["path"]))
        except KeyError:
            return False, f"{f['path']} is missing"
        if not any(re.search(pattern, actual) for pattern in f["value"]):
            return False, f"{f['path']} is {actual!r}, not {' or '.join(f['value'])}"
    return True, ""


def build_workflow(trigger: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The trigger's Workflow with each parameter's source written to its destination."""
    spec = trigger["template"]["argoWorkflow"]
    if spec.get("operation", "submit") != "submit":
        raise SensorError(f"argoWorkflow operation {spec.get('operation')!r}: only submit runs locally")
    workflow = copy.deepcopy(spec["source"]["resource"])
    for parameter in spec.get("parameters") or []:
        src = parameter["src"]
        if "dataKey" in src:
            try:
                value = as_text(lookup(event, src["dataKey"]))
            except KeyError:
                if "value" not in src:
                    raise SensorError(f"the event has no {src['dataKey']}") from None
                value = src["value"]
        elif "dataTemplate" in src:
            value = _render_template(src["dataTemplate"], event)
        elif "value" in src:
            value = src["value"]
        else:
            raise SensorError(f"parameter for {parameter['dest']}: source {sorted(src)} is not supported locally")
        _set(workflow, parameter["dest"], value)
    return workflow


def _render_template(template: str, event: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        try:
            return as_text(lookup(event, match.group(1)))
        except KeyError:
            raise SensorError(f"the event has no {match.group(1)}") from None

    text = _TEMPLATE.sub(one, template)
    if "{{" in text:
        raise SensorError(f"dataTemplate {template!r}: only {{{{ .Input.<path> }}}} is supported locally")
    return text


def _split(path: str) -> list[str]:
    # sjson/gjson paths: dots separate, a backslash escapes a dot inside a key (argo-mlops\.io/drift-share).
    parts = re.split(r"(?<!\\)\.", path)
    return [p.replace("\\.", ".") for p in parts]


def _set(doc: Any, path: str, value: str) -> None:
    parts = _split(path)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(doc, list):
            index = int(part)
            if last:
                doc[index] = value
            else:
                doc = doc[index]
        else:
            if last:
                doc[part] = value
            else:
                doc = doc.setdefault(part, [] if parts[i + 1].isdigit() else {})


class RateLimiter:
    """A trigger's rate limit as Argo Events applies it: go.uber.org/ratelimit's limiter,
    `ratelimit.New(requestsPerUnit, ratelimit.Per(unit))`, whose Take() blocks before the trigger runs.

    Each trigger is due one `unit / requestsPerUnit` after the one before it; a trigger asking earlier waits
    (it is delayed, never dropped). After an idle time the wait owed is forgiven up to RATE_LIMIT_SLACK
    triggers' worth, so a burst after a quiet spell goes through at once, as there.
    """

    def __init__(self, requests_per_unit: int, unit_seconds: float, slack: int = RATE_LIMIT_SLACK,
                 clock: Callable[[], float] = time.monotonic):
        self.per_request = unit_seconds / requests_per_unit
        self.max_slack = slack * self.per_request
        self.clock = clock
        self._due: float | None = None  # when the last trigger was let through
        self._lock = threading.Lock()

    @classmethod
    def from_trigger(cls, trigger: dict[str, Any], where: str) -> RateLimiter | None:
        """The limiter of a rendered trigger's `rateLimit`; None (no limit) without one. SensorError when the
        Sensor's rateLimit is not one Argo Events can run."""
        limit = trigger.get("rateLimit")
        if limit is None:
            return None
        unit = limit.get("unit") or "Second"
        if unit not in RATE_UNITS:
            raise SensorError(f"{where}: rateLimit.unit {unit!r}: must be one of {', '.join(RATE_UNITS)}")
        count = limit.get("requestsPerUnit")
        if type(count) is not int or count < 1:
            raise SensorError(f"{where}: rateLimit.requestsPerUnit {count!r}: must be an integer of at least 1")
        return cls(count, RATE_UNITS[unit])

    def take(self) -> float:
        """Claim the next turn; the seconds to wait for it (0 when it is now)."""
        with self._lock:
            now = self.clock()
            if self._due is None:
                due = now
            elif now - self._due > self.max_slack + self.per_request:
                due = now - self.max_slack
            else:
                due = self._due + self.per_request
            self._due = due
        return max(0.0, due - now)


class Sensors:
    """Every model's Sensor; `handle(body)` is what Argo Events does with one webhook event."""

    def __init__(self, sensors: list[dict[str, Any]]):
        self.sensors = sensors
        self.used: set[str] = set()
        self.lock = threading.Lock()
        # One limiter per trigger, read from the Sensor itself (Argo Events keys them by trigger name).
        self.limiters: dict[tuple[str, str], RateLimiter | None] = {}
        for sensor in sensors:
            name = sensor["metadata"]["name"]
            for trigger in sensor["spec"]["triggers"]:
                key = (name, trigger["template"]["name"])
                self.limiters[key] = RateLimiter.from_trigger(trigger, f"Sensor {name}, trigger {key[1]}")

    @classmethod
    def from_policies(cls, policies: list[Path]) -> Sensors:
        return cls([events.build_sensor(load_policy(p)) for p in policies])

    def handle(self, event: dict[str, Any]) -> Decision:
        reasons = []
        for sensor in self.sensors:
            name = sensor["metadata"]["name"]
            for dependency in sensor["spec"]["dependencies"]:
                ok, why = passes_filters(dependency, event)
                if not ok:
                    reasons.append(f"{name}: {why}")
                    continue
                trigger = sensor["spec"]["triggers"][0]
                # Argo Events takes the trigger's turn before it builds and creates the resource: an event that
                # then fails (a missing key, AlreadyExists) has used its turn too.
                limiter = self.limiters.get((name, trigger["template"]["name"]))
                delay = limiter.take() if limiter is not None else 0.0
                try:
                    workflow = build_workflow(trigger, event)
                except SensorError as err:
                    return Decision("error", f"{name}: {err}", delay=delay)
                wf_name = workflow["metadata"]["name"]
                with self.lock:
                    if wf_name in self.used:
                        return Decision("duplicate", f"{name}: workflow {wf_name} already exists (AlreadyExists)",
                                        workflow, delay)
                    self.used.add(wf_name)
                waits = f" in {delay:.1f}s (trigger rateLimit)" if delay > 0 else ""
                return Decision("submitted", f"{name}: submitted {wf_name}{waits}", workflow, delay)
        return Decision("ignored", "; ".join(reasons) or "no sensor")


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
