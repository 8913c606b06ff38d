"""The local deployment (`mlops deploy`) and the local canary that the rollout step drives through it.

    mlops deploy [--model M] [--registry LOC] [--port P] [--host H] [--print-scrape-config]

One router on one port in front of two `python -m steps.serve` processes, as Argo Rollouts puts a stable and a
canary ReplicaSet behind one Service:
- /v1/... and /v2/... (predict, infer, health, metadata) go to the stable or the canary server by weight (a
  smooth weighted round robin, so 10% means every tenth request); the answer says who served it in the headers
  X-Model-Role and X-Model-Version.
- /metrics/stable and /metrics/canary: each server's own Prometheus metrics (what the analysis reads); an empty
  exposition while that role has no server, so a Prometheus scraping them stays up between canaries.
  `--print-scrape-config` prints the Prometheus scrape configuration that adds the `role` label to them, as the
  PodMonitor's relabelling does in the cluster.
- the control endpoint: GET /control/status; POST /control/stable {"version"} (start and health-check a new
  stable), /control/canary {"version", "weight"}, /control/weight {"weight"}, /control/promote (the canary
  becomes stable), /control/abort (the canary stops; the stable keeps serving). Bodies and answers are JSON.

`local_rollout` runs the policy's canary schedule against it: set_weight, the pause and the analysis of each step
(durations multiplied by the time scale), the analysis computed from the canary server's /metrics (p95 from the
histogram buckets of the window, errors / requests), or, given a Prometheus URL (`--prometheus`, PROMETHEUS_URL),
through the AnalysisTemplate's own PromQL and conditions (steps/_canary/analysis.py) over a time-scaled rate window.

Test-only fault knob: MLOPS_DEPLOY_CANARY_FAULT="latency_ms=300" or "error_rate=0.5" (or both, comma-separated)
starts canary servers through `python -m steps._canary.local.deploy faulty-serve`, which delays or fails that share of the
model's predictions inside the real server, so the server's own metrics show it (as a bad model would).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from steps._canary import analysis as _analysis
from steps._canary.outcome import Outcome
from steps._core.errors import StepError, TransientError, UsageError, ValidationFailed
from steps._core.policy import Policy, duration_seconds
from steps._storage.registry import Registry

DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"  # where `mlops deploy` listens unless told otherwise
READY_TIMEOUT_SECONDS = 120.0
FAULT_ENV = "MLOPS_DEPLOY_CANARY_FAULT"
ROLES = ("stable", "canary")
SCRAPE_INTERVAL = "1s"  # the local rate windows are a few seconds long (steps/_analysis.LOCAL_MIN_WINDOW_SECONDS)
_EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
# Locally a measurement lasts interval x time scale, and longer (up to the unscaled interval) while fewer than
# min_requests arrived: scaling shortens the wait as far as traffic allows, never below the evidence needed.
_SLICE_SECONDS = 0.1


class DeployError(StepError):
    exit_code = 2


class Unhealthy(DeployError):
    """A version's server exited or never became ready: a verdict on the version, not on the deployment."""


# --- the servers -----------------------------------------------------------------------------------------------


class ServerProcess:
    """One `python -m steps.serve` for one version, on a free port of 127.0.0.1."""

    def __init__(self, model: str, version: int, registry: str, role: str):
        self.model, self.version, self.role = model, version, role
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"mlops-deploy-{model}-v{version}-", suffix=".log",  # noqa: SIM115
                                               delete=False)
        module = ["steps.serve"]
        fault = os.environ.get(FAULT_ENV, "")
        if role == "canary" and fault:
            module = ["steps._canary.local.deploy", "faulty-serve", fault, "--"]
        command = [sys.executable, "-m", *module, "--model", f"{model}@{version}", "--registry", registry,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "MODEL_VERSION": str(version)})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unhealthy(f"{self.model} v{self.version} ({self.role}) exited with code "
                                  f"{self.process.returncode} before it was ready: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise Unhealthy(f"{self.model} v{self.version} ({self.role}) not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-600:].strip()
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "url": self.url, "pid": self.process.pid}


