"""Hand-made bundles and gate reports for the registry's tests: what the registry needs is files, hashes, a
fingerprint and a model name, not a trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from steps._core.documents import VersionRecord
from steps._model.bundle import write_manifest
from steps._storage.registry import Registry

MODEL = "churn-model"  # not the reference model: nothing in the registry may depend on it
# Gate reports as the registry accepts them (gate.json or a part of it): typed loosely on purpose.
PASSED: Any = {
    "model": MODEL,
    "passed": True,
    "candidate": {"accuracy": 0.95, "pr_auc": 0.71, "roc_auc": 0.9},
    "gates": [{"name": "accuracy", "passed": True}, {"name": "pr_auc", "passed": True}],
    "failed": [],
}
FAILED: Any = {
    "model": MODEL,
    "passed": False,
    "candidate": {"accuracy": 0.95, "pr_auc": 0.2},
    "gates": [{"name": "accuracy", "passed": True}, {"name": "pr_auc", "passed": False}],
    "failed": ["pr_auc"],
}


def make_bundle(root: Path, fingerprint: str, model: str = MODEL) -> Path:
    """A tiny hand-made bundle: what the registry needs is files, hashes, a fingerprint and a model name."""
    folder = root / f"bundle-{fingerprint}"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(f"weights of {fingerprint}".encode() * 50)
    (folder / "profile.json").write_text(json.dumps({"features": {}, "rows": 10}))
    write_manifest(folder, {"model": model, "fingerprint": fingerprint, "git_commit": "0123abcd", "reason": "test"})
    return folder


def register(reg: Registry, bundles: Path, fingerprint: str, report: Any = PASSED) -> VersionRecord:
    """Register a hand-made bundle of MODEL with `report` as its gate report."""
    return reg.register(MODEL, make_bundle(bundles, fingerprint), passed=report["passed"], gate_report=report)
