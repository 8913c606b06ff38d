"""Real models for the tests: the reference policy's model trained once per session by steps.train's own code,
copies of its bundle under other fingerprints (new registry versions), and small fits for quick checks."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps import train
from steps._core.data import generate
from steps._core.policy import Policy, load_policy
from steps._model import bundle as _bundle
from tests.support.paths import POLICY

ROWS = 20_000
# Quick settings of each estimator the policy may name: fits in a second on a few thousand rows.
ESTIMATORS = {
    "hist_gradient_boosting": {"max_iter": 30},
    "logistic_regression": {"max_iter": 500},
    "random_forest": {"n_estimators": 20},
}


@dataclass(frozen=True)
class Trained:
    bundle: Path
    holdout: Path
    policy: Path


def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The reference policy's model trained on 20k generated rows, once per session (steps.train's own code)."""
    root = tmp_path_factory.getbasetemp() / "serve-trained"
    done = Trained(root / "bundle", root / "holdout.parquet", root / POLICY.name)
    if (done.bundle / _bundle.MANIFEST).is_file():
        return done
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(POLICY, done.policy)  # a snapshot: gates/ may change while the session runs
    validated = root / "validated"
    validated.mkdir(exist_ok=True)
    frame = generate(ROWS, seed=11)
    frame.to_parquet(validated / "data.parquet", index=False)
    source = {"uri": "generated", "sha256": _bundle.sha256_file(validated / "data.parquet"), "format": "parquet",
              "rows": len(frame)}
    (validated / "source.json").write_text(json.dumps(source))
    result = train.train(validated, load_policy(done.policy), git_commit="0" * 40)
    result.write(done.bundle, done.holdout)
    return done


def candidate(trained: Trained, root: Path, name: str) -> Path:
    """A copy of the trained bundle under another training fingerprint: a new registry version."""
    folder = root / name
    shutil.copytree(trained.bundle, folder)
    manifest = json.loads((folder / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key, None)
    manifest["fingerprint"] = f"{manifest['fingerprint']}-{name}"
    _bundle.write_manifest(folder, manifest)
    return folder


@dataclass(frozen=True)
class SmallModel:
    """A logistic regression fitted on a few thousand generated rows under the reference contract."""

    policy: Policy
    pipeline: Any
    X: pd.DataFrame
    y: np.ndarray
    holdout: pd.DataFrame
