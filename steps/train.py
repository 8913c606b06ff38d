"""Train step: fit the policy's model on the validated dataset and write a model bundle and the holdout.

    python -m steps.train --data DIR --policy FILE --bundle DIR --holdout FILE
                          [--git-commit SHA] [--reason TEXT] [--drifted-features JSON]
                          [--fingerprint-out FILE]

The holdout split is stratified and fixed by the policy's seed; the bundle (model.skops, model.trees.json when the
estimator compiles, profile.json, reference_ecdf.npz, bundle.json) is built in a temporary folder beside --bundle
and renamed into place when complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steps._core import threads as _threads
from steps._core.categories import key
from steps._core.documents import BundleManifest, CompiledPredictorRecord, ContractRecord, TrainingRecord
from steps._core.errors import UsageError, run
from steps._core.files import publish_folder, replacing, write_json, write_text
from steps._core.policy import DataPolicy, Feature, Policy, load_policy
from steps._drift import ecdf as _drift
from steps._model import bundle as _bundle
from steps._model import profile as _profile
from steps._model import skops as _model
from steps._model import task as _task
from steps._model import threshold as _threshold
from steps._model import training_data as _data
from steps._model import trees as _predictor
from steps._model.bundle import PROFILE_FILE
from steps._model.contract import contract_to_dict

ECDF_FILE = _drift.ECDF_FILE


@dataclass
class TrainResult:
    pipeline: Any
    profile: dict[str, Any]
    meta: TrainingRecord  # bundle.json without `files` and `format_version` (write_manifest adds them)
    holdout: pd.DataFrame
    trees: dict[str, Any] | None = None  # the compiled predictor's data (steps._model.trees), when it exports
    # The numeric features' training values as empirical CDFs: the reference of the raw drift methods.
    ecdfs: dict[str, _drift.Ecdf] | None = None
    threads: int = 1  # how many threads fit and scored (the model is the same for any count)

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def write(self, bundle_dir: Path, holdout_path: Path) -> BundleManifest:
        """Write the bundle and the holdout; a reader never sees half a bundle. Returns the manifest."""
        bundle_dir = Path(bundle_dir)
        if bundle_dir.exists() and not bundle_dir.is_dir():
            raise UsageError(f"--bundle {bundle_dir}: exists and is not a folder")
        bundle_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=bundle_dir.parent, prefix=f".{bundle_dir.name}.tmp-"))
        try:
            _model.save(self.pipeline, tmp / _model.MODEL_FILE)
            if self.trees is not None:
                _predictor.save(self.trees, tmp / _predictor.TREES_FILE)
            write_json(tmp / PROFILE_FILE, self.profile)
            if self.ecdfs is not None:
                _drift.save_ecdfs(self.ecdfs, tmp / ECDF_FILE)
            manifest = _bundle.write_manifest(tmp, self.meta)
            # mkdtemp/mkstemp make owner-only files; a server running as another user must read them.
            tmp.chmod(0o755)
            for path in tmp.iterdir():
                path.chmod(0o644)
            # Always Parquet, whatever the name: Argo picks artifact paths.
            with replacing(Path(holdout_path)) as tmp_holdout:
                self.holdout.to_parquet(tmp_holdout, index=False)
            publish_folder(tmp, bundle_dir, _bundle.MANIFEST)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest


def train(
    data_dir: Path,
    policy: Policy,
    git_commit: str = "unknown",
    reason: str = "manual",
    drifted_features: list[str] | None = None,
) -> TrainResult:
    """Split, fit and profile; returns everything the bundle holds. Deterministic for the same inputs, whatever
    the number of threads (steps._core.threads; HistGradientBoosting sums each histogram on one thread)."""
    from sklearn.utils._param_validation import InvalidParameterError

    data, spec = policy.data, policy.model
    task = spec.task
    names = _data.columns(data_dir)
    if names is not None and data.target not in names:
        raise UsageError(f"--data: target column {data.target!r} (data.target) is missing")
    target, source = _data.read(data_dir, data.target)
    if target.isna().any():
        raise UsageError(
            f"--data: target column {data.target!r} has {int(target.isna().sum())} "
            f"missing values; every training row needs a label"
        )
    missing = [n for n in data.feature_names if names is not None and n not in names]
    if missing:
        raise UsageError(f"--data: columns {missing} required by the feature contract are missing")
    contract: ContractRecord = {**contract_to_dict(data), "task": task}
    if task == "regression":
        contract.pop("positive_label", None)
        contract["target_min"], contract["target_max"] = data.target_min, data.target_max
    else:
        contract["classes"] = _classes(target, data, task)
        if task == "multiclass":
            contract.pop("positive_label", None)
    y = _task.encode_target(target, contract)
    _check_enough_rows(y, data, task, contract)
    rule = spec.threshold_rule
    # The threshold is chosen on rows the model did not learn from, and not on the holdout the gates judge.
    rows = _data.split(y, spec, stratified=task != "regression",
                       threshold_rows=task == "binary" and rule.rule != "fixed")

    from steps._model import features as _features  # scikit-learn: after main() set OpenMP's environment

    pipeline = _features.build_pipeline(data.features, spec.estimator, spec.params, spec.seed, task)
    encoder = pipeline[0].fit(pd.DataFrame(columns=data.feature_names))
    profile: dict[str, Any] = {"features": {}, "rows": len(rows.train)}
    ecdfs: dict[str, _drift.Ecdf] = {}
    beside = _data.InOrder()  # each column's matrix copy, profile and ECDF, done while the next column is read

    def describe(name: str, column: pd.Series, codes: np.ndarray) -> None:
        beside.submit(_describe, name, data.feature(name), column, codes, rows.train)

    try:
        parts = _data.encode(data_dir, data.feature_names, rows, encoder.encode_column, describe, beside)
        described = [d for d in beside.results() if d is not None]  # None: a column copied into the matrices
    finally:
        beside.close()
    for name, feature_profile, reference in described:
        profile["features"][name] = feature_profile
        if reference is not None:
            ecdfs[name] = reference
    y_fit, y_hold = y[rows.fit], y[rows.holdout]
    threads = _threads.count(spec.threads)
    started = time.perf_counter()
    try:
        with _model.compute_threads(threads):
            # The contract's encoding is done (`parts`); the rest of the pipeline learns from its codes.
            pipeline[1:].fit(parts.fit, y_fit)
            _machine_free(pipeline[-1])
            parts.fit = np.empty((0, parts.fit.shape[1]))  # free the training matrix (a view would keep it)
            predictions = _task.predict(pipeline[1:], _data.holdout_codes(parts, data.feature_names,
                                                                          encoder.encode_column), task)
            validation_scores = None if parts.validation is None else _task.predict(pipeline[1:], parts.validation,
                                                                                   task)
    except InvalidParameterError as err:
        raise UsageError(f"model.params: {err}") from err
    except (ValueError, TypeError) as err:  # the data or parameters do not suit the estimator
        raise UsageError(f"cannot fit {spec.estimator} on --data {data_dir}: {err}") from err
    fit_seconds = time.perf_counter() - started
    threshold: float | None = None
    threshold_record: dict[str, Any] | None = None
    if task == "binary":
        if validation_scores is None or rows.validation is None:
            threshold, threshold_record = float(rule.value or 0.5), {"rule": "fixed", "threshold": rule.value}
        else:
            y_val = y[rows.validation]
            choice = _threshold.choose(y_val, validation_scores, rule)
            threshold, threshold_record = choice.threshold, choice.record(rule, len(y_val), int(y_val.sum()))
            if not choice.reached:
                print(f"train: warning: model.threshold {rule.rule} {rule.value} is out of reach on the validation "
                      f"rows; took {choice.threshold:.4g} (precision {choice.precision:.3f}, recall "
                      f"{choice.recall:.3f})", file=sys.stderr)

    # The holdout keeps the original target values; gate recomputes the labels from the contract.
    holdout = _data.holdout_frame(parts, data.feature_names, target, rows.holdout)
    y_train = y[rows.train]
    metrics: dict[str, Any] = {"train_rows": len(y_train), "holdout_rows": len(y_hold),
                               **_holdout_metrics(task, y_train, y_hold, predictions, threshold),
                               "fit_seconds": round(fit_seconds, 3)}
    if rows.sampled_from is not None:
        metrics["sampled_from_rows"] = rows.sampled_from  # model.max_training_rows took a sample of this many
    trees, compiled = _compiled_predictor(pipeline, spec.estimator, task)
    meta = TrainingRecord(
        model=policy.model_name,
        fingerprint=_bundle.fingerprint(source["sha256"], spec.params, spec.seed, git_commit, policy.sha256),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_commit=git_commit,
        reason=reason,
        drifted_features=list(drifted_features or []),
        data=source,
        estimator=spec.estimator,
        params=spec.params,
        seed=spec.seed,
        threshold=threshold,
        policy_sha256=policy.sha256,
        contract=contract,
        library_versions=_model.library_versions(),
        metrics=metrics,
        compiled_predictor=compiled,
    )
    if threshold_record is not None:
        meta["threshold_rule"] = threshold_record
    # What the model predicts on rows it did not learn from: the reference of prediction drift.
    profile["prediction"] = _profile.prediction_profile(_task.point_predictions(predictions, task), task,
                                                        contract.get("classes"))
    if task == "regression":
        profile["target"] = _profile.value_profile(y_train)
    return TrainResult(pipeline=pipeline, profile=profile, meta=meta, holdout=holdout, trees=trees, ecdfs=ecdfs,
                       threads=threads)


def _machine_free(model: Any) -> None:
    """HistGradientBoosting's binner keeps the thread count it binned with (only its fit reads it): saved as one
    thread, as every bundle so far was, so model.skops is the same whichever machine trained it."""
    binner = getattr(model, "_bin_mapper", None)
    if binner is not None and hasattr(binner, "n_threads"):
        binner.n_threads = 1


def _describe(name: str, feature: Feature, column: pd.Series, codes: np.ndarray,
              train_rows: np.ndarray) -> tuple[str, dict[str, Any], _drift.Ecdf | None]:
    """A feature's profile and (numbers) its ECDF over the rows the model learns from (the training split), in any
    order: the reference of drift."""
    if feature.type == "categorical":
        return name, _profile.feature_profile(column.take(train_rows), feature), None
    values = codes[train_rows]
    return name, _profile.feature_profile(pd.Series(values, name=name), feature), _reference_ecdf(values)


def _reference_ecdf(values: np.ndarray) -> _drift.Ecdf:
    """A numeric feature's training values as the raw drift methods' reference: exact, then thinned."""
    e = _drift.ecdf(values)
    _ = e.std  # the normed Wasserstein's denominator, of the exact values
    return _drift.thin(e, _drift.MAX_ECDF_VALUES)


def _check_enough_rows(y: np.ndarray, data: DataPolicy, task: str, contract: ContractRecord) -> None:
    """At least two rows of each class (a stratified split needs them); a regression target with two values."""
    if task == "regression":
        if len(np.unique(y)) < 2:
            raise UsageError(f"--data: target {data.target!r} has {len(np.unique(y))} distinct value(s) in "
                             f"{len(y)} rows; a regression model needs a target that varies")
        return
    counts = np.bincount(y, minlength=2 if task == "binary" else len(contract.get("classes") or []))
    if task == "binary" and counts.min() < 2:
        raise UsageError(
            f"--data: target {data.target!r} needs at least 2 rows of each class to stratify; "
            f"{int(counts[1])} of {len(y)} rows equal data.positive_label={data.positive_label!r}"
        )
    if task == "multiclass" and counts.min() < 2:
        classes = contract.get("classes") or []
        few = [f"{classes[i]!r} ({int(c)} rows)" for i, c in enumerate(counts) if c < 2]
        raise UsageError(f"--data: target {data.target!r}: every class needs at least 2 rows to stratify the "
                         f"holdout; {', '.join(few)} (data.classes: remove a class the data does not have)")


def _holdout_metrics(task: str, y_train: np.ndarray, y_hold: np.ndarray, predictions: np.ndarray,
                     threshold: float | None) -> dict[str, Any]:
    """The holdout's headline metrics recorded in bundle.json, and the naive baselines the gate compares with."""
    from sklearn import metrics as m

    if task == "regression":
        return {
            "train_target_mean": float(np.mean(y_train)),
            "holdout_rmse": float(np.sqrt(m.mean_squared_error(y_hold, predictions))),
            "holdout_mae": float(m.mean_absolute_error(y_hold, predictions)),
            "holdout_r2": float(m.r2_score(y_hold, predictions)),
        }
    if task == "multiclass":
        k = predictions.shape[1]
        predicted = np.argmax(predictions, axis=1)
        return {
            "train_class_shares": [float(s) for s in np.bincount(y_train, minlength=k) / len(y_train)],
            "holdout_accuracy": float(m.accuracy_score(y_hold, predicted)),
            "holdout_macro_f1": float(m.f1_score(y_hold, predicted, average="macro", labels=range(k),
                                                 zero_division=0)),
            "holdout_log_loss": float(m.log_loss(y_hold, predictions, labels=range(k))),
        }
    flagged = predictions >= (0.5 if threshold is None else threshold)
    return {
        "train_positive_rate": float(y_train.mean()),
        "holdout_positive_rate": float(y_hold.mean()),
        "holdout_accuracy": float(m.accuracy_score(y_hold, flagged)),
        "holdout_precision": float(m.precision_score(y_hold, flagged, zero_division=0)),
        "holdout_recall": float(m.recall_score(y_hold, flagged, zero_division=0)),
        "holdout_f1": float(m.f1_score(y_hold, flagged, zero_division=0)),
        "holdout_pr_auc": float(m.average_precision_score(y_hold, predictions)),
        "holdout_roc_auc": float(m.roc_auc_score(y_hold, predictions)),
    }


