"""Synchronization and memoization on one machine (docs/local-runner.md, "Synchronization", "Memoization").

Mutexes and semaphores are file locks (fcntl.flock) under `<state>/locks/`, so they order the nodes of one run and
of concurrent local runs; a semaphore of size N is N lock files, its size read from the ConfigMap key as Argo does.
A node waiting for a lock is Pending (operator.go:2324-2362); the lock is released when the node is fulfilled.

The memoization cache is a folder per cache name, `<state>/memoize/<cache>/<key>.json`, that outlives runs like
the ConfigMap does: an entry younger than maxAge is a hit, the node is created Succeeded with the cached outputs
(operator.go:2364-2421); a node that succeeds saves its outputs under the key (configmap_cache.go).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from workflows.local.engine.nodes import PENDING, SUCCEEDED, ArtifactRef, Node, Outputs, Parameter
from workflows.local.engine.retry import parse_duration
from workflows.local.engine.state import Holder, Operation

_KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_ATOI = re.compile(r"^[+-]?[0-9]+$")


class LockError(ValueError):
    """A lock Argo refuses (a semaphore without a usable size, a database lock); the node is Error."""


def _max_age(text: str) -> float:
    """time.ParseDuration: a Go duration; a bare number other than 0 has no unit and is refused."""
    if text.strip().isdigit() and text.strip() != "0":
        raise LockError(f'invalid maxAge: time: missing unit in duration "{text}"')
    try:
        return parse_duration(text)
    except ValueError as err:
        raise LockError(f"invalid maxAge: {err}") from err


def _node_type(tmpl: dict[str, Any]) -> str:
    for key, kind in (("steps", "Steps"), ("dag", "DAG"), ("suspend", "Suspend"), ("http", "HTTP")):
        if tmpl.get(key) is not None:
            return kind
    return "Pod"


class Locks:
    def __init__(self, state_dir: Path, config_maps: dict[str, Any], namespace: str = "default"):
        self.state_dir = state_dir
        self.config_maps = config_maps
        self.namespace = namespace
        self.held: dict[str, list[IO[str]]] = {}

    # --- synchronization ---------------------------------------------------------------------------------

    def _slots(self, sync: dict[str, Any]) -> list[tuple[str, int, str]]:
        """(lock file name, size, Argo's lock key: `<ns>/Mutex/<name>`, `<ns>/ConfigMap/<name>/<key>`) of each lock
        (sync/lock_name.go:52-82, 118-125)."""
        slots = []
        mutexes = list(sync.get("mutexes") or []) + ([sync["mutex"]] if sync.get("mutex") else [])
        for mutex in mutexes:
            if mutex.get("database"):
                raise LockError(f"mutex {mutex.get('name')}: database locks cannot be taken on this machine")
            namespace = mutex.get("namespace") or self.namespace
            slots.append((f"mutex-{namespace}-{mutex.get('name')}", 1, f"{namespace}/Mutex/{mutex.get('name')}"))
        semaphores = list(sync.get("semaphores") or []) + ([sync["semaphore"]] if sync.get("semaphore") else [])
        for sem in semaphores:
            if sem.get("database"):
                raise LockError("database semaphores cannot be taken on this machine")
            ref = sem.get("configMapKeyRef") or {}
            namespace = sem.get("namespace") or self.namespace
            size = self._semaphore_size(str(ref.get("name", "")), str(ref.get("key", "")))
            if size == 0:  # a limit that cannot be read counts as 0, which is an error (sync/semaphore.go:27-46)
                raise LockError(f"failed to initialize semaphore {namespace}/ConfigMap/{ref.get('name')}/"
                                f"{ref.get('key')} with limit")
            slots.append((f"semaphore-{namespace}-{ref.get('name')}-{ref.get('key')}", size,
                          f"{namespace}/ConfigMap/{ref.get('name')}/{ref.get('key')}"))
        return slots

    def _semaphore_size(self, name: str, key: str) -> int:
        """getSyncLimit (controller.go:472-492): the ConfigMap's key as an integer, read with no label rule; 0 when
        it cannot be read."""
        value = ((self.config_maps.get(name) or {}).get("data") or {}).get(key)
        return int(value) if isinstance(value, str) and _ATOI.match(value) else 0  # strconv.Atoi's syntax

    def try_acquire(self, holder_id: str, sync: dict[str, Any]) -> tuple[bool, str]:
        """Take every lock of `sync` for `holder_id`, or none; (acquired, Argo's message for the lock waited for:
        none of its slots is free, sync/semaphore.go:233)."""
        if holder_id in self.held:
            return True, ""
        taken: list[IO[str]] = []
        folder = self.state_dir / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        for name, size, key in self._slots(sync):
            got: IO[str] | None = None
            for i in range(max(size, 0)):
                handle = open(folder / f"{_NAME.sub('_', name)}.{i}", "a")  # noqa: SIM115 - held while locked
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                got = handle
                break
            if got is None:
                for held in taken:
                    held.close()
                return False, f"Waiting for {key} lock. Lock status: 0/{size}"
            taken.append(got)
        self.held[holder_id] = taken
        return True, ""

    def release(self, holder_id: str) -> None:
        for handle in self.held.pop(holder_id, []):
            handle.close()

    def release_all(self) -> None:
        for holder_id in list(self.held):
            self.release(holder_id)

    def acquire(self, op: Operation, node: Node | None, name: str, scope: str, tmpl: dict[str, Any],
                holder: Holder, boundary_id: str, hooked: bool, retried: bool) -> tuple[Node | None, bool]:
        ident = node.id if node is not None else f"{op.workflow}/{name}"
        acquired, message = self.try_acquire(ident, tmpl["synchronization"])
        if not acquired:
            waiting = message.split(" ")[2]  # the lock key (synchronizationStatus.waiting)
            if node is None:
                kind = "Retry" if tmpl.get("retryStrategy") or op.spec.get("retryStrategy") else _node_type(tmpl)
                node = op.init_executable_node(name, kind, scope, tmpl, holder, boundary_id, PENDING,
                                               hooked=hooked, retried=retried, message=message)
            node.extra["waiting_lock"] = waiting
            node.message = message
            op.requeue_after(op.now() + 0.2)
            return node, False
        if node is not None:
            if node.extra.pop("waiting_lock", None) is not None:
                node.started_at = op.now()  # it starts once it holds the lock (the case's order rules read this)
            node.message = ""
            if ident != node.id:
                self.held[node.id] = self.held.pop(ident)
        else:
            self.held[f"pending:{name}"] = self.held.pop(ident)
        return node, True

    def adopt(self, op: Operation, node: Node) -> None:
        """The lock taken before the node existed now belongs to it."""
        held = self.held.pop(f"pending:{node.name}", None)
        if held is not None:
            self.held[node.id] = held

    # --- memoization ---------------------------------------------------------------------------------------

    def _entry(self, cache: str, key: str) -> Path:
        return self.state_dir / "memoize" / _NAME.sub("_", cache) / f"{key}.json"

    def memoized(self, op: Operation, node: Node | None, name: str, scope: str, tmpl: dict[str, Any],
                 holder: Holder, boundary_id: str, hooked: bool, retried: bool, unlocked: bool = False
                 ) -> Node | None:
        """The cache lookup for a node not created yet, or just given its lock (operator.go:2364-2421)."""
        if node is not None and not unlocked:
            return node
        memo = tmpl["memoize"]
        key = str(memo.get("key", ""))
        cache = str(((memo.get("cache") or {}).get("configMap") or {}).get("name", ""))
        if not _KEY.match(key):
            raise LockError(f"invalid memoization key {key!r}: must match {_KEY.pattern}")
        entry = self._entry(cache, key)
        max_age = _max_age(str(memo["maxAge"])) if memo.get("maxAge") else None
        hit = False
        outputs: Outputs | None = None
        if entry.exists():
            data = json.loads(entry.read_text())
            hit = True
            if max_age is not None:
                hit = time.time() - float(data.get("creationTimestamp", 0)) <= max_age
            if hit and data.get("outputs") is not None:
                raw = data["outputs"]
                outputs = Outputs(parameters=[Parameter(p["name"], p.get("value")) for p in raw.get("parameters")
                                              or []], result=raw.get("result"), exit_code=raw.get("exit_code"),
                                  artifacts=self._restore(op, entry, raw.get("artifacts") or []))
        if hit:
            node = node or op.init_executable_node(name, _node_type(tmpl), scope, tmpl, holder, boundary_id,
                                                   SUCCEEDED, hooked=hooked, retried=retried)
            node.outputs, node.memoized = outputs, True
            node.phase = SUCCEEDED
            node.finished_at = node.finished_at or op.now()
            node.extra["memoization"] = {"key": key, "cacheName": cache, "hit": True}
            return node
        node = node or op.init_executable_node(name, _node_type(tmpl), scope, tmpl, holder, boundary_id, PENDING,
                                               hooked=hooked, retried=retried)
        node.extra["memoization"] = {"key": key, "cacheName": cache, "hit": False}
        return node

    def save(self, op: Operation, node: Node) -> None:
        memo = node.extra.get("memoization") or {}
        if not memo.get("key") or memo.get("hit"):
            return
        entry = self._entry(memo.get("cacheName", ""), memo["key"])
        entry.parent.mkdir(parents=True, exist_ok=True)
        outputs = None
        if node.outputs is not None:
            outputs = {"parameters": [asdict(p) for p in node.outputs.parameters], "result": node.outputs.result,
                       "exit_code": node.outputs.exit_code,
                       "artifacts": self._keep(op, entry, node.outputs.artifacts)}
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"nodeID": node.id, "outputs": outputs, "creationTimestamp": time.time()}))
        tmp.replace(entry)

    # Artifacts outlive the run's repository in the cache folder, and come back into the next run's repository
    # through the executor (Argo's cache points into the shared artifact repository instead).

    def _keep(self, op: Operation, entry: Path, artifacts: list[ArtifactRef]) -> list[dict[str, Any]]:
        kept = []
        root = Path(getattr(getattr(op.executor, "repository", None), "root", op.run_dir / "artifacts"))
        folder = entry.with_suffix(".artifacts")
        for art in artifacts:
            if art.key is None:
                continue
            source, target = root / art.key, folder / art.name / Path(art.key).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
            kept.append({"name": art.name, "path": art.path, "archive": art.archive, "optional": art.optional,
                         "file": str(target.relative_to(folder)), "s3Key": art.s3_key})
        return kept

    def _restore(self, op: Operation, entry: Path, kept: list[dict[str, Any]]) -> list[ArtifactRef]:
        restored = []
        folder = entry.with_suffix(".artifacts")
        for art in kept:
            cached = folder / art["file"]
            if art["archive"] == "none":
                ref = op.executor.store_artifact(cached, art["name"], "none", art.get("s3Key"))
            else:
                with tempfile.TemporaryDirectory() as tmp, tarfile.open(cached) as tar:
                    tar.extractall(tmp, filter="data")
                    [member] = list(Path(tmp).iterdir())
                    ref = op.executor.store_artifact(member, art["name"], "tar", art.get("s3Key"))
            ref.path, ref.optional = art.get("path"), bool(art.get("optional"))
            restored.append(ref)
        return restored
