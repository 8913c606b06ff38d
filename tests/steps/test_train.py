"""The train step: a deterministic split and fit, and a complete, verifiable bundle with its lineage."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps import train
from steps._core.data import generate
from steps._core.policy import load_policy
from steps._drift import ecdf as _drift
from steps._model import bundle as _bundle
from steps._model import skops as _model

ROWS = 20_000
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_validated(frame: pd.DataFrame, folder: Path, uri: str = "s3://data/transactions.parquet") -> Path:
    """What validate's --out folder holds: data.parquet and source.json (sha256 of the bytes read)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "data.parquet", index=False)
    digest = hashlib.sha256((folder / "data.parquet").read_bytes()).hexdigest()
    source = {"uri": uri, "sha256": digest, "format": "parquet", "rows": len(frame)}
    (folder / "source.json").write_text(json.dumps(source))
    return folder


@dataclass
class Trained:
    data: Path
    bundle: Path
    holdout: Path
    fingerprint_out: Path
    stdout: str
    code: int


def run_train(data: Path, out: Path, policy: Path, *extra: str) -> Trained:
    bundle, holdout, fp = out / "bundle", out / "holdout.parquet", out / "fingerprint.txt"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = train.main(
            [
                "--data",
                str(data),
                "--policy",
                str(policy),
                "--bundle",
                str(bundle),
                "--holdout",
                str(holdout),
                "--fingerprint-out",
                str(fp),
                *extra,
            ]
        )
    return Trained(data, bundle, holdout, fp, stdout.getvalue(), code)