def _classes(target: pd.Series, data: DataPolicy, task: str = "binary") -> list[str | int]:
    """The target's classes as the data writes them, in the model's column order: binary the negative first
    (what the server answers with); multiclass data.classes, or the values the data has, sorted."""
    if task == "multiclass":
        if data.classes is not None:
            return list(data.classes)
        values = [_plain(v) for v in target.dropna().unique().tolist()]
        if len(values) < 3:
            raise UsageError(f"--data: target {data.target!r} has {len(values)} values ({values}); a multiclass "
                             "model needs three or more (two: model.task binary)")
        return sorted(values, key=lambda v: (isinstance(v, str), v))
    if data.classes is not None:
        positive = key(data.positive_label)
        return sorted(data.classes, key=lambda c: key(c) == positive)
    values = target.dropna().unique().tolist()
    positive_key = key(data.positive_label)
    negatives = [v for v in values if key(v) != positive_key]
    positives = [v for v in values if key(v) == positive_key]
    if not negatives or not positives:
        raise UsageError(
            f"--data: target {data.target!r} needs at least 2 rows of each class to stratify; "
            f"{int((target.map(key) == positive_key).sum())} of {len(target)} rows equal "
            f"data.positive_label={data.positive_label!r} (values seen: {sorted(map(str, values))[:10]})"
        )
    if len(negatives) != 1 or len(positives) != 1:
        shown = ", ".join(map(str, values[:10]))
        raise UsageError(f"--data: target {data.target!r} has {len(values)} values ({shown}); a binary model needs "
                         f"two, one of them data.positive_label={data.positive_label!r}")
    return [_plain(negatives[0]), _plain(positives[0])]