class Deployment:
    """The router's state: a stable and an optional canary server, and the canary's weight (0-100)."""

    def __init__(self, model: str, registry: str):
        self.model, self.registry = model, registry
        self.stable: ServerProcess | None = None
        self.canary: ServerProcess | None = None
        self.weight = 0
        self._credit = 0
        self.lock = threading.Lock()
        self.changes = threading.Lock()  # one control change at a time (starting a server takes seconds)

    def set_stable(self, version: int) -> dict[str, Any]:
        with self.changes:
            server = ServerProcess(self.model, version, self.registry, "stable")
            server.wait_ready()
            with self.lock:
                old, self.stable = self.stable, server
            if old:
                old.stop()
            return self.status()

    def set_canary(self, version: int, weight: int) -> dict[str, Any]:
        _check_weight(weight)
        with self.changes:
            if self.stable is None:
                raise DeployError("no stable version: POST /control/stable first")
            if self.canary is None or self.canary.version != version:
                server = ServerProcess(self.model, version, self.registry, "canary")
                server.wait_ready()
                with self.lock:
                    old, self.canary = self.canary, server
                if old:
                    old.stop()
            with self.lock:
                self.weight = weight
            return self.status()

    def set_weight(self, weight: int) -> dict[str, Any]:
        _check_weight(weight)
        with self.lock:
            if self.canary is None:
                raise DeployError("no canary to weigh: POST /control/canary first")
            self.weight = weight
        return self.status()

    def promote(self) -> dict[str, Any]:
        with self.changes:
            with self.lock:
                if self.canary is None:
                    raise DeployError("no canary to promote")
                old, self.stable, self.canary, self.weight = self.stable, self.canary, None, 0
                self.stable.role = "stable"
            if old:
                old.stop()
            return self.status()

    def abort(self) -> dict[str, Any]:
        with self.changes:
            with self.lock:
                old, self.canary, self.weight = self.canary, None, 0
            if old:
                old.stop()
            return self.status()

    def pick(self) -> ServerProcess | None:
        """Smooth weighted round robin: of every 100 requests, `weight` go to the canary, evenly spread."""
        with self.lock:
            if self.canary is not None and self.weight > 0:
                self._credit += self.weight
                if self._credit >= 100 or self.stable is None:
                    self._credit -= 100
                    return self.canary
            return self.stable

    def server(self, role: str) -> ServerProcess | None:
        return {"stable": self.stable, "canary": self.canary}.get(role)

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"model": self.model, "registry": self.registry, "weight": self.weight,
                    "stable": self.stable.describe() if self.stable else None,
                    "canary": self.canary.describe() if self.canary else None}

    def close(self) -> None:
        with self.lock:
            servers, self.stable, self.canary = [self.stable, self.canary], None, None
        for server in servers:
            if server:
                server.stop()


# --- the router ------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so closing the router also ends the keep-alive ones: a client that holds one
    (a Prometheus scraping /metrics/<role>) must not go on talking to a closed router's handler thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.connections: set[Any] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        import socket

        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # the handler thread's read ends; it closes the socket
            except OSError:
                pass


