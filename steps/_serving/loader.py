"""Getting a model into the server: a registry version fetched (every sha256 verified once), and a bundle
loaded into a ServedModel of its task (binary, multiclass, regression) with the compiled trees or, failing
those, the scikit-learn Pipeline."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steps._core.documents import BundleManifest
from steps._core.errors import UsageError
from steps._model import trees as _trees
from steps._model.bundle import PROFILE_FILE, Bundle, BundleError, read_manifest
from steps._model.skops import MODEL_FILE
from steps._serving.app import Predictor, ServedModel
from steps._serving.batcher import Predictions
from steps._serving.contract import ContractError, RequestContract
from steps._serving.log import log
from steps._serving.outputs import Label, prediction_bins
from steps._storage import registry as _registry

PREDICTORS = ("auto", "compiled", "skops")


class ServeError(UsageError):
    """The model cannot be served (tampered or incomplete bundle, no loadable model, bad settings)."""


def parse_model_reference(ref: str) -> tuple[str, int | str]:
    """steps._storage.registry.parse_reference, naming the likely cause of an empty version: a pod before its
    first rollout. Raises UsageError."""
    model, at, version = ref.partition("@")
    if at and model and not version:
        raise ServeError(f"--model {ref!r}: no version is pinned (an empty version: the pod-template annotation "
                         "model-version is not set yet; the rollout step sets it)")
    return _registry.parse_reference(ref)


def fetch(ref: str, registry: str | None, out: Path) -> tuple[Path, BundleManifest]:
    """Download a version into `out`, moved there only once every sha256 is verified; returns the folder and
    its (verified) manifest."""
    model, version = parse_model_reference(ref)
    try:
        dest = _registry.Registry.open(registry or None).fetch(model, version, out)
        return dest, read_manifest(dest)
    except BundleError as err:
        raise ServeError(f"{ref}: refused: {err}") from err


class SkopsPredictor:
    """The bundle's scikit-learn Pipeline (loaded with our trusted types only), after its contract encoder, as the
    served predictor protocol has it: binary P(positive) per row, regression the value, multiclass k
    probabilities per row in the order of the contract's classes (the model's classes are their codes 0..k-1)."""

    kind = "skops"

    def __init__(self, bundle: Bundle):
        from steps._model import features as _features
        from steps._model import skops as _skops

        pipeline = bundle.pipeline
        path = bundle.path / MODEL_FILE
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) < 2 or not isinstance(steps[0][1], _features.ContractEncoder):
            raise _skops.ModelError(f"{path}: not a Pipeline that starts with the contract encoder")
        # Our rows are already contract-encoded: skip the encoder (and pandas) on every call.
        self.model = pipeline[1:]
        self.task = bundle.task
        self.positive = 0
        self.columns: list[int] = []
        self.k = 0
        codes = getattr(self.model, "classes_", None)
        classes = [] if codes is None else [int(c) for c in codes]
        if self.task == "binary":
            if 1 not in classes:
                raise _skops.ModelError(f"{path}: the model has no positive class 1 (classes {classes})")
            self.positive = classes.index(1)
        elif self.task == "multiclass":
            self.k = len(bundle.classes or ())
            if not classes or not all(0 <= c < self.k for c in classes) or len(set(classes)) != len(classes):
                raise _skops.ModelError(f"{path}: the model's classes {classes} are not codes of the contract's "
                                        f"{self.k} classes (0..{self.k - 1})")
            # A class the training split lacked has no column: its probability is 0.
            self.columns = classes
        elif not hasattr(self.model, "predict"):
            raise _skops.ModelError(f"{path}: a regression model without predict")
        if not os.environ.get("OMP_NUM_THREADS"):
            # One thread per worker: OpenMP's spinning threads collapse on shared CPUs (steps._model.skops).
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1)

    def predict(self, rows: Sequence[Sequence[float]]) -> Predictions:
        import numpy as np

        matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        if self.task == "binary":
            scores: list[float] = self.model.predict_proba(matrix)[:, self.positive].tolist()
            return scores
        if self.task == "regression":
            values: list[float] = np.asarray(self.model.predict(matrix), dtype=np.float64).reshape(-1).tolist()
            return values
        proba = self.model.predict_proba(matrix)
        if self.columns != list(range(self.k)):
            full = np.zeros((len(rows), self.k))
            full[:, self.columns] = proba
            proba = full
        probabilities: list[list[float]] = proba.tolist()
        return probabilities


def load_model(bundle_dir: Path, predictor: str = "auto", max_rows: int = 1000,
               version: str | None = None, verified: BundleManifest | None = None) -> ServedModel:
    """Verify the bundle's hashes (unless `verified` is the manifest a fetch just verified), then load its
    contract, profile and model. Raises ServeError."""
    started = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    if predictor not in PREDICTORS:
        raise ServeError(f"PREDICTOR {predictor!r}: must be one of {', '.join(PREDICTORS)}")
    if not bundle_dir.is_dir():
        raise ServeError(f"model directory {bundle_dir}: not a folder (MODEL_PATH / --model-dir)")
    try:
        bundle = Bundle.open(bundle_dir, verified)
        profile = bundle.read_json(PROFILE_FILE)
    except BundleError as err:
        raise ServeError(f"bundle {bundle_dir}: refused: {err}") from err
    files = bundle.files
    try:
        contract = RequestContract(bundle.manifest["contract"], profile, max_rows=max_rows)
    except ContractError as err:
        raise ServeError(f"bundle {bundle_dir}: {err}") from err

    model: Predictor
    description: dict[str, Any]
    task, labels = bundle.task, _labels(bundle)
    try:
        bins = prediction_bins(task, labels, profile)
    except ContractError as err:
        raise ServeError(f"bundle {bundle_dir}: {err}") from err
    if predictor in ("auto", "compiled") and _trees.TREES_FILE in files:
        try:
            compiled = _trees.load(bundle_dir / _trees.TREES_FILE, contract.names, task,
                                   len(labels) if task != "regression" else None)
        except _trees.TreesError as err:
            raise ServeError(f"bundle {bundle_dir}: {err}") from err
        model, description = compiled, compiled.describe()
    elif predictor == "compiled":
        raise ServeError(f"bundle {bundle_dir}: PREDICTOR=compiled, but it has no {_trees.TREES_FILE} "
                         f"(files: {', '.join(sorted(files))})")
    elif MODEL_FILE in files:
        from steps._model.skops import ModelError

        try:
            pipeline = SkopsPredictor(bundle)
        except ModelError as err:
            raise ServeError(f"bundle {bundle_dir}: {err}") from err
        model, description = pipeline, {"predictor": "skops", "estimator": type(pipeline.model[-1]).__name__}
        if predictor == "auto":  # why not the compiled trees, as training recorded it
            record = bundle.manifest.get("compiled_predictor")
            reason = record.get("reason") if isinstance(record, dict) else None
            description["not_compiled"] = reason or f"no {_trees.TREES_FILE} in the bundle"
    else:
        raise ServeError(f"bundle {bundle_dir}: no model to serve: neither {_trees.TREES_FILE} nor "
                         f"{MODEL_FILE} is among its files ({', '.join(sorted(files))})")
    found = bundle.version
    if found is not None and version and str(found) != version:
        log("version_mismatch", "warning", bundle_version=found, model_version_env=version)
    served_version = str(found) if found is not None else (version or "unregistered")
    description["task"] = task
    description["load_seconds"] = round(time.perf_counter() - started, 3)
    return ServedModel(name=bundle.model, version=served_version, threshold=bundle.threshold, contract=contract,
                       predictor=model, inline=model.kind == "compiled", description=description,
                       labels=labels, task=task, bins=bins)


def _labels(bundle: Bundle) -> tuple[Label, ...]:
    """The classes from bundle.json's contract: binary (negative, positive), where bundles trained before it
    recorded classes answer 0/1; multiclass the k classes in probability-column order; regression none."""
    task = bundle.task
    if task == "regression":
        return ()
    if task == "multiclass":
        return tuple(bundle.classes or ())  # Bundle.open checked them
    classes = bundle.manifest["contract"].get("classes")
    if isinstance(classes, list) and len(classes) == 2 and all(type(c) in (str, int) for c in classes):
        return classes[0], classes[1]
    return 0, 1
