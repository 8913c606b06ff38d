"""The model registry: numbered, hashed versions of each model on an ObjectStore, their lifecycle and history.

Layout (DESIGN.md): `models/<model>/versions/<n>/<files>` are written once, before the version enters
`models/<model>/index.json`, the only mutable object, which changes only by compare-and-swap. So a crash
mid-registration leaves no version in the index, and concurrent writers never lose an update.
`models/<model>/state/<name>.json` holds small compare-and-swap records for other steps (drift cooldown).
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import json
import os
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from steps._core.errors import TransientError, UsageError
from steps._model import bundle as _bundle
from steps._model.bundle import MANIFEST, BundleError
from steps._storage.store import AlreadyExists, Conflict, NotFound, ObjectStore, open_store

STATUSES = ("staged", "canary", "production", "archived", "rejected")
# The moves anyone may ask for. archived -> production happens only through rollback().
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "staged": ("canary", "production", "rejected"),
    "canary": ("production", "rejected"),
    "production": ("archived",),
    "archived": (),
    "rejected": (),
}
NAMED_REFS = ("production", "canary", "latest")
INDEX_FORMAT = 1
_MODEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
_STATE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,100}$")
_CAS_ATTEMPTS = 200
_MAX_SLOTS = 1000

T = TypeVar("T")


class RegistryError(UsageError):
    """A registry request that cannot be met as asked (exit 2); the message names model, version and rule."""


class VersionNotFound(RegistryError):
    """No such model, version or named reference (production, canary, latest)."""


class IllegalTransition(RegistryError):
    """The lifecycle does not allow that move."""


def default_actor() -> str:
    """Who acts, for the history: $MLOPS_ACTOR (a workflow sets `argo:<workflow>`), else user@host."""
    actor = os.environ.get("MLOPS_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def check_model(model: str) -> str:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise RegistryError(
            f"model {model!r}: must be lowercase letters, digits and '-', 1-42 characters, as in gates/<model>.yaml"
        )
    return model


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


class Registry:
    """Register, read, fetch and move versions. Every write is create-only or compare-and-swap."""

    def __init__(self, store: ObjectStore):
        self.store = store
        self.location = store.location

    @classmethod
    def open(cls, location: str | None = None) -> Registry:
        """`location`: a folder, `file://...` or `s3://bucket/prefix`; None: $MLOPS_REGISTRY or .mlops/registry."""
        return cls(open_store(location))

    # ---- reading ----------------------------------------------------------------------------------------

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Every version's record (status, fingerprint, history, ...), oldest first; [] for an unknown model."""
        index, _ = self._read_index(model)
        return copy.deepcopy(index["versions"]) if index else []

    def get(self, model: str, ref: int | str) -> dict[str, Any]:
        index, _ = self._read_index(model)
        return copy.deepcopy(self._find(index, model, ref))

    def resolve(self, model: str, ref: int | str) -> int:
        """3, "3", "production", "canary" or "latest" -> the version number. Raises VersionNotFound."""
        return int(self.get(model, ref)["version"])

    def production(self, model: str) -> int | None:
        return self._with_status(model, "production")

    def canary(self, model: str) -> int | None:
        return self._with_status(model, "canary")

    def find(self, model: str, fingerprint: str) -> dict[str, Any] | None:
        """The version registered with this training fingerprint, if any."""
        for record in self.versions(model):
            if record["fingerprint"] == fingerprint:
                return record
        return None

    def manifest(self, model: str, ref: int | str) -> dict[str, Any]:
        """A version's stored bundle.json (lineage, file hashes, gate report), checked against the index."""
        record = self.get(model, ref)
        manifest: dict[str, Any] = json.loads(self._manifest_bytes(model, record))
        return manifest

    def fetch(self, model: str, ref: int | str, dest_dir: str | Path) -> Path:
        """Download a version into `dest_dir` and verify every sha256 before returning. Raises BundleError.

        Files land in a temporary folder first and move into place only once verified, so `dest_dir` never
        holds a tampered or half-downloaded bundle. An existing folder (e.g. a mounted volume) is filled in.
        """
        record = self.get(model, ref)
        version = int(record["version"])
        raw = self._manifest_bytes(model, record)
        where = f"{model} v{version} in {self.location}"
        try:
            manifest = json.loads(raw)
            files = manifest["files"]
            names = list(files)
        except (ValueError, KeyError, TypeError) as err:
            raise BundleError(f"{where}: stored {MANIFEST} has no 'files' table") from err
        for name in names:  # checked before any name becomes a path on this disk
            if not isinstance(name, str) or "/" in name or name.startswith(".") or name == MANIFEST:
                raise BundleError(f"{where}: {MANIFEST} lists {name!r}, which is not a plain file name")
        if manifest.get("version") != version:
            raise BundleError(f"{where}: stored {MANIFEST} says version {manifest.get('version')!r}")

        dest = Path(dest_dir)
        if dest.exists() and not dest.is_dir():
            raise UsageError(f"fetch destination {dest}: exists and is not a folder")
        existing = dest.is_dir()
        if not existing:
            dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest if existing else dest.parent, prefix=f".{dest.name}.fetch-"))
        try:
            for name in names:
                data, _ = self.store.get(self._version_key(model, version, name))
                (staging / name).write_bytes(data)
            (staging / MANIFEST).write_bytes(raw)
            try:
                _bundle.verify(staging)
            except BundleError as err:
                raise BundleError(f"{where}: {str(err).replace(str(staging) + '/', '')}") from err
            if existing:
                # bundle.json last: whoever sees the manifest sees every file it lists.
                for name in [*names, MANIFEST]:
                    os.replace(staging / name, dest / name)
                staging.rmdir()
            else:
                staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a server running as another user
                os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest

    # ---- writing ----------------------------------------------------------------------------------------

    def register(
        self,
        model: str,
        bundle_dir: str | Path,
        *,
        passed: bool,
        gate_report: dict[str, Any],
        actor: str | None = None,
        reason: str | None = None,
        git_commit: str | None = None,
    ) -> dict[str, Any]:
        """Store a verified bundle as a new version: `staged` if the gates passed, else `rejected`.

        Idempotent by the bundle's training fingerprint: registering it again returns the existing record.
        """
        check_model(model)
        bundle_dir = Path(bundle_dir)
        manifest = self._check_bundle(model, bundle_dir)
        if not isinstance(passed, bool):
            raise RegistryError(f"passed: must be true or false, got {passed!r}")
        if not isinstance(gate_report, dict):
            raise RegistryError(f"gate report: must be a JSON object, got {type(gate_report).__name__}")
        fingerprint = manifest["fingerprint"]
        existing = self.find(model, fingerprint)
        if existing:
            return existing

        version, stored = self._upload(model, bundle_dir, manifest, gate_report)
        failed = _failed_gates(gate_report)
        status = "staged" if passed else "rejected"
        at = _now()
        record = {
            "version": version,
            "status": status,
            "fingerprint": fingerprint,
            "created_at": at,
            "git_commit": git_commit or manifest.get("git_commit"),
            "reason": reason or manifest.get("reason"),
            "bundle_sha256": hashlib.sha256(stored).hexdigest(),
            "files": manifest["files"],
            "metrics": _metrics(gate_report, manifest),
            "gate": {"passed": passed, "failed": failed, "checked": _gate_names(gate_report)},
            "history": [
                {
                    "from": None,
                    "to": status,
                    "at": at,
                    "by": actor or default_actor(),
                    "why": "quality gates passed" if passed else _rejection(failed),
                }
            ],
        }

        def add(index: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            for other in index["versions"]:
                if other["fingerprint"] == fingerprint:  # a concurrent registration of the same run won
                    return copy.deepcopy(other), False
            if any(other["version"] == version for other in index["versions"]):
                raise RegistryError(f"{model} v{version}: already in the index with another fingerprint")
            index["versions"].append(record)
            index["versions"].sort(key=lambda r: r["version"])
            return copy.deepcopy(record), True

        return self._update(model, add)

    def transition(
        self,
        model: str,
        version: int | str,
        to: str,
        *,
        actor: str | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move a version along the lifecycle, in one compare-and-swap of the index. Returns its record.

        Promoting to production archives the previous production; a new canary rejects the previous one
        (as Argo Rollouts aborts a canary that a newer revision replaces). Asking for the status a version
        already has changes nothing, so a retried step is harmless.
        """
        if to not in STATUSES:
            raise RegistryError(f"status {to!r}: not one of {', '.join(STATUSES)}")
        by = actor or default_actor()

        def move(index: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            record = self._find(index, model, version)
            if record["status"] == to:
                return copy.deepcopy(record), False
            allowed = TRANSITIONS[record["status"]]
            if to not in allowed:
                raise IllegalTransition(
                    f"{model} v{record['version']}: cannot move from {record['status']} to {to} "
                    f"(from {record['status']} a version may move to: {', '.join(allowed) or 'nothing'})"
                )
            at = _now()
            if to in ("production", "canary"):
                for other in index["versions"]:
                    if other["status"] == to and other is not record:
                        if to == "production":
                            why = f"replaced by v{record['version']}"
                            _append(other, "archived", at, by, why, None)
                        else:
                            _append(other, "rejected", at, by, f"superseded by canary v{record['version']}", None)
            _append(record, to, at, by, reason or f"moved to {to}", details)
            return copy.deepcopy(record), True

        return self._update(model, move)

    def promote(
        self,
        model: str,
        version: int | str,
        to: str = "production",
        *,
        actor: str | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if to not in ("canary", "production"):
            raise RegistryError(f"promote --to {to!r}: must be canary or production")
        return self.transition(model, version, to, actor=actor, reason=reason or f"promoted to {to}", details=details)

    def rollback(self, model: str, *, actor: str | None = None, reason: str = "") -> dict[str, dict[str, Any]]:
        """Archive the production version and bring back the most recently archived former production.

        Returns {"archived": record, "production": record}. A version archived by a rollback is not a
        rollback target itself, so rolling back twice goes two production versions back, not to and fro.
        """
        by = actor or default_actor()

        def back(index: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], bool]:
            current = self._find(index, model, "production")
            target = _last_replaced_production(index, exclude=current["version"])
            if target is None:
                raise RegistryError(
                    f"{model}: no earlier production version to roll back to (v{current['version']} is production)"
                )
            at = _now()
            why = reason or f"rollback to v{target['version']}"
            _append(current, "archived", at, by, why, {"rollback": True})
            _append(target, "production", at, by, reason or f"rollback from v{current['version']}", {"rollback": True})
            return {"archived": copy.deepcopy(current), "production": copy.deepcopy(target)}, True

        return self._update(model, back)

    def read_state(self, model: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """A small state record (e.g. the drift cooldown) and its etag for cas_state; (None, None) if absent."""
        key = self._state_key(model, name)
        try:
            data, etag = self.store.get(key)
        except NotFound:
            return None, None
        try:
            value = json.loads(data)
        except ValueError as err:
            raise RegistryError(f"{self.location}/{key}: not valid JSON: {err}") from err
        if not isinstance(value, dict):
            raise RegistryError(f"{self.location}/{key}: must hold a JSON object, found {type(value).__name__}")
        return value, etag

    def cas_state(self, model: str, name: str, value: dict[str, Any], etag: str | None) -> bool:
        """Write the record if nobody changed it since read_state gave `etag` (None: only if absent)."""
        key = self._state_key(model, name)
        try:
            if etag is None:
                self.store.put_new(key, _dumps(value))
            else:
                self.store.put_if_match(key, _dumps(value), etag)
        except (AlreadyExists, Conflict):
            return False
        return True

    # ---- internals --------------------------------------------------------------------------------------

    def _index_key(self, model: str) -> str:
        return f"models/{check_model(model)}/index.json"

    def _version_key(self, model: str, version: int, name: str) -> str:
        return f"models/{check_model(model)}/versions/{version}/{name}"

    def _state_key(self, model: str, name: str) -> str:
        if not isinstance(name, str) or not _STATE.match(name):
            raise RegistryError(f"state name {name!r}: must be letters, digits, '.', '_' or '-'")
        return f"models/{check_model(model)}/state/{name}.json"

    def _read_index(self, model: str) -> tuple[dict[str, Any] | None, str | None]:
        key = self._index_key(model)
        try:
            data, etag = self.store.get(key)
        except NotFound:
            return None, None
        try:
            index = json.loads(data)
        except ValueError as err:
            raise RegistryError(f"{self.location}/{key}: corrupt index, not valid JSON: {err}") from err
        if not isinstance(index, dict) or not isinstance(index.get("versions"), list):
            raise RegistryError(f"{self.location}/{key}: corrupt index, no 'versions' list")
        return index, etag

    def _update(self, model: str, change: Callable[[dict[str, Any]], tuple[T, bool]]) -> T:
        """Read the index, apply `change` to a copy, write it back only if unchanged meanwhile; else retry."""
        key = self._index_key(model)
        delay = 0.02
        for _ in range(_CAS_ATTEMPTS):
            index, etag = self._read_index(model)
            working = index or {"format_version": INDEX_FORMAT, "model": model, "versions": []}
            result, changed = change(working)
            if not changed:
                return result
            try:
                if etag is None:
                    self.store.put_new(key, _dumps(working))
                else:
                    self.store.put_if_match(key, _dumps(working), etag)
                return result
            except (Conflict, AlreadyExists):
                # Someone else's update won; jittered backoff keeps many writers from colliding in lockstep.
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 0.5)
        raise TransientError(f"{self.location}/{key}: still changing after {_CAS_ATTEMPTS} attempts; try again")

    def _find(self, index: dict[str, Any] | None, model: str, ref: int | str) -> dict[str, Any]:
        if not index or not index["versions"]:
            raise VersionNotFound(f"model {model!r} has no versions in the registry at {self.location}")
        records: list[dict[str, Any]] = index["versions"]
        known = ", ".join(f"v{r['version']} {r['status']}" for r in records)
        if isinstance(ref, str) and ref in NAMED_REFS:
            if ref == "latest":
                return max(records, key=lambda r: r["version"])
            for record in records:
                if record["status"] == ref:
                    return record
            raise VersionNotFound(f"{model}: no {ref} version in {self.location} (versions: {known})")
        number = _version_number(ref)
        for record in records:
            if record["version"] == number:
                return record
        raise VersionNotFound(f"{model}: no version {number} in {self.location} (versions: {known})")

    def _with_status(self, model: str, status: str) -> int | None:
        for record in self.versions(model):
            if record["status"] == status:
                return int(record["version"])
        return None

    def _manifest_bytes(self, model: str, record: dict[str, Any]) -> bytes:
        key = self._version_key(model, int(record["version"]), MANIFEST)
        try:
            raw, _ = self.store.get(key)
        except NotFound as err:
            raise BundleError(f"{model} v{record['version']}: {self.location}/{key} is missing") from err
        actual = hashlib.sha256(raw).hexdigest()
        if actual != record.get("bundle_sha256"):
            raise BundleError(
                f"{model} v{record['version']}: {self.location}/{key}: sha256 {actual[:12]}… does not match "
                f"the registry index ({str(record.get('bundle_sha256'))[:12]}…)"
            )
        return raw

    def _check_bundle(self, model: str, bundle_dir: Path) -> dict[str, Any]:
        try:
            manifest = _bundle.verify(bundle_dir)
        except BundleError as err:
            raise RegistryError(f"bundle {bundle_dir}: {err}") from err
        fingerprint = manifest.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise RegistryError(
                f"{bundle_dir / MANIFEST}: field 'fingerprint' must be a non-empty string, got {fingerprint!r}"
            )
        if manifest.get("model", model) != model:
            raise RegistryError(
                f"{bundle_dir / MANIFEST}: field 'model' is {manifest['model']!r}, but registering as {model!r}"
            )
        return manifest

    def _upload(
        self, model: str, bundle_dir: Path, manifest: dict[str, Any], gate_report: dict[str, Any]
    ) -> tuple[int, bytes]:
        """Write the version's files create-only into the first free slot; return (version, stored bundle.json).

        bundle.json goes first and claims the slot. A slot already claimed with the very same bytes was left by
        an earlier attempt of this registration (it crashed before the index): finish that one. Any other
        claim belongs to someone else (a concurrent registration, or an abandoned one): try the next number.
        Numbers missing from the index come first, so a rerun finds its own earlier attempt.
        """
        index, _ = self._read_index(model)
        taken = {int(r["version"]) for r in index["versions"]} if index else set()
        candidates = [n for n in range(1, max(taken, default=0)) if n not in taken]
        version = max(taken, default=0)
        for _ in range(_MAX_SLOTS):
            if candidates:
                version = candidates.pop(0)
            else:
                version = max(version + 1, max(taken, default=0) + 1)
            stored = _dumps({**manifest, "version": version, "gate": gate_report})
            key = self._version_key(model, version, MANIFEST)
            try:
                self.store.put_new(key, stored)
            except AlreadyExists:
                try:
                    claimed, _ = self.store.get(key)
                except NotFound:
                    claimed = b""  # removed by a cleanup in between; let the next round decide
                if claimed != stored:
                    continue
            if self._upload_files(model, version, bundle_dir, manifest["files"]):
                return version, stored
        raise RegistryError(f"{model}: found no free version number after {_MAX_SLOTS} tries in {self.location}")

    def _upload_files(self, model: str, version: int, bundle_dir: Path, files: dict[str, str]) -> bool:
        for name, sha256 in files.items():
            key = self._version_key(model, version, name)
            try:
                self.store.put_new(key, (bundle_dir / name).read_bytes())
            except AlreadyExists:
                data, _ = self.store.get(key)
                if hashlib.sha256(data).hexdigest() != sha256:
                    return False  # not our file: this slot is unusable
        return True


_VERSION = re.compile(r"[0-9]+")


def parse_version(text: int | str) -> int | str:
    """The one grammar of a version in a reference: `[0-9]+` (ASCII digits only: `str.isdigit` also accepts
    '²') as an int, or one of NAMED_REFS as is. Raises VersionNotFound naming what it got."""
    if isinstance(text, bool):
        raise VersionNotFound(f"version {text!r}: expected a number (3) or one of {', '.join(NAMED_REFS)}")
    if isinstance(text, int):
        if text < 1:
            raise VersionNotFound(f"version {text}: versions start at 1")
        return text
    stripped = str(text).strip()
    if stripped in NAMED_REFS:
        return stripped
    if _VERSION.fullmatch(stripped) and int(stripped) > 0:
        return int(stripped)
    raise VersionNotFound(f"version {text!r}: expected a number (3) or one of {', '.join(NAMED_REFS)}")


def parse_reference(ref: str) -> tuple[str, int | str]:
    """'fraud-detection@3' -> ('fraud-detection', 3); 'fraud-detection@production' -> (..., 'production').
    Raises RegistryError naming the reference and the expected form."""
    model, at, version = ref.partition("@")
    if not at or not model:
        raise RegistryError(f"model reference {ref!r}: expected <model>@<version>, e.g. fraud-detection@3 or "
                            f"fraud-detection@production")
    check_model(model)
    if not version:
        raise RegistryError(f"model reference {ref!r}: no version after '@' (a number or one of "
                            f"{', '.join(NAMED_REFS)})")
    try:
        return model, parse_version(version)
    except VersionNotFound as err:
        raise RegistryError(f"model reference {ref!r}: {err}") from err


def _version_number(ref: int | str) -> int:
    number = parse_version(ref)
    if isinstance(number, str):
        raise VersionNotFound(f"version {ref!r}: expected a number (3) or one of {', '.join(NAMED_REFS)}")
    return number


def _append(record: dict[str, Any], to: str, at: str, by: str, why: str, details: dict[str, Any] | None) -> None:
    entry: dict[str, Any] = {"from": record["status"], "to": to, "at": at, "by": by, "why": why}
    if details:
        entry["details"] = details
    record["history"].append(entry)
    record["status"] = to


def _last_replaced_production(index: dict[str, Any], exclude: int) -> dict[str, Any] | None:
    """The archived version most recently replaced as production (not one archived by a rollback)."""
    best: tuple[tuple[str, int], dict[str, Any]] | None = None
    for record in index["versions"]:
        if record["status"] != "archived" or record["version"] == exclude or not record["history"]:
            continue
        last = record["history"][-1]
        if last.get("from") != "production" or (last.get("details") or {}).get("rollback"):
            continue
        rank = (str(last.get("at")), int(record["version"]))
        if best is None or rank > best[0]:
            best = (rank, record)
    return best[1] if best else None


def _failed_gates(gate_report: dict[str, Any]) -> list[str]:
    failed = gate_report.get("failed")
    if isinstance(failed, list):
        return [str(name) for name in failed]
    gates = gate_report.get("gates")
    if isinstance(gates, list):
        return [str(g.get("name")) for g in gates if isinstance(g, dict) and not g.get("passed")]
    return []


def _gate_names(gate_report: dict[str, Any]) -> list[str]:
    gates = gate_report.get("gates")
    if not isinstance(gates, list):
        return []
    return [str(g["name"]) for g in gates if isinstance(g, dict) and "name" in g]


def _rejection(failed: list[str]) -> str:
    return f"failed gates: {', '.join(failed)}" if failed else "the gate report did not pass"


def _metrics(gate_report: dict[str, Any], manifest: dict[str, Any]) -> dict[str, float]:
    """The candidate's holdout metrics from the gate report (else the bundle's), numbers only."""
    for source in (gate_report.get("candidate"), manifest.get("metrics")):
        if isinstance(source, dict):
            numbers = {
                str(k): float(v) for k, v in source.items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if numbers:
                return numbers
    return {}
