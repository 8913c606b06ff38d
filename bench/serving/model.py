"""The model every contender serves, the rows they are sent, and the scores they must answer.

The model comes from the training step when it exists (`python -m steps.validate` then `python -m steps.train`,
the documented command lines), else from a stand-in Pipeline built here from the policy (the contract's
ordinal encoding + the policy's estimator and params). Either way the very same estimator is also saved with
joblib for mlserver-sklearn, so every contender scores with the same trees.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from bench.serving import wire
from steps._core.data import generate, read_dataset
from steps._core.policy import Policy

# One JSON body per line in these files; post.lua rotates through them (wire.py writes the binary and gRPC ones).
BODY_FILES = {"v2": "bodies-v2.jsonl", "v1": "bodies-v1.jsonl"}
_V2_DATATYPE = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}


class ModelError(RuntimeError):
    """The benchmark's model could not be built or does not fit the policy; the message says which part."""


@dataclass(frozen=True)
class ReferenceModel:
    name: str
    source: str  # "steps.train bundle" | "bench stand-in pipeline" | "bundle DIR"
    bundle_dir: Path | None  # a bundle our server can load; None for the stand-in
    joblib_path: Path  # the same estimator, for mlserver-sklearn
    positive_index: int  # column of predict_proba holding the positive label's score
    rows: list[dict[str, Any]]  # the request rows, one per request
    expected: list[float]  # in-process positive-class score of each row
    body_files: dict[str, Path]  # protocol -> file of request bodies (one per row)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "bundle_dir": str(self.bundle_dir or ""),
                "joblib": str(self.joblib_path), "request_rows": len(self.rows)}


def build(policy: Policy, workdir: Path, *, rows: int, seed: int, dataset: str | None, model_dir: Path | None,
          request_rows: int) -> ReferenceModel:
    """Build (or load) the model, save it for every contender, and write the request bodies."""
    workdir.mkdir(parents=True, exist_ok=True)
    joblib_path, key_path = workdir / "model.joblib", workdir / "model-key.json"
    with_train = importlib.util.find_spec("steps.train") is not None
    # Training takes a while on a busy 2-core machine: reuse the last model when nothing it depends on changed.
    key = {"policy_sha256": policy.sha256, "rows": rows, "seed": seed, "dataset": dataset,
           "model_dir": str(model_dir or ""), "steps_train": with_train, "sklearn": _sklearn_version()}
    cached = key_path.is_file() and joblib_path.is_file() and json.loads(key_path.read_text()) == key
    if model_dir is not None:
        estimator, bundle, source = _load_bundle(model_dir), model_dir, f"bundle {model_dir}"
    elif with_train:
        bundle, source = workdir / "bundle", "steps.train bundle"
        if not (cached and (bundle / "bundle.json").is_file()):
            cached = False
            _train_bundle(policy, _training_frame(policy, rows, seed, dataset), workdir, bundle)
        estimator = _load_bundle(bundle)
    else:
        bundle, source = None, "bench stand-in pipeline"
        if cached:
            estimator = joblib.load(joblib_path)
        else:
            estimator = stand_in_pipeline(policy).fit(*_xy(policy, _training_frame(policy, rows, seed, dataset)))
    if not cached:
        key_path.unlink(missing_ok=True)
        joblib.dump(estimator, joblib_path)
        key_path.write_text(json.dumps(key))
    classes = list(getattr(estimator, "classes_", []))
    if policy.data.positive_label not in classes:
        raise ModelError(f"model classes {classes} do not include data.positive_label "
                         f"{policy.data.positive_label!r} of {policy.path}")
    positive_index = classes.index(policy.data.positive_label)

    request = _request_rows(policy, seed, dataset, request_rows)
    expected = estimator.predict_proba(pd.DataFrame(request))[:, positive_index].astype(float).tolist()
    body_files = {}
    for protocol, name in BODY_FILES.items():
        path = workdir / name
        path.write_text("".join(json.dumps(request_body(policy, protocol, row)) + "\n" for row in request))
        body_files[protocol] = path
    body_files.update(wire.write_bodies(policy, policy.model_name, request, workdir))
    return ReferenceModel(policy.model_name, source, bundle, joblib_path, positive_index, request, expected,
                          body_files)


