"""`mlops events serve`: the webhook EventSource and the retrain Sensors, locally.

The same contract as the cluster: POST /drift with `Authorization: Bearer <token>` (401 otherwise); each model's
Sensor (workflows/local/sensors.py), rendered in memory by `workflows.events.build_sensor` (the code `mlops
compile` runs), decides: its data filters (an alert for an unknown model or reason is ignored, logged, and
answered 200 as Argo Events does), its parameter mapping from the body to the Workflow, the Workflow's name from
the idempotency key (a name already used is refused, like AlreadyExists), and its trigger's `rateLimit` (a trigger
beyond the rate waits for its turn, as Argo Events' rate limiter makes it wait; nothing is dropped). Accepted
alerts run the training template with the local runner (`mlops run`), in the background, one at a time; SIGTERM
or Ctrl-C stops the running one before the command exits.

What a client may ask (Limits): a body of at most the cluster EventSource's maxPayloadSize (64 KiB; 413 past it),
framed by a Content-Length (400 when it is not a number, 411 for a chunked body); the whole request within
`read_seconds` (10 s) of connecting, headers and body (408, or the connection closed); at most `max_connections`
(256) connections at once (503 at once past them); an idempotency key that can name a Workflow (400 otherwise).

    mlops events serve [--port P] [--host H] [--token-file F] [--policy FILE ...] [--registry LOC]
                       [--template-file FILE] [--dataset URI] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
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
# A stopped `mlops run` gets this long to stop its pods (as `argo stop` does) before SIGKILL.
STOP_GRACE_SECONDS = 10.0
_LINGER_SECONDS = 1.0  # after a refusal, what the client still sends is read and dropped this long: it reads our answer


def max_payload_size() -> int:
    """The cluster EventSource's body limit, read from the rendered EventSource (manifests/base), never a copy."""
    return int(events.build_event_source()["spec"]["webhook"][events.EVENT_NAME]["maxPayloadSize"])


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the EventSource; past a limit it gets a 4xx (or 503) and its connection is closed."""

    max_body_bytes: int = field(default_factory=max_payload_size)  # 413
    read_seconds: float = 10.0  # from connecting to the body's last byte, however slowly it trickles in: 408
    max_connections: int = 256  # open at once, a thread each: 503 at once, with no thread


class Refused(Exception):
    """A request answered with an error: its body is not one this server reads."""

    def __init__(self, status: int, message: str, rule: str):
        super().__init__(message)
        self.status, self.rule = status, rule


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
    process: subprocess.Popen[bytes] | None = None  # the `mlops run` running now
    stopped_by: str = ""  # the signal that stopped the command, once it did
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._worker, name="events-runs", daemon=True)
        self._thread.start()

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

    def stop(self, reason: str = "shutdown", grace: float = STOP_GRACE_SECONDS) -> None:
        """Start nothing more, and stop the running `mlops run` as Ctrl-C stops it: SIGINT to its process group (it
        then stops its tasks, each in its own session, which SIGTERM would leave running), SIGKILL after `grace`."""
        for timer in self.timers:
            timer.cancel()
        with self._lock:
            self.stopped_by = reason
            process = self.process
        self.jobs.put(None)
        if process is not None:
            _stop_group(process, grace)
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)
        waiting = sorted(name for name, status in self.status.items() if status == "Pending")
        if waiting:
            self.log(f"events: not started: {', '.join(waiting)}")

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
            if workflow is None or self.stopped_by:
                return
            name = str(workflow["metadata"]["name"])
            try:
                self.status[name] = self._run(name, workflow)
            except Exception as err:  # one job that cannot run never stops the queue: Argo's phase for it is Error
                self.status[name] = f"Error ({type(err).__name__}: {err})"
            self.log(f"events: {name}: {self.status[name]}")

    def _run(self, name: str, workflow: dict[str, Any]) -> str:
        command = self.command(workflow)
        self.started[name] = time.time()
        self.status[name] = "Running"
        log_file = self.state_dir / f"{name}.log"
        self.log(f"events: running {name} (log: {log_file})")
        with open(log_file, "w", encoding="utf-8") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # its own group: a signal reaches it from us alone
            with self._lock:
                self.process, stopped = process, self.stopped_by
            if stopped:  # stop() came between the queue and the start
                _stop_group(process, STOP_GRACE_SECONDS)
            code = process.wait()
            with self._lock:
                self.process = None
        if code == 0:
            return "Succeeded"
        return f"Failed (stopped by {self.stopped_by})" if self.stopped_by else f"Failed (exit {code})"


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- the HTTP server ------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: past them, a 503 at once and no thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int):
        self.max_connections = max_connections
        # socketserver's backlog of 5 makes a burst of connections wait on the kernel's SYN retries, seconds each.
        self.request_queue_size = max_connections
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with suppress(OSError):
                request.settimeout(0.5)  # this is the accepting thread: never wait on one client
                request.sendall(_answer(503, {"error": f"the EventSource already has {self.max_connections} "
                                                       "connections open; retry", "rule": "max_connections"},
                                        [("Retry-After", "1")]))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _ReadDeadline(io.RawIOBase):
    """A connection's bytes, all due by one deadline: a client trickling them in is cut off like one that stopped
    (a timeout per read alone lets a byte every few seconds hold a thread for ever)."""

    def __init__(self, sock: socket.socket, seconds: float):
        self.sock, self.deadline = sock, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the read deadline has passed")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


def make_server(host: str, port: int, token: str, sensors: Sensors, runs: Runs,
                log: Callable[[str], None] = print, limits: Limits | None = None) -> ThreadingHTTPServer:
    expected = f"Bearer {token}".encode()
    bounds = limits or Limits()

    class Handler(BaseHTTPRequestHandler):
        timeout = bounds.read_seconds  # on every read and write; _ReadDeadline bounds the whole request too

        def setup(self) -> None:
            super().setup()
            per_read = self.rfile
            self.rfile = io.BufferedReader(_ReadDeadline(self.connection, bounds.read_seconds))
            per_read.close()
            self.linger = False  # a body may be left unread: read and drop it before closing (see finish)

        def do_GET(self) -> None:
            if self.path == "/runs":
                self._reply(200, {"runs": dict(runs.status), "triggered": dict(runs.triggered),
                                  "started": dict(runs.started)})
            else:
                self._reply(404, {"error": f"no {self.path}; POST {events.WEBHOOK_ENDPOINT}, GET /runs"})

        def do_POST(self) -> None:
            self.linger = True
            if self.path != events.WEBHOOK_ENDPOINT:
                self._reply(404, {"error": f"no {self.path}; POST {events.WEBHOOK_ENDPOINT}"})
                return
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                log(f"events: 401 for {self.client_address[0]}: missing or wrong bearer token")
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
            try:
                body = self._json(self._body())
                try:
                    decision = sensors.handle({"body": body, "header": dict(self.headers)})
                except RecursionError as err:  # a value nested nearly as deep as json.loads reads, written out
                    raise Refused(400, "the body nests deeper than this server reads JSON", "body") from err
            except Refused as refused:
                log(f"events: {refused.status} for {self.client_address[0]}: {refused}")
                self._reply(refused.status, {"error": str(refused), "rule": refused.rule})
                return
            log(f"events: {decision.status}: {decision.detail}")
            if decision.status == "invalid":
                self._reply(400, {"status": decision.status, "error": decision.detail, "workflow": None})
                return
            if decision.status == "submitted" and decision.workflow is not None:
                runs.submit(decision.workflow, decision.delay)
            self._reply(200, {"status": decision.status, "detail": decision.detail, "workflow": decision.name,
                              "delay_seconds": round(decision.delay, 3)})

        def _body(self) -> bytes:
            """The body by its Content-Length, read whole before the deadline; Refused otherwise."""
            if self.headers.get("Transfer-Encoding"):
                raise Refused(411, f"Transfer-Encoding {self.headers['Transfer-Encoding']!r}: not read here; send "
                              "the body with a Content-Length", "Content-Length")
            values = {value.strip() for value in self.headers.get_all("Content-Length") or ["0"]}
            if len(values) > 1:
                raise Refused(400, f"Content-Length: {len(values)} different values", "Content-Length")
            text = values.pop()
            if not re.fullmatch(r"[0-9]+", text):
                raise Refused(400, f"Content-Length {text!r}: must be a whole number of bytes", "Content-Length")
            if int(text) > bounds.max_body_bytes:
                raise Refused(413, f"request body too large: Content-Length {int(text)} is more than the "
                              f"EventSource's maxPayloadSize of {bounds.max_body_bytes} bytes", "maxPayloadSize")
            try:
                data = self.rfile.read(int(text))
            except TimeoutError:
                raise Refused(408, f"the request did not arrive whole within {bounds.read_seconds:g}s",
                              "read_seconds") from None
            if len(data) < int(text):
                raise Refused(400, f"the body ended after {len(data)} of its Content-Length {text} bytes",
                              "Content-Length")
            self.linger = False
            return data

        def _json(self, data: bytes) -> Any:
            try:
                return json.loads(data or b"null")
            except RecursionError as err:
                raise Refused(400, "the body nests deeper than this server reads JSON", "body") from err
            except ValueError as err:
                raise Refused(400, f"the body is not JSON: {err}", "body") from err

        def _reply(self, code: int, doc: dict[str, Any]) -> None:
            self.connection.settimeout(bounds.read_seconds)  # the read deadline may have left almost nothing
            self.wfile.write(_answer(code, doc))
            self.close_connection = True

        def finish(self) -> None:
            super().finish()
            if self.linger:
                _linger(self.connection)

        def log_error(self, format: str, *args: Any) -> None:  # noqa: A002  # the base class' name
            log(f"events: {self.client_address[0]}: {format % args}")  # a request cut off or refused by http.server

        def log_message(self, *args: Any) -> None:
            pass  # one line per decision above is the log

    return _Server((host, port), Handler, bounds.max_connections)


def _answer(code: int, doc: dict[str, Any], headers: list[tuple[str, str]] | None = None) -> bytes:
    """A whole HTTP/1.0 answer, closing the connection: one request per connection."""
    data = (json.dumps(doc) + "\n").encode()
    phrase = BaseHTTPRequestHandler.responses.get(code, ("",))[0]
    lines = [f"HTTP/1.0 {code} {phrase}", "Content-Type: application/json", f"Content-Length: {len(data)}",
             "Connection: close", *(f"{name}: {value}" for name, value in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _linger(sock: socket.socket) -> None:
    """Close as Apache's lingering close does: stop writing, then read and drop what the client still sends for a
    moment, so it reads our answer (closing with unread bytes resets the connection, answer and all)."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return


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
    received: list[str] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum).name)
        # shutdown() waits for serve_forever to return, which this handler interrupts: call it from a thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    models = ", ".join(s["metadata"]["name"] for s in sensors.sensors)
    print(f"mlops events serve: POST http://{args.host}:{server.server_address[1]}{events.WEBHOOK_ENDPOINT} "
          f"(sensors: {models})", flush=True)
    try:
        server.serve_forever()
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        server.server_close()
        reason = received[0] if received else "shutdown"
        running = [name for name, status in runs.status.items() if status == "Running"]
        print(f"events: stopping ({reason})" + (f": stopping {', '.join(running)}" if running else ""), flush=True)
        runs.stop(reason)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