class Router:
    """The HTTP front of a Deployment, on one port."""

    def __init__(self, deployment: Deployment, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.deployment = deployment
        try:
            self.server = _Server((host, port), _handler(deployment))
        except OSError as err:
            raise DeployError(f"cannot listen on {host}:{port}: {err}") from err
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.thread: threading.Thread | None = None

    def start(self) -> Router:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.deployment.close()


def _handler(deployment: Deployment) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def send_json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def send_text(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def route(self, method: str) -> None:
            path = urllib.parse.urlsplit(self.path).path
            raw = self.body() if method == "POST" else b""
            try:
                if path.startswith("/control"):
                    return self.control(method, path, raw)
                if path.startswith("/metrics/") and method == "GET":
                    role = path.rsplit("/", 1)[-1]
                    if role not in ROLES:
                        return self.send_json(404, {"error": f"no role {role!r}: /metrics/stable or /metrics/canary"})
                    server = deployment.server(role)
                    if server is None:
                        # No series rather than an error: the scrape stays up and the old series go stale.
                        return self.send_text(200, b"", _EXPOSITION)
                    return self.forward(server, "GET", "/metrics", b"")
                if path.startswith(("/v1/", "/v2/")):
                    server = deployment.pick()
                    if server is None:
                        return self.send_json(503, {"error": "no stable version deployed yet"})
                    return self.forward(server, method, self.path, raw)
                self.send_json(404, {"error": f"no route {method} {path}"})
            except Unhealthy as err:
                self.send_json(422, {"error": str(err), "rule": "unhealthy"})
            except DeployError as err:
                self.send_json(409, {"error": str(err)})

        def control(self, method: str, path: str, raw: bytes) -> None:
            if method == "GET" and path == "/control/status":
                return self.send_json(200, deployment.status())
            if method != "POST":
                return self.send_json(405, {"error": f"{method} {path}: use POST"})
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self.send_json(400, {"error": "body: not JSON"})
            if not isinstance(body, dict):
                return self.send_json(400, {"error": "body: must be a JSON object"})
            if path == "/control/stable":
                return self.send_json(200, deployment.set_stable(_int(body, "version")))
            if path == "/control/canary":
                return self.send_json(200, deployment.set_canary(_int(body, "version"), _int(body, "weight")))
            if path == "/control/weight":
                return self.send_json(200, deployment.set_weight(_int(body, "weight")))
            if path == "/control/promote":
                return self.send_json(200, deployment.promote())
            if path == "/control/abort":
                return self.send_json(200, deployment.abort())
            self.send_json(404, {"error": f"no control route {path}"})

        def forward(self, server: ServerProcess, method: str, path: str, raw: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                conn.request(method, path, body=raw if method == "POST" else None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            except OSError as err:
                return self.send_json(502, {"error": f"{server.role} v{server.version} unreachable: {err}"})
            finally:
                conn.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Model-Role", server.role)
            self.send_header("X-Model-Version", str(server.version))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise DeployError(f"{key}: required, a whole number, got {value!r}")
    return int(value)


def _check_weight(weight: int) -> None:
    if not 0 <= weight <= 100:
        raise DeployError(f"weight: must be 0-100, got {weight}")


# --- a client of the control endpoint --------------------------------------------------------------------------


class DeployClient:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/control/status")

    def set_stable(self, version: int) -> dict[str, Any]:
        return self._call("POST", "/control/stable", {"version": version})

    def set_canary(self, version: int, weight: int) -> dict[str, Any]:
        return self._call("POST", "/control/canary", {"version": version, "weight": weight})

    def promote(self) -> dict[str, Any]:
        return self._call("POST", "/control/promote", {})

    def abort(self) -> dict[str, Any]:
        return self._call("POST", "/control/abort", {})

    def metrics(self, role: str) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics/{role}", timeout=10) as answer:
            return str(answer.read().decode())

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=READY_TIMEOUT_SECONDS + 10) as answer:
                result: dict[str, Any] = json.loads(answer.read())
                return result
        except urllib.error.HTTPError as err:
            kind = Unhealthy if err.code == 422 else DeployError
            raise kind(f"local deployment {method} {path}: HTTP {err.code}: "
                       f"{err.read().decode(errors='replace')[:600]}") from err
        except (urllib.error.URLError, OSError) as err:
            raise TransientError(f"local deployment {self.url} unreachable ({method} {path}): {err}") from err


def reachable(url: str) -> bool:
    try:
        DeployClient(url).status()
    except StepError:
        return False
    return True


# --- metrics and the analysis ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count), sorted


def parse_metrics(text: str) -> Snapshot:
    """Sum the server's series over their labels: model_requests_total, model_inference_errors_total and the
    model_inference_duration_seconds histogram's buckets."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value_text = line.rpartition(" ")
        try:
            value = float(value_text)
        except ValueError:
            continue
        name, _, labels = name_labels.partition("{")
        if name == "model_requests_total":
            requests += value
        elif name == "model_inference_errors_total":
            errors += value
        elif name == "model_inference_duration_seconds_bucket":
            le = _label(labels, "le")
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
    return Snapshot(requests, errors, tuple(sorted(buckets.items())))


def _label(labels: str, key: str) -> str:
    for part in labels.rstrip("}").split(","):
        k, _, v = part.partition("=")
        if k.strip() == key:
            return v.strip().strip('"')
    return ""


def quantile(q: float, before: Snapshot, after: Snapshot) -> float:
    """histogram_quantile over the window between two snapshots (linear within a bucket, as Prometheus does)."""
    earlier = dict(before.buckets)
    counts = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after.buckets]
    if not counts or counts[-1][1] <= 0:
        return math.nan
    rank = q * counts[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # Prometheus answers the highest finite bound
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 0.0)
        lower, below = bound, cumulative
    return lower


@dataclass
class Measurement:
    phase: str  # Successful | Failed | Inconclusive
    requests: float
    latency_p95_ms: float
    error_ratio: float
    window_seconds: float
    source: str = "/metrics"  # or "prometheus <url> [<rate window>]"
    # Through Prometheus: each AnalysisTemplate metric's own phase, {"latency-p95-ms": ..., "error-ratio": ...}.
    metrics: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{self.phase}: {self.requests:.0f} requests, p95 {self.latency_p95_ms:.1f} ms, error ratio "
                f"{self.error_ratio:.4f} over {self.window_seconds:.1f}s from {self.source}")


def judge(policy: Policy, before: Snapshot, after: Snapshot, window: float) -> Measurement:
    a = policy.canary.analysis
    requests = after.requests - before.requests
    errors = after.errors - before.errors
    p95_ms = quantile(0.95, before, after) * 1000
    ratio = errors / requests if requests > 0 else math.nan
    if requests < max(a.min_requests, 1) or math.isnan(ratio):
        phase = "Inconclusive"
    elif (not math.isnan(p95_ms) and p95_ms > a.latency_p95_ms) or ratio > a.error_ratio:
        phase = "Failed"
    else:
        phase = "Successful"
    return Measurement(phase, requests, p95_ms, ratio, window)


def measure(client: DeployClient, policy: Policy, window: float, longest: float) -> Measurement:
    """One measurement of the canary: its metrics now and after `window` seconds (longer, up to `longest`, while
    fewer than min_requests arrived)."""
    before = parse_metrics(client.metrics("canary"))
    started = time.monotonic()
    time.sleep(window)
    while True:
        after = parse_metrics(client.metrics("canary"))
        elapsed = time.monotonic() - started
        if after.requests - before.requests >= policy.canary.analysis.min_requests or elapsed >= longest:
            return judge(policy, before, after, elapsed)
        time.sleep(_SLICE_SECONDS)


def measure_prometheus(prometheus: _analysis.Prometheus, policy: Policy, window: float, longest: float,
                       scale: float) -> Measurement:
    """One measurement through Prometheus, after `window` seconds: the AnalysisTemplate's queries over the
    time-scaled rate window, judged by its conditions. While that is Inconclusive (too few requests yet, or the
    last scrape not in), it is asked again over the time since the measurement began, up to `longest`."""
    rate_window = _analysis.window_seconds(policy, scale)
    started = time.monotonic()
    time.sleep(window)
    while True:
        elapsed = time.monotonic() - started
        reading = prometheus.read(policy, max(rate_window, round(elapsed)))
        if reading.phase != "Inconclusive" or elapsed >= longest:
            return Measurement(reading.phase, reading.requests, reading.latency_p95_ms, reading.error_ratio,
                               elapsed, f"prometheus {prometheus.url} [{reading.window}]",
                               {"latency-p95-ms": reading.latency_phase, "error-ratio": reading.error_phase})
        time.sleep(1.0)  # a scrape interval of the printed scrape configuration


def analyse(client: DeployClient, policy: Policy, scale: float, say: Any,
            prometheus: _analysis.Prometheus | None = None) -> tuple[bool, list[Measurement], str]:
    """One analysis run: `count` measurements (from the canary's /metrics, or through Prometheus when given);
    more than failure_limit failures fails it, more than inconclusive_limit inconclusive ones leaves it
    undecided (Argo pauses for a person). Returns (passed, measurements, 'failed' | 'inconclusive' | 'successful')."""
    a = policy.canary.analysis
    interval = duration_seconds(a.interval)
    results: list[Measurement] = []
    for _ in range(a.count):
        wait, longest = max(interval * scale, 0.2), max(interval, 1.0)
        if prometheus is not None:
            result = measure_prometheus(prometheus, policy, wait, longest, scale)
        else:
            result = measure(client, policy, wait, longest)
        say(f"rollout: canary measurement {len(results) + 1}/{a.count}: {result.describe()}")
        results.append(result)
        failed = sum(r.phase == "Failed" for r in results)
        inconclusive = sum(r.phase == "Inconclusive" for r in results)
        if failed > a.failure_limit:
            return False, results, "failed"
        if inconclusive > a.inconclusive_limit:
            return False, results, "inconclusive"
    return True, results, "successful"


# --- the local rollout -----------------------------------------------------------------------------------------


class Replay:
    """Traffic for a deployment nobody else uses: rows of a dataset, one per request, in a loop, on a thread."""

    def __init__(self, url: str, model: str, rows: list[dict[str, Any]]):
        self.url, self.model, self.rows = url, model, rows
        self.stop_event = threading.Event()
        self.sent = 0
        self.codes: dict[int, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        path = f"/v1/models/{self.model}:predict"
        i = 0
        while not self.stop_event.is_set():
            body = json.dumps({"instances": [self.rows[i % len(self.rows)]]})
            i += 1
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                self.codes[answer.status] = self.codes.get(answer.status, 0) + 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
                time.sleep(0.05)
            self.sent += 1


def replay_rows(policy: Policy, dataset: str | None, limit: int = 2000) -> list[dict[str, Any]]:
    """Rows to replay, the contract's features only: from `dataset`, else generated."""
    from steps._core.data import generate, read_dataset

    if dataset:
        frame = read_dataset(dataset).frame
    else:
        frame = generate(limit, seed=0)
    names = [f for f in policy.data.feature_names if f in frame.columns]
    if not names:
        raise UsageError(f"--dataset {dataset}: has none of {policy.model_name}'s features")
    frame = frame[names].head(limit)
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows


def local_rollout(model: str, version: int, registry: Registry, policy: Policy, *, time_scale: float = 1.0,
                  deploy_url: str | None = None, dataset: str | None = None, prometheus_url: str | None = None,
                  say: Any = print) -> Any:
    """Drive a local deployment through the canary schedule; returns its Outcome. With
    `prometheus_url`, each analysis runs the AnalysisTemplate's queries there (it must scrape the deployment:
    `mlops deploy --print-scrape-config`)."""
    prometheus = _analysis.Prometheus(prometheus_url) if prometheus_url else None
    production = registry.production(model)
    owned: Router | None = None
    url = deploy_url or DEFAULT_URL
    found = DeployClient(url).status().get("model") if reachable(url) else None
    if found == model:
        client = DeployClient(url)
        say(f"rollout: using the local deployment at {url}")
    elif found is not None and deploy_url:
        raise UsageError(f"--deploy-url {deploy_url}: that local deployment serves {found!r}, not {model!r}")
    else:
        # Through Prometheus, the deployment must be where the scrape configuration points: the URL's own port.
        port = _loopback_port(url) if prometheus is not None and found is None else 0
        say(f"rollout: no local deployment of {model} at {url}; starting one for this rollout"
            + (f" on port {port}, where Prometheus scrapes it" if port else ""))
        owned = Router(Deployment(model, registry.location), port=port).start()
        client = DeployClient(owned.url)
    try:
        if production is None:
            try:
                client.set_stable(version)  # starts it and waits for /v1/health/ready
            except Unhealthy as err:
                return Outcome(False, f"first version failed its health check: {err}",
                               {"target": "local", "health_check": "failed"})
            return Outcome(True, "first version: healthy on the local deployment (no production to compare with)",
                           {"target": "local", "health_check": "passed"})
        if client.status().get("stable") is None:
            client.set_stable(production)
        replay = Replay(client.url, model, replay_rows(policy, dataset)) if owned or dataset else None
        if replay:
            replay.__enter__()
        try:
            if prometheus is not None:
                say(f"rollout: the canary analysis runs the AnalysisTemplate's queries on {prometheus.url} "
                    f"(rate window {_analysis.window(policy, _analysis.window_seconds(policy, time_scale))})")
            return _canary(client, model, version, policy, time_scale, say, prometheus)
        finally:
            if replay:
                replay.__exit__()
    finally:
        if owned:
            owned.close()


def _loopback_port(url: str) -> int:
    """The port of a loopback URL (a router this process can listen as), else 0 (any free port)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return 0
    try:
        return parts.port or 0
    except ValueError as err:
        raise UsageError(f"--deploy-url {url}: not a port: {err}") from err


def _canary(client: DeployClient, model: str, version: int, policy: Policy, scale: float, say: Any,
            prometheus: _analysis.Prometheus | None = None) -> Any:
    analyses: list[dict[str, Any]] = []
    try:
        for number, step in enumerate(policy.canary.steps, 1):
            if step.set_weight >= 100:
                break
            try:
                client.set_canary(version, step.set_weight)
            except Unhealthy as err:
                return Outcome(False, f"canary never became healthy: {err}", {"target": "local", "analysis": analyses})
            say(f"rollout: step {number}: canary v{version} at weight {step.set_weight}")
            if step.pause:
                time.sleep(duration_seconds(step.pause) * scale)
            if step.analysis:
                passed, results, verdict = analyse(client, policy, scale, say, prometheus)
                analyses.append({"step": number, "weight": step.set_weight, "verdict": verdict,
                                 "measurements": [r.__dict__ for r in results]})
                if not passed:
                    client.abort()
                    worst = next((r for r in results if r.phase == "Failed"), results[-1])
                    reason = _reason(policy, verdict, step.set_weight, worst)
                    if verdict == "inconclusive":
                        raise ValidationFailed(f"{model} v{version}: {reason}; the canary was aborted, the version "
                                               "stays canary (send traffic and run the rollout again)")
                    return Outcome(False, reason, {"target": "local", "analysis": analyses})
    except BaseException:
        try:
            client.abort()  # whatever happened, the stable version keeps serving alone
        except StepError:
            pass
        raise
    client.promote()
    return Outcome(True, f"local canary passed {len(analyses)} analyses; v{version} now serves all traffic",
                   {"target": "local", "analysis": analyses})


def _reason(policy: Policy, verdict: str, weight: int, m: Measurement) -> str:
    a = policy.canary.analysis
    if verdict == "inconclusive":
        where = ""
        if m.source.startswith("prometheus"):
            where = (f" in {m.source} (does it scrape the deployment's /metrics/canary with role=\"canary\"? "
                     "see `mlops deploy --print-scrape-config`)")
        return (f"canary analysis inconclusive at weight {weight}: fewer than {a.min_requests} requests per "
                f"window{where}")
    broken = []
    if not math.isnan(m.latency_p95_ms) and m.latency_p95_ms > a.latency_p95_ms:
        broken.append(f"latency p95 {m.latency_p95_ms:.1f} ms > {a.latency_p95_ms:g} ms")
    if m.error_ratio > a.error_ratio:
        broken.append(f"error ratio {m.error_ratio:.4f} > {a.error_ratio:g}")
    return (f"canary analysis failed at weight {weight}: {', '.join(broken)} "
            f"({m.requests:.0f} requests, from {m.source}); rolled back, the stable version kept serving")


# --- commands --------------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_config(target: str) -> dict[str, Any]:
    """A Prometheus configuration scraping the router at `target` (host:port): /metrics/stable and
    /metrics/canary, each with its `role` label (the servers add `model` and `model_version` themselves), so the
    AnalysisTemplate's selectors find the canary as they do in the cluster."""
    return {"scrape_configs": [
        {"job_name": f"mlops-deploy-{role}", "scrape_interval": SCRAPE_INTERVAL, "metrics_path": f"/metrics/{role}",
         "static_configs": [{"targets": [target], "labels": {_analysis.ROLE_LABEL: role}}]}
        for role in ROLES
    ]}


def scrape_config_text(target: str) -> str:
    import yaml

    return (f"# Prometheus scrape configuration for `mlops deploy` at {target}: use it as prometheus.yml, or add\n"
            "# these jobs to yours; then `PROMETHEUS_URL=http://<prometheus> python -m steps.rollout --target local`\n"
            "# judges the canary with the AnalysisTemplate's own queries.\n"
            + yaml.safe_dump(scrape_config(target), sort_keys=False))


def deploy_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlops deploy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="the model (default: the only policy in gates/)")
    p.add_argument("--registry", default=None, help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--print-scrape-config", action="store_true",
                   help="print the Prometheus scrape configuration for this --host/--port and exit")
    args = p.parse_args(argv)
    if args.print_scrape_config:
        # A wildcard listen address is not an address to scrape: the router also answers on loopback.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host
        print(scrape_config_text(f"{host}:{args.port}"), end="")
        return 0

    def body() -> int:
        model = args.model or _only_model()
        registry = Registry.open(args.registry or None)
        router = Router(Deployment(model, registry.location), args.host, args.port)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            router.start()
            production = registry.production(model)
            if production is not None:
                router.deployment.set_stable(production)
            print(f"mlops deploy: {model} on {router.url} (stable: "
                  f"{f'v{production}' if production is not None else 'none yet'}); control: {router.url}/control/status",
                  flush=True)
            print(f"mlops deploy: for a Prometheus to scrape it: mlops deploy --print-scrape-config --host {args.host} "
                  f"--port {router.port}", flush=True)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            router.close()
        return 0

    from steps._core.errors import run

    return run("mlops deploy", body)


def _only_model() -> str:
    names = sorted(p.stem for p in Path("gates").glob("*.yaml"))
    if len(names) != 1:
        raise UsageError(f"{len(names)} policies in gates/: choose one with --model ({', '.join(names) or 'none'})")
    return names[0]


def faulty_serve_main(argv: list[str]) -> int:
    """Test-only: `faulty-serve latency_ms=X,error_rate=Y -- <steps.serve args>`: the real server, with that
    delay and that share of failures in the model's predictions after its warm-up."""
    spec, _, rest = argv[0], argv[1], argv[2:]
    faults = dict(part.split("=", 1) for part in spec.split(",") if part)
    latency = float(faults.get("latency_ms", 0)) / 1000
    error_rate = float(faults.get("error_rate", 0))
    from steps import serve
    from steps._serving import http as _server

    original_load, original_warm_up = serve.load_model, _server.warm_up
    armed = threading.Event()

    def warm_up(model: Any) -> Any:
        result = original_warm_up(model)
        armed.set()
        return result

    def load_model(*args: Any, **kwargs: Any) -> Any:
        model = original_load(*args, **kwargs)
        inner = model.predictor

        class Faulty:
            kind = inner.kind

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def predict(self, rows: Any) -> list[float]:
                if armed.is_set():
                    time.sleep(latency)
                    if random.random() < error_rate:
                        raise RuntimeError("injected fault (MLOPS_DEPLOY_CANARY_FAULT)")
                return inner.predict(rows)  # type: ignore[no-any-return]

        import dataclasses

        return dataclasses.replace(model, predictor=Faulty())

    _server.warm_up = warm_up
    serve.load_model = load_model
    return serve.main(rest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "faulty-serve":
        return faulty_serve_main(argv[1:])
    return deploy_main(argv)


if __name__ == "__main__":
    sys.exit(main())
