"""The model bundle: a folder of files plus `bundle.json`, which records every file's sha256 and the lineage.

Nothing in a bundle is deserialised before `verify()` has checked every hash. `Bundle.open` is the one loader
the gate and the server use: hashes verified once, bundle.json's fields checked, the scikit-learn model loaded
only when asked for. This module reads JSON and bytes only (no scikit-learn), so the registry and the server's
compiled path can use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from steps._core.documents import BundleManifest
from steps._core.files import write_json
from steps._core.policy import TASKS, Feature

MANIFEST = "bundle.json"
PROFILE_FILE = "profile.json"  # the reference distribution (steps._model.profile) the drift step compares with
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


def write_manifest(bundle_dir: Path, meta: Mapping[str, Any]) -> BundleManifest:
    """Hash every file in the folder (except the manifest) into `files` and write bundle.json atomically."""
    files = {
        p.name: sha256_file(p)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    manifest = cast(BundleManifest, {"format_version": FORMAT_VERSION, **meta, "files": files})
    write_json(bundle_dir / MANIFEST, manifest)
    return manifest


def read_manifest(bundle_dir: Path) -> BundleManifest:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise BundleError(f"{path}: missing: not a model bundle") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path}: has no 'files' table of hashes")
    return cast(BundleManifest, manifest)


def verify(bundle_dir: Path) -> BundleManifest:
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


class Bundle:
    """A bundle folder whose hashes were verified: bundle.json's content and, on first use, its model."""

    def __init__(self, path: Path, manifest: BundleManifest):
        self.path, self.manifest = Path(path), manifest

    @classmethod
    def open(cls, path: Path | str, verified: BundleManifest | None = None) -> Bundle:
        """Verify every file's sha256 (unless `verified` is the manifest a verification just returned, e.g.
        `Registry.fetch`'s) and check the fields every reader relies on. Raises BundleError."""
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: not a folder")
        manifest = verified if verified is not None else verify(path)
        where = path / MANIFEST
        if not isinstance(manifest.get("model"), str) or not manifest["model"]:
            raise BundleError(f"{where}: 'model' must name the model, got {manifest.get('model')!r}")
        contract = manifest.get("contract")
        if not isinstance(contract, dict) or not isinstance(contract.get("features"), list):
            raise BundleError(f"{where}: has no 'contract' with a 'features' list: not a model bundle from steps.train")
        task = contract.get("task", "binary")
        if task not in TASKS:
            raise BundleError(f"{where}: contract.task must be one of {', '.join(TASKS)}, got {task!r}")
        threshold: Any = manifest.get("threshold", 0.5)
        if task == "binary" and (type(threshold) not in (int, float) or not 0.0 <= threshold <= 1.0):
            raise BundleError(f"{where}: 'threshold' must be a number in [0, 1], got {threshold!r}")
        classes = contract.get("classes")
        if task == "multiclass" and (not isinstance(classes, list) or len(classes) < 3
                                     or not all(type(c) in (str, int) for c in classes)):
            raise BundleError(f"{where}: contract.classes of a multiclass model must list its classes (three or "
                              f"more, text or whole numbers), got {classes!r}")
        return cls(path, manifest)

    @property
    def task(self) -> str:
        """binary | multiclass | regression; bundles trained before recording it are binary."""
        return str(self.manifest["contract"].get("task", "binary"))

    @property
    def classes(self) -> list[str | int] | None:
        """The classes in the model's column order (binary: negative first); None for regression."""
        classes = self.manifest["contract"].get("classes")
        return list(classes) if isinstance(classes, list) and self.task != "regression" else None

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def threshold(self) -> float | None:
        """The decision threshold of a binary model; None for multiclass and regression."""
        if self.task != "binary":
            return None
        threshold = self.manifest.get("threshold", 0.5)
        return 0.5 if threshold is None else float(threshold)

    @property
    def version(self) -> int | None:
        """The registry's version number; None for a bundle that was never registered (train's output)."""
        return self.manifest.get("version")

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version is not None else str(self.path)

    @property
    def files(self) -> dict[str, str]:
        return self.manifest["files"]

    @cached_property
    def features(self) -> tuple[Feature, ...]:
        from steps._model.contract import features_from_contract

        try:
            return features_from_contract(self.manifest["contract"])
        except ValueError as err:
            raise BundleError(f"{self.path / MANIFEST}: {err}") from err

    @cached_property
    def pipeline(self) -> Any:
        """The scikit-learn Pipeline of model.skops, loaded with our trusted types only. Raises ModelError."""
        from steps._model import skops

        return skops.load(self.path / skops.MODEL_FILE)

    def read_json(self, name: str) -> Any:
        """One of the bundle's (verified) JSON files, e.g. profile.json; None when the bundle has no such file."""
        if name not in self.files:
            return None
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise BundleError(f"{self.path / name}: not readable JSON: {err}") from err