def _plain(value: Any) -> str | int:
    """A label as JSON writes it: numpy's integers as int; anything else as its text."""
    if isinstance(value, str):
        return value
    number = float(value) if isinstance(value, int | float) or hasattr(value, "__index__") else None
    if number is not None and number.is_integer():
        return int(number)
    return str(value)


def _compiled_predictor(pipeline: Any, estimator: str,
                        task: str) -> tuple[dict[str, Any] | None, CompiledPredictorRecord]:
    """The trees file for serving without scikit-learn (steps._model.trees), and what bundle.json says about it.
    A model that does not export is still a model: it is served through skops, and the reason is recorded."""
    if estimator != "hist_gradient_boosting":
        return None, {"file": None, "reason": f"{estimator} is served through skops"}
    try:
        trees = _predictor.export_trees(pipeline, task)
    except _predictor.ExportError as err:
        print(f"train: warning: no compiled predictor ({err}); the server will use model.skops", file=sys.stderr)
        return None, {"file": None, "reason": str(err)}
    return trees, {"file": _predictor.TREES_FILE, "format": _predictor.FORMAT, "trees": len(trees["trees"]),
                   "nodes": sum(len(t["leaf"]) for t in trees["trees"])}


def _git_commit() -> str:
    """The checked-out commit when run from a git work tree (a local run); pods pass --git-commit."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _drifted(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--drifted-features: not valid JSON ({err}): {text!r}") from err
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"--drifted-features: must be a JSON list of feature names (got {text!r})")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.train", description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", required=True, type=Path, help="validate's --out folder (data.parquet, source.json)"
    )
    p.add_argument("--policy", required=True, type=Path, help="the model's policy file (gates/<model>.yaml)")
    p.add_argument("--bundle", required=True, type=Path, help="folder to write the model bundle to")
    p.add_argument("--holdout", required=True, type=Path, help="Parquet file to write the holdout rows to")
    p.add_argument(
        "--git-commit", default="", help="commit of the code and policy (default: git rev-parse HEAD)"
    )
    p.add_argument("--reason", default="", help="why this training ran (default: manual)")
    p.add_argument(
        "--drifted-features", default="", help="JSON list of the features whose drift triggered it"
    )
    p.add_argument("--fingerprint-out", type=Path, help="file to write the training fingerprint to")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _threads.wait_passively()

    def body() -> int:
        policy = load_policy(args.policy)
        result = train(
            args.data,
            policy,
            # The templates pass "unknown" where nothing names the commit: a local checkout can still say it.
            git_commit=args.git_commit if args.git_commit not in ("", "unknown", None) else _git_commit(),
            reason=args.reason or "manual",
            drifted_features=_drifted(args.drifted_features),
        )
        result.write(args.bundle, args.holdout)
        if args.fingerprint_out:
            write_text(args.fingerprint_out, result.fingerprint)
        m = result.meta["metrics"]
        shown = {"binary": ("pr_auc", "roc_auc"), "multiclass": ("macro_f1", "log_loss"),
                 "regression": ("rmse", "r2")}[policy.model.task]
        print(
            f"train: {policy.model_name} {policy.model.task} {result.meta['estimator']} on {m['train_rows']} rows "
            f"(holdout {m['holdout_rows']}): holdout "
            + " ".join(f"{name} {m['holdout_' + name]:.3f}" for name in shown)
            + f" in {m['fit_seconds']:.1f}s ({result.threads} thread{'s' if result.threads > 1 else ''}); "
            f"fingerprint {result.fingerprint[:12]} -> {args.bundle}"
        )
        return 0

    return run("train", body)


if __name__ == "__main__":
    sys.exit(main())
