"""The local deployment's HTTP front on one port, as a Service before Argo Rollouts' two ReplicaSets:
- /v1/... and /v2/... (predict, infer, health, metadata) go to the stable or the canary server by weight (a
  smooth weighted round robin, so 10% means every tenth request); the answer says who served it in the headers
  X-Model-Role and X-Model-Version.
- /metrics/stable and /metrics/canary: each server's own Prometheus metrics (what the analysis reads); an empty
  exposition while that role has no server, so a Prometheus scraping them stays up between canaries.
- the control endpoint, for a caller with the router's bearer token only (steps._canary.local.auth; 401
  otherwise): GET /control/status; POST /control/stable {"version"} (start and health-check a new stable),
  /control/canary {"version", "weight"}, /control/weight {"weight"}, /control/promote (the canary becomes stable),
  /control/abort (the canary stops; the stable keeps serving). Bodies and answers are JSON.
Requests are read by steps._canary.local.transport (HTTP/1.1 framing as the model servers read it, limits,
timeouts): a request hidden in a body never reaches a route.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import threading
from pathlib import Path
from typing import Any

from steps._canary.local import auth
from steps._canary.local.deployment import ROLES, Deployment
from steps._canary.local.servers import DeployError, ServerProcess, Unhealthy
from steps._canary.local.transport import Limits, Request, Response, Server, json_response
from steps._storage.registry import VersionNotFound, parse_version

DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"  # where `mlops deploy` listens unless told otherwise
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
UPSTREAM_SECONDS = 30.0  # to connect to a model server and to read its answer: 504 after it
# Hop-by-hop headers (RFC 9110 7.6.1) and the framing the transport writes itself: never passed through.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
                "proxy-authorization", "proxy-authenticate", "content-length", "host", "expect"}


class Router:
    """The HTTP front of a Deployment, on one port. Its control token is made when it is created; `start` keeps it
    in auth.token_path(port) while it runs (unless `publish_token` is false: then only this process knows it)."""

    def __init__(self, deployment: Deployment, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 publish_token: bool = True, limits: Limits | None = None):
        self.deployment = deployment
        self.token = auth.new_token()
        try:
            self.server = Server((host, port), self.handle, limits or Limits())
        except OSError as err:
            raise DeployError(f"cannot listen on {host}:{port}: {err}") from err
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.publish_token = publish_token
        self.token_file: Path | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Router:
        if self.publish_token:
            self.token_file = auth.publish(self.port, self.token)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), name="router", daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop listening, end the open connections, stop the servers (together), withdraw the token."""
        if self.thread is not None:
            self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        if self.token_file is not None:
            auth.withdraw(self.token_file, self.token)
        self.deployment.close()

    def handle(self, request: Request) -> Response:
        path = request.path
        try:
            if path.startswith("/control"):
                if not auth.authorized(request.values("authorization"), self.token):
                    return self._unauthorized()
                return self._control(request.method, path, request.body)
            if path.startswith("/metrics/") and request.method == "GET":
                role = path.rsplit("/", 1)[-1]
                if role not in ROLES:
                    return json_response(404, {"error": f"no role {role!r}: /metrics/stable or /metrics/canary"})
                server = self.deployment.server(role)
                if server is None:
                    # No series rather than an error: the scrape stays up and the old series go stale.
                    return Response(200, b"", [("Content-Type", EXPOSITION)])
                return forward(server, dataclasses.replace(request, target="/metrics", body=b""))
            if path.startswith(("/v1/", "/v2/")):
                server = self.deployment.pick()
                if server is None:
                    return json_response(503, {"error": "no stable version deployed yet"})
                return forward(server, request)
            return json_response(404, {"error": f"no route {request.method} {path}"})
        except Unhealthy as err:
            return json_response(422, {"error": str(err), "rule": "unhealthy"})
        except DeployError as err:
            return json_response(409, {"error": str(err)})

    def _unauthorized(self) -> Response:
        where = (f"`mlops deploy` keeps it in {self.token_file}" if self.token_file
                 else "the token of the process that started this router")
        return json_response(401, {"error": f"the control endpoint needs Authorization: Bearer <token>: {where}",
                                   "rule": "control token"},
                             [("WWW-Authenticate", 'Bearer realm="mlops deploy"')])

    def _control(self, method: str, path: str, raw: bytes) -> Response:
        deployment = self.deployment
        if method == "GET" and path == "/control/status":
            return json_response(200, deployment.status())
        if method != "POST":
            return json_response(405, {"error": f"{method} {path}: use POST"})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return json_response(400, {"error": "body: not JSON"})
        if not isinstance(body, dict):
            return json_response(400, {"error": "body: must be a JSON object"})
        if path == "/control/stable":
            return json_response(200, deployment.set_stable(_version(body)))
        if path == "/control/canary":
            return json_response(200, deployment.set_canary(_version(body), _int(body, "weight")))
        if path == "/control/weight":
            return json_response(200, deployment.set_weight(_int(body, "weight")))
        if path == "/control/promote":
            return json_response(200, deployment.promote())
        if path == "/control/abort":
            return json_response(200, deployment.abort())
        return json_response(404, {"error": f"no control route {path}"})


def forward(server: ServerProcess, request: Request) -> Response:
    """`request` to `server`, as a Service passes it to a pod: every end-to-end header, the body re-framed by its
    length; the answer says who served it (X-Model-Role, X-Model-Version). Unreachable: 502; too slow: 504."""
    named = {token.strip().lower() for value in request.values("connection") for token in value.split(",")}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=UPSTREAM_SECONDS)
    try:
        conn.putrequest(request.method, request.origin, skip_accept_encoding=True)
        for name, value in request.headers:
            if name not in _HOP_HEADERS and name not in named:
                conn.putheader(name, value)
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(request.body)))
        conn.endheaders(request.body or None)
        answer = conn.getresponse()
        data = answer.read()
    except TimeoutError as err:
        return json_response(504, {"error": f"{server.role} v{server.version} did not answer within "
                                            f"{UPSTREAM_SECONDS:g} s: {err}", "rule": "upstream timeout"})
    except (OSError, http.client.HTTPException) as err:
        return json_response(502, {"error": f"{server.role} v{server.version} unreachable: {err}",
                                   "rule": "upstream"})
    finally:
        conn.close()
    headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_HEADERS]
    headers += [("X-Model-Role", server.role), ("X-Model-Version", str(server.version))]
    length = answer.getheader("Content-Length")
    return Response(answer.status, data, headers, length=int(length) if length and length.isdigit() else None)


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
