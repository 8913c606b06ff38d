"""The local deployment's state: a stable and an optional canary server and the canary's weight, changed one
control request at a time, as Argo Rollouts moves a stable and a canary ReplicaSet behind one Service."""

from __future__ import annotations

import threading
from typing import TypedDict

from steps._canary.local.servers import DeployError, ServerProcess, ServerRecord, stop_all

ROLES = ("stable", "canary")


class Status(TypedDict):
    """GET /control/status, and the answer to every control change."""

    model: str
    registry: str
    weight: int
    stable: ServerRecord | None
    canary: ServerRecord | None


def check_weight(weight: int) -> None:
    if not 0 <= weight <= 100:
        raise DeployError(f"weight: must be 0-100, got {weight}")


class Deployment:
    """A stable and an optional canary server, and the canary's weight (0-100)."""

    def __init__(self, model: str, registry: str):
        self.model, self.registry = model, registry
        self.stable: ServerProcess | None = None
        self.canary: ServerProcess | None = None
        self.weight = 0
        self._credit = 0
        self.lock = threading.Lock()
        self.changes = threading.Lock()  # one control change at a time (starting a server takes seconds)
        self._closing = threading.Event()
        self._starting: set[ServerProcess] = set()  # started, not yet stable or canary: close() stops them too

    def set_stable(self, version: int) -> Status:
        with self.changes:
            server = self._start(version, "stable")
            with self.lock:
                self._install(server)
                old, self.stable = self.stable, server
            if old:
                old.stop()
            return self.status()

    def set_canary(self, version: int, weight: int) -> Status:
        check_weight(weight)
        with self.changes:
            if self.stable is None:
                raise DeployError("no stable version: POST /control/stable first")
            if self.canary is None or self.canary.version != version:
                server = self._start(version, "canary")
                with self.lock:
                    self._install(server)
                    old, self.canary = self.canary, server
                if old:
                    old.stop()
            with self.lock:
                self.weight = weight
            return self.status()

    def set_weight(self, weight: int) -> Status:
        check_weight(weight)
        with self.lock:
            if self.canary is None:
                raise DeployError("no canary to weigh: POST /control/canary first")
            self.weight = weight
        return self.status()

    def promote(self) -> Status:
        with self.changes:
            with self.lock:
                if self.canary is None:
                    raise DeployError("no canary to promote")
                old, self.stable, self.canary, self.weight = self.stable, self.canary, None, 0
                self.stable.role = "stable"
            if old:
                old.stop()
            return self.status()

    def abort(self) -> Status:
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

    def status(self) -> Status:
        with self.lock:
            return {"model": self.model, "registry": self.registry, "weight": self.weight,
                    "stable": self.stable.describe() if self.stable else None,
                    "canary": self.canary.describe() if self.canary else None}

    def close(self) -> None:
        """Stop every server, those still starting included, together; later changes are refused."""
        self._closing.set()
        with self.lock:
            servers = [self.stable, self.canary, *self._starting]
            self.stable, self.canary = None, None
            self._starting.clear()
        stop_all(servers)

    def _start(self, version: int, role: str) -> ServerProcess:
        """A new server of `version`, ready. Until _install takes it, close() stops it (then this raises)."""
        server = ServerProcess(self.model, version, self.registry, role)
        with self.lock:
            closing = self._closing.is_set()
            if not closing:
                self._starting.add(server)
        if closing:
            server.stop()
            raise DeployError(f"{self.model} v{version} ({role}): the local deployment is shutting down")
        try:
            server.wait_ready(stop=self._closing)
        except BaseException:
            with self.lock:
                self._starting.discard(server)
            server.stop()
            raise
        return server

    def _install(self, server: ServerProcess) -> None:
        """Under self.lock: `server` leaves the starting ones to serve, unless the deployment is closing (then
        close() stops it with the others)."""
        if self._closing.is_set():
            raise DeployError(f"{self.model} v{server.version} ({server.role}): the local deployment is shutting down")
        self._starting.discard(server)
