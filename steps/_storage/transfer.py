"""A version's files on the store: written create-only into a free version number, and read back into a folder
that shows them only once every sha256 is verified. The registry's index says which versions exist."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from steps._core.documents import BundleManifest, GateReport
from steps._core.errors import UsageError
from steps._model import bundle as _bundle
from steps._model.bundle import MANIFEST, BundleError
from steps._storage.store import AlreadyExists, NotFound, ObjectStore

MAX_SLOTS = 1000
KeyOf = Callable[[int, str], str]  # (version, file name) -> the object's key


def dumps(obj: object) -> bytes:
    """How the registry stores JSON (the index, bundle.json, state records): indented, keys sorted."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def upload(store: ObjectStore, key: KeyOf, bundle_dir: Path, manifest: BundleManifest, gate_report: GateReport,
           taken: set[int]) -> tuple[int, bytes] | None:
    """Write the version's files create-only into the first free slot; return (version, stored bundle.json), or
    None when MAX_SLOTS numbers were all claimed.

    bundle.json goes first and claims the slot. A slot already claimed with the very same bytes was left by
    an earlier attempt of this registration (it crashed before the index): finish that one. Any other
    claim belongs to someone else (a concurrent registration, or an abandoned one): try the next number.
    Numbers missing from the index (`taken`) come first, so a rerun finds its own earlier attempt.
    """
    candidates = [n for n in range(1, max(taken, default=0)) if n not in taken]
    version = max(taken, default=0)
    for _ in range(MAX_SLOTS):
        version = candidates.pop(0) if candidates else max(version + 1, max(taken, default=0) + 1)
        stored = dumps({**manifest, "version": version, "gate": gate_report})
        claim = key(version, MANIFEST)
        try:
            store.put_new(claim, stored)
        except AlreadyExists:
            try:
                claimed, _ = store.get(claim)
            except NotFound:
                claimed = b""  # removed by a cleanup in between; let the next round decide
            if claimed != stored:
                continue
        if _upload_files(store, key, version, bundle_dir, manifest["files"]):
            return version, stored
    return None


def _upload_files(store: ObjectStore, key: KeyOf, version: int, bundle_dir: Path, files: dict[str, str]) -> bool:
    for name, sha256 in files.items():
        try:
            store.put_new(key(version, name), (bundle_dir / name).read_bytes())
        except AlreadyExists:
            data, _ = store.get(key(version, name))
            if hashlib.sha256(data).hexdigest() != sha256:
                return False  # not our file: this slot is unusable
    return True


def download(store: ObjectStore, key: KeyOf, version: int, raw: bytes, dest_dir: str | Path, where: str) -> Path:
    """Download the version whose stored bundle.json is `raw` into `dest_dir`, verifying every sha256 before
    returning. Raises BundleError, naming the version by `where`.

    Files land in a temporary folder first and move into place only once verified, so `dest_dir` never
    holds a tampered or half-downloaded bundle. An existing folder (e.g. a mounted volume) is filled in.
    """
    names = _file_names(raw, version, where)
    dest = Path(dest_dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"fetch destination {dest}: exists and is not a folder")
    existing = dest.is_dir()
    if not existing:
        dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest if existing else dest.parent, prefix=f".{dest.name}.fetch-"))
    try:
        for name in names:
            data, _ = store.get(key(version, name))
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


def _file_names(raw: bytes, version: int, where: str) -> list[str]:
    """The files a stored bundle.json lists, each checked to be a plain name before it becomes a path here."""
    try:
        manifest = json.loads(raw)
        names = list(manifest["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{where}: stored {MANIFEST} has no 'files' table") from err
    for name in names:
        if not isinstance(name, str) or "/" in name or name.startswith(".") or name == MANIFEST:
            raise BundleError(f"{where}: {MANIFEST} lists {name!r}, which is not a plain file name")
    if manifest.get("version") != version:
        raise BundleError(f"{where}: stored {MANIFEST} says version {manifest.get('version')!r}")
    return names
