"""The model registry: numbered, hashed versions of each model on an ObjectStore, their lifecycle and history.

Layout (DESIGN.md): `models/<model>/versions/<n>/<files>` are written once, before the version enters
`models/<model>/index.json`, the only mutable object, which changes only by compare-and-swap. So a crash
mid-registration leaves no version in the index, and concurrent writers never lose an update.
`models/<model>/state/<name>.json` holds small compare-and-swap records for other steps (drift cooldown).
The lifecycle's rules live in `lifecycle`, the moving of a version's files in `transfer`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from steps._core.documents import BundleManifest, GateReport, RegistryIndex, VersionRecord
from steps._core.errors import TransientError, UsageError
from steps._model import bundle as _bundle
from steps._model.bundle import MANIFEST, BundleError
from steps._storage import lifecycle, transfer
from steps._storage.lifecycle import STATUSES, TRANSITIONS
from steps._storage.store import AlreadyExists, Conflict, NotFound, ObjectStore, open_store

NAMED_REFS = ("production", "canary", "latest")
_MODEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
_STATE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,100}$")
_CAS_ATTEMPTS = 200

T = TypeVar("T")


class RegistryError(UsageError):
    """A registry request that cannot be met as asked (exit 2); the message names model, version and rule."""


class VersionNotFound(RegistryError):
    """No such model, version or named reference (production, canary, latest)."""


class IllegalTransition(RegistryError):
    """The lifecycle does not allow that move."""


def check_model(model: str) -> str:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise RegistryError(
            f"model {model!r}: must be lowercase letters, digits and '-', 1-42 characters, as in gates/<model>.yaml"
        )
    return model


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

    def versions(self, model: str) -> list[VersionRecord]:
        """Every version's record (status, fingerprint, history, ...), oldest first; [] for an unknown model."""
        index, _ = self._read_index(model)
        return copy.deepcopy(index["versions"]) if index else []

    def get(self, model: str, ref: int | str) -> VersionRecord:
        index, _ = self._read_index(model)
        return copy.deepcopy(self._find(index, model, ref))

    def resolve(self, model: str, ref: int | str) -> int:
        """3, "3", "production", "canary" or "latest" -> the version number. Raises VersionNotFound."""
        return int(self.get(model, ref)["version"])

    def production(self, model: str) -> int | None:
        return self._with_status(model, "production")

    def canary(self, model: str) -> int | None:
        return self._with_status(model, "canary")

    def find(self, model: str, fingerprint: str) -> VersionRecord | None:
        """The version registered with this training fingerprint, if any."""
        for record in self.versions(model):
            if record["fingerprint"] == fingerprint:
                return record
        return None

    def manifest(self, model: str, ref: int | str) -> BundleManifest:
        """A version's stored bundle.json (lineage, file hashes, gate report), checked against the index."""
        record = self.get(model, ref)
        return cast(BundleManifest, json.loads(self._manifest_bytes(model, record)))

    def fetch(self, model: str, ref: int | str, dest_dir: str | Path) -> Path:
        """Download a version into `dest_dir` and verify every sha256 before returning. Raises BundleError.

        `dest_dir` never holds a tampered or half-downloaded bundle; an existing folder (e.g. a mounted volume)
        is filled in.
        """
        record = self.get(model, ref)
        version = int(record["version"])
        raw = self._manifest_bytes(model, record)
        return transfer.download(self.store, lambda v, name: self._version_key(model, v, name), version, raw,
                                 dest_dir, where=f"{model} v{version} in {self.location}")

    # ---- writing ----------------------------------------------------------------------------------------

    def register(
        self,
        model: str,
        bundle_dir: str | Path,
        *,
        passed: bool,
        gate_report: GateReport,
        actor: str | None = None,
        reason: str | None = None,
        git_commit: str | None = None,
    ) -> VersionRecord:
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

        current, _ = self._read_index(model)
        taken = {int(r["version"]) for r in current["versions"]} if current else set()
        slot = transfer.upload(self.store, lambda v, name: self._version_key(model, v, name), bundle_dir, manifest,
                               gate_report, taken)
        if slot is None:
            raise RegistryError(
                f"{model}: found no free version number after {transfer.MAX_SLOTS} tries in {self.location}"
            )
        version, stored = slot
        record = lifecycle.new_record(
            version, manifest, gate_report, passed=passed, bundle_sha256=hashlib.sha256(stored).hexdigest(),
            actor=actor or lifecycle.default_actor(), reason=reason, git_commit=git_commit,
        )

        def add(index: RegistryIndex) -> tuple[VersionRecord, bool]:
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
    ) -> VersionRecord:
        """Move a version along the lifecycle, in one compare-and-swap of the index. Returns its record.

        Promoting to production archives the previous production; a new canary rejects the previous one
        (as Argo Rollouts aborts a canary that a newer revision replaces). Asking for the status a version
        already has changes nothing, so a retried step is harmless.
        """
        if to not in STATUSES:
            raise RegistryError(f"status {to!r}: not one of {', '.join(STATUSES)}")
        by = actor or lifecycle.default_actor()

        def move(index: RegistryIndex) -> tuple[VersionRecord, bool]:
            record = self._find(index, model, version)
            if record["status"] == to:
                return copy.deepcopy(record), False
            allowed = TRANSITIONS[record["status"]]
            if to not in allowed:
                raise IllegalTransition(
                    f"{model} v{record['version']}: cannot move from {record['status']} to {to} "
                    f"(from {record['status']} a version may move to: {', '.join(allowed) or 'nothing'})"
                )
            lifecycle.move(index, record, to, by=by, why=reason or f"moved to {to}", details=details)
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
    ) -> VersionRecord:
        if to not in ("canary", "production"):
            raise RegistryError(f"promote --to {to!r}: must be canary or production")
        return self.transition(model, version, to, actor=actor, reason=reason or f"promoted to {to}", details=details)

    def rollback(self, model: str, *, actor: str | None = None, reason: str = "") -> dict[str, VersionRecord]:
        """Archive the production version and bring back the most recently archived former production.

        Returns {"archived": record, "production": record}. A version archived by a rollback is not a
        rollback target itself, so rolling back twice goes two production versions back, not to and fro.
        """
        by = actor or lifecycle.default_actor()

        def back(index: RegistryIndex) -> tuple[dict[str, VersionRecord], bool]:
            current = self._find(index, model, "production")
            target = lifecycle.last_replaced_production(index, exclude=current["version"])
            if target is None:
                raise RegistryError(
                    f"{model}: no earlier production version to roll back to (v{current['version']} is production)"
                )
            at = lifecycle.now()
            why = reason or f"rollback to v{target['version']}"
            lifecycle.append(current, "archived", at, by, why, {"rollback": True})
            lifecycle.append(target, "production", at, by, reason or f"rollback from v{current['version']}",
                             {"rollback": True})
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
                self.store.put_new(key, transfer.dumps(value))
            else:
                self.store.put_if_match(key, transfer.dumps(value), etag)
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

    def _read_index(self, model: str) -> tuple[RegistryIndex | None, str | None]:
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
        return cast(RegistryIndex, index), etag

    def _update(self, model: str, change: Callable[[RegistryIndex], tuple[T, bool]]) -> T:
        """Read the index, apply `change` to a copy, write it back only if unchanged meanwhile; else retry."""
        key = self._index_key(model)
        delay = 0.02
        for _ in range(_CAS_ATTEMPTS):
            index, etag = self._read_index(model)
            working = index or lifecycle.new_index(model)
            result, changed = change(working)
            if not changed:
                return result
            try:
                if etag is None:
                    self.store.put_new(key, transfer.dumps(working))
                else:
                    self.store.put_if_match(key, transfer.dumps(working), etag)
                return result
            except (Conflict, AlreadyExists):
                # Someone else's update won; jittered backoff keeps many writers from colliding in lockstep.
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 0.5)
        raise TransientError(f"{self.location}/{key}: still changing after {_CAS_ATTEMPTS} attempts; try again")

    def _find(self, index: RegistryIndex | None, model: str, ref: int | str) -> VersionRecord:
        if not index or not index["versions"]:
            raise VersionNotFound(f"model {model!r} has no versions in the registry at {self.location}")
        records = index["versions"]
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

    def _manifest_bytes(self, model: str, record: VersionRecord) -> bytes:
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

    def _check_bundle(self, model: str, bundle_dir: Path) -> BundleManifest:
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
