"""The model bundle: a folder of files plus `bundle.json`, which records every file's sha256 and the lineage.

Nothing in a bundle is deserialised before `verify()` has checked every hash. This module reads JSON and
bytes only (no scikit-learn), so the registry and the model loader can use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "bundle.json"
FORMAT_VERSION = 1


class BundleError(ValueError):
    """A bundle is incomplete or tampered with: the message names the file and what is wrong."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(data_sha256: str, params: dict[str, Any], seed: int, git_commit: str, policy_sha256: str) -> str:
    """The training fingerprint: identity of a training run (skops files are not byte-reproducible)."""
    canonical = json.dumps(
        {"data": data_sha256, "params": params, "seed": seed, "git_commit": git_commit, "policy": policy_sha256},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_manifest(bundle_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in the folder (except the manifest) into `files` and write bundle.json atomically."""
    files = {
        p.name: sha256_file(p)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    manifest = {"format_version": FORMAT_VERSION, **meta, "files": files}
    write_json(bundle_dir / MANIFEST, manifest)
    return manifest


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise BundleError(f"{path}: missing: not a model bundle") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path}: has no 'files' table of hashes")
    return manifest


def verify(bundle_dir: Path) -> dict[str, Any]:
    """Check every file listed in bundle.json against its sha256; return the manifest. Raises BundleError."""
    manifest = read_manifest(bundle_dir)
    for name, expected in manifest["files"].items():
        if "/" in name or name.startswith("."):
            raise BundleError(f"{bundle_dir / MANIFEST}: file name {name!r} is not a plain file name")
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MANIFEST} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(f"{path}: sha256 {actual[:12]}… does not match {MANIFEST} ({expected[:12]}…)")
    return manifest


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes owner-only files; these are shared reports and manifests
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
