"""The local deployment's HTTP front on one port, as a Service before Argo Rollouts' two ReplicaSets:
- /v1/... and /v2/... (predict, infer, health, metadata) go to the stable or the canary server by weight (a
  smooth weighted round robin, so 10% means every tenth request); the answer says who served it in the headers
  X-Model-Role and X-Model-Version.
- /metrics/stable and /metrics/canary: each server's own Prometheus metrics (what the analysis reads); an empty
  exposition while that role has no server, so a Prometheus scraping them stays up between canaries.
- the control endpoint: GET /control/status; POST /control/stable {"version"} (start and health-check a new
  stable), /control/canary {"version", "weight"}, /control/weight {"weight"}, /control/promote (the canary
  becomes stable), /control/abort (the canary stops; the stable keeps serving). Bodies and answers are JSON.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import urllib.parse
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from steps._canary.local.deployment import ROLES, Deployment
from steps._canary.local.servers import DeployError, ServerProcess, Unhealthy
from steps._storage.registry import VersionNotFound, parse_version

DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"  # where `mlops deploy` listens unless told otherwise
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so closing the router also ends the keep-alive ones: a client that holds one
    (a Prometheus scraping /metrics/<role>) must not go on talking to a closed router's handler thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.connections: set[socket.socket] = set()
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
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # the handler thread's read ends; it closes the socket


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
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), name="router", daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop listening, end the open connections, stop the servers (together)."""
        if self.thread is not None:
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
                        return self.send_text(200, b"", EXPOSITION)
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
                return self.send_json(200, deployment.set_stable(_version(body)))
            if path == "/control/canary":
                return self.send_json(200, deployment.set_canary(_version(body), _int(body, "weight")))
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
    if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"[0-9]+", str(value)):
        raise DeployError(f"{key}: required, a whole number, got {value!r}")
    return int(value)


def _version(body: dict[str, Any]) -> int:
    """A version number in the registry's grammar (ASCII digits, from 1)."""
    try:
        version = parse_version(_int(body, "version"))
    except VersionNotFound as err:
        raise DeployError(str(err)) from err  # "version 0: versions start at 1"
    if isinstance(version, str):  # only a named version (production, ...) parses to a str: not from an int
        raise DeployError(f"version: required, a whole number, got {version!r}")
    return version
