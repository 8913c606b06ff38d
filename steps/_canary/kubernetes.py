"""The one small Kubernetes adapter the rollout step needs: get and merge-patch an Argo Rollout, list AnalysisRuns.

Plain HTTPS with urllib, no client library: a pod's service account gives the API address
(KUBERNETES_SERVICE_HOST/PORT), a bearer token and the cluster CA under
/var/run/secrets/kubernetes.io/serviceaccount. Outside a pod (and in tests, against a small fake API server)
MLOPS_KUBE_API, MLOPS_KUBE_TOKEN and MLOPS_KUBE_CA override them.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from steps._core.errors import TransientError, UsageError

# The model's Argo Rollout and the pod-template annotation that pins its version: the rollout step patches them,
# workflows/serving.py renders them (its init container reads the annotation through the downward API).
VERSION_ANNOTATION = "model-version"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
GROUP_PATH = "/apis/argoproj.io/v1alpha1"
MERGE_PATCH = "application/merge-patch+json"
# 429 and 5xx are the API server being busy or restarting: the step exits 3 and the workflow retries it.
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def server_name(model: str) -> str:
    """The model's Rollout (and Service): `<model>-server`."""
    return f"{model}-server"


class KubeError(UsageError):
    """The API refused the request (not found, forbidden, invalid): retrying will not help."""


class KubeClient:
    """Rollouts and AnalysisRuns of one namespace."""

    def __init__(self, base_url: str, token: str | None, namespace: str, ca_file: str | None = None,
                 timeout: float = 15.0):
        if not base_url.startswith(("https://", "http://")):
            raise UsageError(f"Kubernetes API address {base_url!r}: must start with https:// or http://")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self.base_url.startswith("https://"):
            self._context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()

    @classmethod
    def from_environment(cls, namespace: str | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeClient:
        """In-cluster configuration, with MLOPS_KUBE_API / MLOPS_KUBE_TOKEN / MLOPS_KUBE_CA taking precedence."""
        base = os.environ.get("MLOPS_KUBE_API")
        if not base:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise UsageError(
                    "no Kubernetes API: not in a pod (KUBERNETES_SERVICE_HOST unset) and MLOPS_KUBE_API not set"
                )
            base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        token = os.environ.get("MLOPS_KUBE_TOKEN") or _read(sa_dir / "token")
        ca = os.environ.get("MLOPS_KUBE_CA") or (str(sa_dir / "ca.crt") if (sa_dir / "ca.crt").is_file() else None)
        ns = namespace or os.environ.get("MLOPS_NAMESPACE") or _read(sa_dir / "namespace") or "default"
        return cls(base, token, ns.strip(), ca_file=ca)

    def rollout_path(self, name: str) -> str:
        return f"{GROUP_PATH}/namespaces/{quote(self.namespace)}/rollouts/{quote(name)}"

    def get_rollout(self, name: str) -> dict[str, Any]:
        return self._request("GET", self.rollout_path(name))

    def patch_rollout(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386): only the fields in `patch` change."""
        return self._request("PATCH", self.rollout_path(name), patch)

    def analysis_runs(self, rollout: str) -> list[dict[str, Any]]:
        """The AnalysisRuns the Rollout `rollout` owns, newest first."""
        found = self._request("GET", f"{GROUP_PATH}/namespaces/{quote(self.namespace)}/analysisruns")
        runs = [
            run for run in found.get("items") or []
            if any(o.get("kind") == "Rollout" and o.get("name") == rollout
                   for o in (run.get("metadata") or {}).get("ownerReferences") or [])
        ]
        return sorted(runs, key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = MERGE_PATCH
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _status_message(err.read())
            what = f"{method} {path}: HTTP {err.code}{': ' + detail if detail else ''}"
            if err.code in _TRANSIENT_STATUS:
                raise TransientError(f"Kubernetes API {what}") from err
            raise KubeError(f"Kubernetes API {what}") from err
        except (urllib.error.URLError, OSError) as err:
            raise TransientError(f"Kubernetes API {self.base_url} unreachable ({method} {path}): {err}") from err
        try:
            result = json.loads(raw)
        except ValueError as err:
            raise TransientError(f"Kubernetes API {method} {path}: answer is not JSON") from err
        if not isinstance(result, dict):
            raise KubeError(f"Kubernetes API {method} {path}: answer is not a JSON object")
        return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it (used by tests and the fake API server)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _status_message(raw: bytes) -> str:
    """The `message` of a Kubernetes Status object, else the start of the body."""
    try:
        status = json.loads(raw)
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    except ValueError:
        pass
    return raw[:200].decode("utf-8", "replace").strip()