def stand_in_pipeline(policy: Policy) -> Any:
    """The contract's preprocessing + the policy's estimator, until steps.train writes real bundles."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if policy.model.estimator != "hist_gradient_boosting":
        raise ModelError(f"{policy.path}: model.estimator {policy.model.estimator!r}: the bench's stand-in "
                         "pipeline builds hist_gradient_boosting only; pass --model-dir with a bundle from steps.train")
    categorical = [f for f in policy.data.features if f.type == "categorical"]
    numeric = [f.name for f in policy.data.features if f.type != "categorical"]
    # Unseen categories become missing, which the trees route like any missing value.
    encoder = OrdinalEncoder(categories=[list(f.categories) for f in categorical],
                             handle_unknown="use_encoded_value", unknown_value=np.nan,
                             encoded_missing_value=np.nan, dtype=np.float64)
    pre = ColumnTransformer([("categorical", encoder, [f.name for f in categorical]),
                             ("numeric", "passthrough", numeric)], verbose_feature_names_out=False)
    estimator = HistGradientBoostingClassifier(
        **policy.model.params, random_state=policy.model.seed,
        categorical_features=[True] * len(categorical) + [False] * len(numeric))
    return Pipeline([("preprocess", pre), ("estimator", estimator)])


def request_body(policy: Policy, protocol: str, row: dict[str, Any]) -> dict[str, Any]:
    """One single-row request. V2 is the Open Inference Protocol body that MLServer's pandas codec decodes
    into a DataFrame (one input per column, `content_type: pd`); V1 is `{"instances": [row]}`."""
    if protocol == "v1":
        return {"instances": [row]}
    if protocol != "v2":
        raise ModelError(f"protocol {protocol!r}: use v1 or v2")
    inputs = []
    for feature in policy.data.features:
        item: dict[str, Any] = {"name": feature.name, "datatype": _V2_DATATYPE[feature.type], "shape": [1],
                                "data": [row[feature.name]]}
        if feature.type == "categorical":
            item["parameters"] = {"content_type": "str"}
        inputs.append(item)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def _training_frame(policy: Policy, rows: int, seed: int, dataset: str | None) -> pd.DataFrame:
    frame = read_dataset(dataset).frame if dataset else generate(rows, seed=seed)
    missing = [c for c in [*policy.data.feature_names, policy.data.target] if c not in frame.columns]
    if missing:
        raise ModelError(f"dataset {dataset or 'generate()'} lacks columns {missing} that {policy.path} names "
                         "(pass --dataset with data for this policy)")
    return frame


def _xy(policy: Policy, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    x = frame[policy.data.feature_names].copy()
    for f in policy.data.features:
        # Nullable integers (pd.NA) become floats with NaN, which every estimator accepts.
        x[f.name] = x[f.name].astype(object) if f.type == "categorical" else x[f.name].astype("float64")
    return x, frame[policy.data.target]


def _request_rows(policy: Policy, seed: int, dataset: str | None, count: int) -> list[dict[str, Any]]:
    """Rows unseen in training, complete (JSON has no NaN and V2 numeric tensors take no null)."""
    frame = read_dataset(dataset).frame if dataset else generate(max(count * 4, 256), seed=seed + 1)
    frame = frame[policy.data.feature_names].dropna().head(count)
    if len(frame) < count:
        raise ModelError(f"only {len(frame)} complete rows for requests, {count} wanted")
    casts = {"numeric": float, "integer": int, "categorical": str}
    return [{f.name: casts[f.type](record[f.name]) for f in policy.data.features}
            for record in frame.to_dict("records")]


def _train_bundle(policy: Policy, frame: pd.DataFrame, workdir: Path, bundle: Path) -> None:
    """Run validate and train exactly as a workflow would (docs/steps.md), writing the bundle folder."""
    data_csv, validated = workdir / "train.csv", workdir / "validated"
    shutil.rmtree(bundle, ignore_errors=True)
    frame.to_csv(data_csv, index=False)
    commands = [
        [sys.executable, "-m", "steps.validate", "--dataset", str(data_csv), "--policy", str(policy.path),
         "--out", str(validated), "--report", str(workdir / "validate.json")],
        [sys.executable, "-m", "steps.train", "--data", str(validated), "--policy", str(policy.path),
         "--bundle", str(bundle), "--holdout", str(workdir / "holdout.parquet")],
    ]
    for command in commands:
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelError(f"{' '.join(command[1:3])} exited {done.returncode}: {done.stderr.strip()[-2000:]}")


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def _load_bundle(bundle: Path) -> Any:
    """The bundle's estimator, after its hashes check out. We trust our own bundle's types (skops asks)."""
    import skops.io

    from steps._model.bundle import BundleError, verify

    try:
        verify(bundle)
    except BundleError as err:
        raise ModelError(f"--model-dir {bundle}: {err}") from err
    path = bundle / "model.skops"
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