@pytest.fixture(scope="module")
def policy_file(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the reference policy, so an edit to gates/ while this module runs cannot split it."""
    snapshot = tmp_path_factory.mktemp("reference-policy") / policy_file.name
    shutil.copyfile(policy_file, snapshot)
    return snapshot


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_validated(generate(ROWS, seed=11), tmp_path_factory.mktemp("validated"))


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Trained:
    return run_train(
        data_dir,
        tmp_path_factory.mktemp("run1"),
        policy_file,
        "--git-commit",
        COMMIT,
        "--reason",
        "automated_drift_detection",
        "--drifted-features",
        '["amount", "hour"]',
    )


@pytest.fixture(scope="module")
def trained_again(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Trained:
    return run_train(
        data_dir,
        tmp_path_factory.mktemp("run2"),
        policy_file,
        "--git-commit",
        COMMIT,
        "--reason",
        "automated_drift_detection",
        "--drifted-features",
        '["amount", "hour"]',
    )


def test_train_writes_a_bundle_that_verifies_with_its_lineage(trained: Trained, policy_file: Path) -> None:
    assert trained.code == 0
    manifest = _bundle.verify(trained.bundle)
    policy = load_policy(policy_file)
    source = json.loads((trained.data / "source.json").read_text())
    assert set(manifest["files"]) == {"model.skops", "model.trees.json", "profile.json", "reference_ecdf.npz"}
    assert manifest["model"] == "fraud-detection"
    assert manifest["git_commit"] == COMMIT
    assert manifest["reason"] == "automated_drift_detection"
    assert manifest["drifted_features"] == ["amount", "hour"]
    assert manifest["data"] == {k: source[k] for k in ("uri", "sha256", "rows", "format")}
    assert manifest["estimator"] == "hist_gradient_boosting" and manifest["params"] == policy.model.params
    assert manifest["seed"] == 42 and manifest["threshold"] == 0.5
    assert manifest["policy_sha256"] == hashlib.sha256(policy_file.read_bytes()).hexdigest()
    assert manifest["fingerprint"] == _bundle.fingerprint(
        source["sha256"], policy.model.params, 42, COMMIT, manifest["policy_sha256"]
    )
    assert [f["name"] for f in manifest["contract"]["features"]] == policy.data.feature_names
    assert manifest["contract"]["target"] == "is_fraud" and manifest["contract"]["segment"] == "region"
    assert set(manifest["library_versions"]) == {"python", "sklearn", "skops", "numpy", "pandas"}
    assert manifest["created_at"].endswith("+00:00")
    assert trained.fingerprint_out.read_text() == manifest["fingerprint"]


def test_train_prints_one_summary_line(trained: Trained) -> None:
    lines = trained.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("train: fraud-detection binary hist_gradient_boosting on 16000 rows (holdout 4000)")


def test_holdout_is_a_stratified_fifth_of_the_rows_with_the_original_target(trained: Trained) -> None:
    data = pd.read_parquet(trained.data / "data.parquet")
    holdout = pd.read_parquet(trained.holdout)
    metrics = _bundle.read_manifest(trained.bundle)["metrics"]
    assert len(holdout) == ROWS // 5 == metrics["holdout_rows"]
    assert metrics["train_rows"] + metrics["holdout_rows"] == ROWS
    assert list(holdout.columns) == list(data.columns)
    assert holdout["is_fraud"].mean() == pytest.approx(data["is_fraud"].mean(), abs=0.001)
    assert metrics["holdout_pr_auc"] > 0.5 and metrics["holdout_roc_auc"] > 0.8


def test_training_is_deterministic(trained: Trained, trained_again: Trained) -> None:
    first, second = _bundle.read_manifest(trained.bundle), _bundle.read_manifest(trained_again.bundle)
    assert first["fingerprint"] == second["fingerprint"]
    holdout = pd.read_parquet(trained.holdout)
    pd.testing.assert_frame_equal(holdout, pd.read_parquet(trained_again.holdout))
    scores = [
        _model.load(t.bundle / "model.skops").predict_proba(holdout)[:, 1] for t in (trained, trained_again)
    ]
    np.testing.assert_array_equal(scores[0], scores[1])
    assert json.loads((trained.bundle / "profile.json").read_text()) == json.loads(
        (trained_again.bundle / "profile.json").read_text()
    )
    # The reference ECDFs are written byte for byte the same.
    assert (trained.bundle / _drift.ECDF_FILE).read_bytes() == (trained_again.bundle / _drift.ECDF_FILE).read_bytes()


def test_profile_describes_every_contract_feature_of_the_training_rows(
    trained: Trained, policy_file: Path
) -> None:
    profile = json.loads((trained.bundle / "profile.json").read_text())
    policy = load_policy(policy_file)
    assert sorted(profile["features"]) == sorted(policy.data.feature_names)
    assert profile["rows"] == ROWS - ROWS // 5
    for name, fp in profile["features"].items():
        assert sum(fp["proportions"]) == pytest.approx(1.0), name
    assert profile["features"]["region"]["categories"] == ["north", "south", "east", "west", "other"]
    assert profile["features"]["device_age_days"]["missing"] == pytest.approx(0.03, abs=0.01)


def test_reference_ecdfs_hold_every_numeric_training_value_and_agree_with_the_profile(trained: Trained) -> None:
    """Two summaries of the same training rows, computed apart: the ECDF read at each profile edge gives the share
    of values in the profile's bins up to that edge."""
    profile = json.loads((trained.bundle / "profile.json").read_text())
    ecdfs = _drift.load_ecdfs((trained.bundle / _drift.ECDF_FILE).read_bytes())
    numeric = [name for name, fp in profile["features"].items() if fp["type"] != "categorical"]
    assert sorted(ecdfs) == sorted(numeric) and "amount" in numeric and "channel" not in ecdfs
    for name in numeric:
        fp, e = profile["features"][name], ecdfs[name]
        assert e.size == round(fp["count"] * (1 - fp["missing"])), name
        at_edges = np.searchsorted(e.values, fp["edges"][1:-1], side="right")
        shares = np.where(at_edges > 0, e.at_or_below[np.maximum(at_edges - 1, 0)], 0) / e.size
        np.testing.assert_allclose(shares, np.cumsum(fp["proportions"])[:-1], atol=1e-12, err_msg=name)


def test_saved_model_holds_only_trusted_types(trained: Trained) -> None:
    import skops.io as sio

    assert (
        set(sio.get_untrusted_types(file=trained.bundle / "model.skops")) - set(_model.TRUSTED_TYPES) == set()
    )


def _policy_with(policy_file: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = policy_file.read_text()
    assert old in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_another_commit_is_another_fingerprint(tmp_path: Path, policy_file: Path) -> None:
    data = write_validated(generate(2000, seed=1), tmp_path / "data")
    quick = _policy_with(policy_file, tmp_path, "max_iter: 150", "max_iter: 10")
    runs = [run_train(data, tmp_path / c, quick, "--git-commit", c) for c in ("aaa", "bbb")]
    prints = {r.fingerprint_out.read_text() for r in runs}
    assert len(prints) == 2


def test_retraining_into_the_same_folder_replaces_the_whole_bundle(tmp_path: Path, policy_file: Path) -> None:
    data = write_validated(generate(2000, seed=1), tmp_path / "data")
    (tmp_path / "out" / "bundle").mkdir(parents=True)
    (tmp_path / "out" / "bundle" / "stale.txt").write_text("from an earlier run")
    quick = _policy_with(policy_file, tmp_path, "max_iter: 150", "max_iter: 10")
    result = run_train(data, tmp_path / "out", quick, "--git-commit", "abc")
    assert result.code == 0
    assert sorted(p.name for p in result.bundle.iterdir()) == [
        "bundle.json", "model.skops", "model.trees.json", "profile.json", "reference_ecdf.npz"]
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


BAD_INPUTS = {
    "no-source": "source.json is missing",
    "rows-mismatch": "data.parquet has 500 rows but source.json says rows=499",
    "no-target": "target column 'is_fraud' (data.target) is missing",
    "one-class": "needs at least 2 rows of each class",
    "missing-feature": "columns ['utilization'] required by the feature contract are missing",
    "bad-param": "model.params.learning_rat: not a parameter of HistGradientBoostingClassifier",
    "bad-param-value": "model.params: The 'learning_rate' parameter",
    "bad-drifted-features": "--drifted-features: must be a JSON list of feature names",
    "empty-feature": "feature 'device_age_days' is missing in every one of the 500 rows",
}


@pytest.mark.parametrize(("break_it", "message"), list(BAD_INPUTS.items()), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    break_it: str, message: str, tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = generate(500, seed=2)
    policy, extra = policy_file, ["--git-commit", "abc"]
    if break_it == "no-target":
        frame = frame.drop(columns="is_fraud")
    if break_it == "one-class":
        frame["is_fraud"] = 0
    if break_it == "missing-feature":
        frame = frame.drop(columns="utilization")
    if break_it == "empty-feature":
        frame["device_age_days"] = float("nan")  # nullable in the contract, so validation lets it through
    data = write_validated(frame, tmp_path / "data")
    if break_it == "no-source":
        (data / "source.json").unlink()
    if break_it == "rows-mismatch":
        (data / "source.json").write_text(
            json.dumps({**json.loads((data / "source.json").read_text()), "rows": 499})
        )
    if break_it == "bad-param":
        policy = _policy_with(policy_file, tmp_path, "learning_rate: 0.1", "learning_rat: 0.1")
    if break_it == "bad-param-value":
        policy = _policy_with(policy_file, tmp_path, "learning_rate: 0.1", "learning_rate: -1")
    if break_it == "bad-drifted-features":
        extra += ["--drifted-features", '{"amount": 1}']
    result = run_train(data, tmp_path / "out", policy, *extra)
    assert result.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train: error: ") and message in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_threshold_rule_chooses_on_a_validation_split_and_is_recorded(tmp_path: Path, data_dir: Path,
                                                                        policy_file: Path) -> None:
    policy = _policy_with(policy_file, tmp_path, "  threshold: 0.5", "  threshold: {rule: max_f1}")
    trained = run_train(data_dir, tmp_path / "out", policy)
    assert trained.code == 0, trained.err
    manifest = json.loads((trained.bundle / "bundle.json").read_text())
    rule = manifest["threshold_rule"]
    assert rule["rule"] == "max_f1" and rule["threshold"] == manifest["threshold"] != 0.5
    # 20% of the training share, set aside from it: the holdout the gates judge was not used to choose.
    assert abs(rule["validation_rows"] - 0.2 * manifest["metrics"]["train_rows"]) <= 1
    assert 0 < rule["f1"] <= 1 and manifest["metrics"]["holdout_f1"] > 0
    assert manifest["contract"]["classes"] == [0, 1]
