"""A client of the local deployment's control endpoint and metrics (what the rollout step's local target uses)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from steps._canary.local.deployment import Status
from steps._canary.local.servers import READY_TIMEOUT_SECONDS, DeployError, Unhealthy
from steps._core.errors import StepError, TransientError
from steps._core.prometheus import read_page


class DeployClient:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def status(self) -> Status:
        return self._call("GET", "/control/status")

    def set_stable(self, version: int) -> Status:
        return self._call("POST", "/control/stable", {"version": version})

    def set_canary(self, version: int, weight: int) -> Status:
        return self._call("POST", "/control/canary", {"version": version, "weight": weight})

    def promote(self) -> Status:
        return self._call("POST", "/control/promote", {})

    def abort(self) -> Status:
        return self._call("POST", "/control/abort", {})

    def metrics(self, role: str) -> str:
        """The exposition of the `role` server (empty while there is none)."""
        return read_page(f"{self.url}/metrics/{role}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Status:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            # A change may start a server and wait for it to be ready: the answer can take that long.
            with urllib.request.urlopen(request, timeout=READY_TIMEOUT_SECONDS + 10) as answer:
                result: Status = json.loads(answer.read())
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
