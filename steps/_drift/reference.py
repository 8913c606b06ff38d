"""The production version's reference for the drift check, read from the registry: its profile.json (the binned
methods) and its reference ECDFs (the raw methods), each checked against its sha256 in bundle.json."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from steps._core.errors import UsageError
from steps._drift.ecdf import ECDF_FILE, Ecdf, load_ecdfs
from steps._model.bundle import PROFILE_FILE
from steps._storage.registry import Registry


def reference_profile(registry: Registry, model: str) -> tuple[int, dict[str, Any]]:
    """(production version, its profile.json), the file checked against the version's stored sha256."""
    version = registry.production(model)
    if version is None:
        raise UsageError(f"model {model!r}: no production version in the registry at {registry.location}")
    data = _version_file(registry, model, version, PROFILE_FILE)
    if data is None:
        raise UsageError(f"{model} v{version}: the bundle has no {PROFILE_FILE} (the reference for drift)")
    try:
        profile: dict[str, Any] = json.loads(data)
    except ValueError as err:
        raise UsageError(f"{model} v{version}: {PROFILE_FILE} is not valid JSON: {err}") from err
    return version, profile


def stored_ecdfs(registry: Registry, model: str, version: int, method: str) -> dict[str, Ecdf]:
    """The version's reference ECDFs (reference_ecdf.npz, checked against its sha256), which the raw methods
    (wasserstein, ks) compare a current dataset with."""
    data = _version_file(registry, model, version, ECDF_FILE)
    if data is None:
        raise UsageError(
            f"{model} v{version}: drift.method {method!r} compares raw values with the reference ECDFs "
            f"({ECDF_FILE}), and this version was trained before bundles kept them: retrain the model "
            f"(mlops run training --model {model}) and promote the new version, or use drift.method psi or "
            "jensen_shannon, which need only profile.json"
        )
    try:
        return load_ecdfs(data, f"{model} v{version} {ECDF_FILE}")
    except ValueError as err:
        raise UsageError(str(err)) from err


def _version_file(registry: Registry, model: str, version: int, name: str) -> bytes | None:
    """A file of the version, checked against its sha256 in bundle.json; None when the bundle has no such file."""
    expected = registry.manifest(model, version)["files"].get(name)
    if not expected:
        return None
    data, _ = registry.store.get(f"models/{model}/versions/{version}/{name}")
    if hashlib.sha256(data).hexdigest() != expected:
        raise UsageError(f"{model} v{version}: {name} does not match its sha256 in bundle.json")
    return data
