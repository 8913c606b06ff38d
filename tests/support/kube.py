"""A small fake Kubernetes API for the tests of the Kubernetes adapter and the rollout step: a real HTTP server on
127.0.0.1 that answers GET/PATCH for one Rollout (moving its status as the Argo Rollouts controller would) and lists
AnalysisRuns. There is no API server here; this one speaks the same HTTP, paths, verbs and content types."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from steps._canary.kubernetes import GROUP_PATH, MERGE_PATCH, merge_patch
from tests.support.processes import free_port

TOKEN = "test-token-123"
NAMESPACE = "mlops"
ABORT_MESSAGE = ('RolloutAborted: Rollout aborted update to revision 2: Metric "latency-p95-ms" assessed Failed due '
                 "to failed (2) > failureLimit (1)")


class FakeKubeAPI:
    """One namespace with one Rollout. After each PATCH, GETs walk the status through `script`
    (a list of status dicts; the last one stays), as the controller moves the Rollout."""

    def __init__(self, rollout: dict[str, Any], script: list[dict[str, Any]] | None = None,
                 analysis_runs: list[dict[str, Any]] | None = None, fail_with: int | None = None):
        self.rollout = copy.deepcopy(rollout)
        self.rollout.setdefault("metadata", {}).update(namespace=NAMESPACE, generation=1)
        self.rollout["status"] = {"phase": "Healthy", "observedGeneration": "1"}
        self.script = script or []
        self.analysis_runs = analysis_runs or []
        self.fail_with = fail_with
        self.patches: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._step = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rollout_path(self, name: str) -> str:
        return f"{GROUP_PATH}/namespaces/{NAMESPACE}/rollouts/{name}"

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _advance(self) -> None:
        if self.patches and self.script:
            status = self.script[min(self._step, len(self.script) - 1)]
            self._step += 1
            generation = self.rollout["metadata"]["generation"]
            self.rollout["status"] = {"observedGeneration": str(generation), **status}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def status(self, code: int, message: str) -> None:
                self.answer(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                   "code": code})

            def check(self) -> bool:
                api.requests.append((self.command, self.path, dict(self.headers)))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.status(401, "Unauthorized")
                    return False
                if api.fail_with:
                    self.status(api.fail_with, "the server is busy")
                    return False
                return True

            def do_GET(self) -> None:
                if not self.check():
                    return
                name = api.rollout["metadata"]["name"]
                with api.lock:
                    if self.path == api.rollout_path(name):
                        api._advance()
                        return self.answer(200, api.rollout)
                    if self.path == f"{GROUP_PATH}/namespaces/{NAMESPACE}/analysisruns":
                        return self.answer(200, {"kind": "AnalysisRunList", "items": api.analysis_runs})
                self.status(404, f'rollouts.argoproj.io "{self.path.rsplit("/", 1)[-1]}" not found')

            def do_PATCH(self) -> None:
                if not self.check():
                    return
                if self.headers.get("Content-Type") != MERGE_PATCH:
                    return self.status(415, f"unsupported media type {self.headers.get('Content-Type')}")
                name = api.rollout["metadata"]["name"]
                if self.path != api.rollout_path(name):
                    return self.status(404, f'rollouts.argoproj.io "{self.path.rsplit("/", 1)[-1]}" not found')
                patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    api.patches.append(patch)
                    before = copy.deepcopy(api.rollout.get("spec"))
                    api.rollout = merge_patch(api.rollout, patch)
                    if api.rollout.get("spec") != before:  # the API server bumps generation on spec changes only
                        api.rollout["metadata"]["generation"] += 1
                    self.answer(200, api.rollout)

        return Handler


def rollout_object(name: str = "churn-model-server") -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
            "spec": {"replicas": 5, "template": {"metadata": {"labels": {"app": name}}}}}


def analysis_run(name: str, owner: str, created: str, phase: str, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": created,
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": owner,
                                              "uid": "u1"}]},
            "status": {"phase": phase, "metricResults": metrics}}
