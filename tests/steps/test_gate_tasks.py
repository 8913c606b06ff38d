"""The gate step for multiclass and regression models: their metrics on the holdout (as scikit-learn computes
them), the gates against the naive baselines, the paired bootstrap against a production baseline, a baseline of
another task, and the report's pictures. Models: tests/support/tasks.py, trained by steps.train."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as sk

from steps import gate, init, train, validate
from steps._core.policy import load_policy
from steps._model import bundle as _bundle
from steps._model import skops as _model
from steps._model import task as _task
from tests.steps.test_gate import Gated, Model, derive_policy, entry, run_gate, run_gate_without_baseline
from tests.support.models import trained_bundle
from tests.support.tasks import CLASSES, task_frame, task_policy, trained_task_bundle, validated_folder

TASKS = ["multiclass", "regression"]
DATA = Path(__file__).parents[1] / "data"
# Every gate of the task, with bounds the model trained on tests/support/tasks.py's table passes and a shuffled
# one does not; the resource gates with few calls and rows to keep the module fast.
RESOURCES = {
    "latency_p95_ms": {"maximum": 1000, "calls": 50},
    "peak_memory_mb": {"maximum": 256, "rows": 500},
    "model_size_mb": {"maximum": 50},
    "edge_cases": {"required": True},
    "predictor_parity": {"maximum": 1e-5},
    "feature_importance_stability": {"minimum": 0.8, "comparison": "gte"},
}
QUALITY: dict[str, dict[str, Any]] = {
    "multiclass": {
        "accuracy": {"minimum": 0.5, "comparison": "gte", "tolerance": 0.02},
        "macro_f1": {"minimum": 0.4, "comparison": "gte", "tolerance": 0.02},
        "log_loss": {"maximum": 1.2, "comparison": "lte", "tolerance": 0.02},
        "log_loss_vs_prior": {"maximum": 0.9, "comparison": "lte", "tolerance": 0.02},
        "class_recall": {"minimum": 0.2, "min_support": 20, "comparison": "gte", "tolerance": 0.05},
        "macro_f1_gap": {"maximum": 0.3, "min_rows": 100},
        **RESOURCES,
    },
    "regression": {
        "rmse": {"maximum": 10, "comparison": "lte", "tolerance": 0.2},
        "mae": {"maximum": 8, "comparison": "lte", "tolerance": 0.2},
        "r2": {"minimum": 0.5, "comparison": "gte", "tolerance": 0.02},
        "rmse_vs_mean": {"maximum": 0.7, "comparison": "lte", "tolerance": 0.02},
        **RESOURCES,
    },
}
# The gate that compares with the naive baseline, and the absolute ones a model that learnt nothing fails.
VS_NAIVE = {"multiclass": "log_loss_vs_prior", "regression": "rmse_vs_mean"}
ABSOLUTE = {"multiclass": {"accuracy", "macro_f1", "log_loss"}, "regression": {"rmse", "mae", "r2"}}


def as_model(trained: Any, policy: Path | None = None, holdout: Path | None = None) -> Model:
    return Model(trained.bundle, holdout or trained.holdout, policy or trained.policy)


@pytest.fixture(scope="module", params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def good(task: str, tmp_path_factory: pytest.TempPathFactory) -> Model:
    return as_model(trained_task_bundle(tmp_path_factory, task))


@pytest.fixture(scope="module")
def shuffled(task: str, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """Trained on the target permuted: it learnt nothing but the target's distribution."""
    return as_model(trained_task_bundle(tmp_path_factory, task, shuffled=True))


@pytest.fixture(scope="module")
def policy(task: str, good: Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return derive_policy(good.policy, tmp_path_factory.mktemp(f"policy-{task}"), QUALITY[task], replace=True)


@pytest.fixture(scope="module")
def good_gated(good: Model, policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Gated:
    return run_gate_without_baseline(good, tmp_path_factory.mktemp("good-gated"), policy)


def test_a_candidate_that_beats_its_naive_baseline_passes_every_gate(task: str, good_gated: Gated) -> None:
    report = good_gated.report
    assert report["passed"] is True and report["failed"] == [], good_gated.stderr
    assert [g["name"] for g in report["gates"]] == list(QUALITY[task])
    assert report["candidate"][VS_NAIVE[task]] < 0.9
    assert report["candidate"]["edge_cases"] == 0 and report["candidate"]["predictor_parity"] <= 1e-5
    stability = entry(report, "feature_importance_stability")
    assert stability["status"] == "skipped" and "no baseline yet" in stability["note"]


def test_the_metrics_are_scikit_learn_s_on_the_holdout(task: str, good: Model, good_gated: Gated) -> None:
    manifest = json.loads((good.bundle / "bundle.json").read_text())
    holdout = pd.read_parquet(good.holdout)
    model = _model.load(good.bundle / "model.skops")
    X = holdout[[f["name"] for f in manifest["contract"]["features"]]]
    got = good_gated.report["candidate"]
    if task == "regression":
        y, v = holdout["demand"].to_numpy(dtype=float), model.predict(X)
        mean = manifest["metrics"]["train_target_mean"]
        expected = {"rmse": sk.root_mean_squared_error(y, v), "mae": sk.mean_absolute_error(y, v),
                    "r2": sk.r2_score(y, v),
                    "rmse_vs_mean": sk.root_mean_squared_error(y, v)
                    / sk.root_mean_squared_error(y, np.full(len(y), mean))}
    else:
        y = pd.Index(CLASSES).get_indexer(pd.Index(holdout["queue"]))
        p = model.predict_proba(X)
        predicted = p.argmax(axis=1)
        shares = manifest["metrics"]["train_class_shares"]
        loss = sk.log_loss(y, p, labels=range(len(CLASSES)))
        counted = np.bincount(y, minlength=len(CLASSES)) >= 20
        expected = {"accuracy": sk.accuracy_score(y, predicted),
                    "macro_f1": sk.f1_score(y, predicted, average="macro"), "log_loss": loss,
                    "log_loss_vs_prior": loss / sk.log_loss(y, np.tile(shares, (len(y), 1)), labels=range(4)),
                    "class_recall": sk.recall_score(y, predicted, average=None)[counted].min()}
        channel = holdout["channel"].to_numpy()
        f1 = [sk.f1_score(y[channel == c], predicted[channel == c], average="macro") for c in set(channel)]
        expected["macro_f1_gap"] = max(f1) - min(f1)
        # train's own holdout metrics are the same numbers
        assert manifest["metrics"]["holdout_macro_f1"] == pytest.approx(got["macro_f1"])
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


def test_a_shuffled_target_candidate_is_rejected_by_the_naive_baseline_and_absolute_gates(
    task: str, shuffled: Model, good: Model, policy: Path, tmp_path: Path
) -> None:
    # Scored on the real targets of the good model's holdout.
    gated = run_gate_without_baseline(as_model(shuffled, policy, good.holdout), tmp_path)
    assert gated.report["passed"] is False and gated.passed_out == "false"
    naive = entry(gated.report, VS_NAIVE[task])
    # No better than the naive baseline (1.035 and 1.012 on this table): it learnt nothing.
    assert naive["status"] == "fail" and naive["value"] >= 1.0, naive
    failed = set(gated.report["failed"])
    assert {VS_NAIVE[task], *ABSOLUTE[task]} <= failed, failed
    assert f"gate: FAILED {VS_NAIVE[task]} " in gated.stderr


def test_a_worse_candidate_fails_the_comparison_beyond_the_bootstrap_interval(
    task: str, shuffled: Model, good: Model, tmp_path: Path
) -> None:
    # Bounds out of the way: only the comparisons can fail.
    compared = {name: {**g, **({"minimum": -1e9} if "minimum" in g else {"maximum": 1e9})}
                for name, g in QUALITY[task].items() if "comparison" in g and name != "feature_importance_stability"}
    policy = derive_policy(good.policy, tmp_path / "policy", compared, replace=True)
    gated = run_gate(as_model(shuffled, policy, good.holdout), tmp_path, baseline=good.bundle)
    assert gated.code == 0 and gated.report["baseline"] is not None
    assert set(gated.report["failed"]) == set(compared)
    for name in compared:
        g = entry(gated.report, name)
        assert g["interval"] is not None and "95% bootstrap interval of the difference" in g["note"], g
        assert g["baseline_value"] == pytest.approx(gated.report["baseline"]["metrics"][name])
        worse_even_at_best = g["interval"][1] < -g["tolerance"] if g["comparison"] == "gte" else (
            g["interval"][0] > g["tolerance"])
        assert worse_even_at_best, g


def test_the_same_model_as_baseline_passes_with_no_difference_and_stable_importances(
    good: Model, policy: Path, tmp_path: Path
) -> None:
    gated = run_gate(good, tmp_path, policy, baseline=good.bundle)
    assert gated.report["passed"] is True, gated.stderr
    assert entry(gated.report, "feature_importance_stability")["value"] == pytest.approx(1.0)
    compared = [g for g in gated.report["gates"] if g["comparison"] and g["name"] in gated.report["baseline"]["metrics"]
                and g["name"] != "feature_importance_stability" and g["interval"] is not None]
    assert compared and all(g["interval"] == [0.0, 0.0] for g in compared)


def test_the_report_has_the_task_s_pictures(task: str, good: Model, policy: Path, tmp_path: Path) -> None:
    gated = run_gate(good, tmp_path, policy, baseline=good.bundle)
    pictures = {"regression": ["Predicted vs actual", "Residuals vs predicted",
                               "Permutation importance (increase in RMSE)"],
                "multiclass": ["Confusion matrix (the most probable class)", "Precision and recall per class",
                               "Macro-F1 per segment", "Permutation importance (increase in log loss)"]}
    assert re.findall(r"<svg role='img' aria-label='([^']+)'", gated.html) == pictures[task]
    assert "data:" not in gated.html and "<img" not in gated.html
    assert ("<h2>Per class</h2>" in gated.html) is (task == "multiclass")


@pytest.fixture(scope="module")
def multiclass_demand(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A multiclass model under the regression model's name: production changed task between versions."""
    root = tmp_path_factory.mktemp("multiclass-demand")
    policy = task_policy("multiclass", root / "gates", model="demand")
    result = train.train(validated_folder(task_frame("multiclass", seed=4), root / "data"), load_policy(policy),
                         git_commit="0" * 40)
    result.write(root / "bundle", root / "holdout.parquet")
    return Model(root / "bundle", root / "holdout.parquet", policy)


@pytest.fixture(scope="module")
def binary_demand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference binary model's bundle under the regression model's name (another table, another task)."""
    folder = tmp_path_factory.mktemp("binary-demand") / "bundle"
    shutil.copytree(trained_bundle(tmp_path_factory).bundle, folder)
    manifest = json.loads((folder / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key)
    _bundle.write_manifest(folder, {**manifest, "model": "demand"})
    return folder


@pytest.mark.parametrize("other", ["binary", "multiclass"])
def test_a_baseline_of_another_task_skips_the_comparisons_and_never_crashes(
    other: str, multiclass_demand: Model, binary_demand: Path, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    baseline = binary_demand if other == "binary" else multiclass_demand.bundle
    regression = as_model(trained_task_bundle(tmp_path_factory, "regression"))
    policy = derive_policy(regression.policy, tmp_path / "policy", QUALITY["regression"], replace=True)
    gated = run_gate(regression, tmp_path, policy, baseline=baseline)
    assert gated.code == 0 and gated.report["passed"] is True, gated.stderr
    assert gated.report["baseline"] is None
    why = f"baseline {baseline} not comparable: it is a {other} model, the candidate a regression model"
    for name in ("rmse", "r2", "rmse_vs_mean", "feature_importance_stability"):
        g = entry(gated.report, name)
        assert g["status"] == "skipped" and why in g["note"], g
    assert entry(gated.report, "edge_cases")["status"] == "pass"
    assert "rmse_vs_mean" in gated.report["skipped"]
    # The policy decides whether a comparison that could not be made holds the candidate back.
    r2 = {**QUALITY["regression"]["r2"], "if_skipped": "block"}
    blocking = derive_policy(policy, tmp_path / "blocking", {"r2": r2})
    gated = run_gate(regression, tmp_path / "blocked", blocking, baseline=baseline)
    assert gated.report["passed"] is False and gated.report["failed"] == ["r2"]


def test_a_baseline_listing_the_classes_in_another_order_is_compared_class_by_class(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """data.classes reversed: the baseline's probability columns come in another order. Its metrics are its own
    (as scikit-learn computes them in its order), and the bootstrap pairs its columns with the candidate's classes:
    each interval holds the observed difference (misaligned columns would put the baseline's resampled log loss
    far from its measured one)."""
    good = as_model(trained_task_bundle(tmp_path_factory, "multiclass"))
    raw = yaml.safe_load(good.policy.read_text())
    raw["data"]["classes"] = CLASSES[::-1]
    raw["quality"] = QUALITY["multiclass"]
    policy = tmp_path / "gates" / good.policy.name
    policy.parent.mkdir()
    policy.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = train.train(validated_folder(task_frame("multiclass", seed=3), tmp_path / "data"), load_policy(policy),
                         git_commit="0" * 40)
    result.write(tmp_path / "reversed", tmp_path / "reversed.parquet")
    assert json.loads((tmp_path / "reversed" / "bundle.json").read_text())["contract"]["classes"] == CLASSES[::-1]
    fresh = task_frame("multiclass", rows=2000, seed=9)  # rows neither model trained on
    fresh.to_parquet(tmp_path / "fresh.parquet")
    compared = derive_policy(good.policy, tmp_path / "compared", QUALITY["multiclass"], replace=True)
    gated = run_gate(Model(good.bundle, tmp_path / "fresh.parquet", compared), tmp_path,
                     baseline=tmp_path / "reversed")
    assert gated.code == 0 and gated.report["baseline"] is not None, gated.stderr
    reversed_model = _model.load(tmp_path / "reversed" / "model.skops")
    p = reversed_model.predict_proba(fresh.drop(columns=["queue"]))
    y = pd.Index(CLASSES[::-1]).get_indexer(pd.Index(fresh["queue"]))
    baseline = gated.report["baseline"]["metrics"]
    assert baseline["accuracy"] == pytest.approx(sk.accuracy_score(y, p.argmax(axis=1)))
    assert baseline["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=range(4)))
    for name in ("accuracy", "macro_f1", "log_loss", "log_loss_vs_prior", "class_recall"):
        g = entry(gated.report, name)
        assert g["interval"][0] <= g["value"] - g["baseline_value"] <= g["interval"][1], g
        assert g["interval"][1] - g["interval"][0] < 0.1, g


def test_a_bundle_of_another_task_than_the_policy_s_is_refused(
    multiclass_demand: Model, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    regression_policy = trained_task_bundle(tmp_path_factory, "regression").policy
    gated = run_gate(Model(multiclass_demand.bundle, multiclass_demand.holdout, regression_policy), tmp_path)
    assert gated.code == 2 and gated.report == {}
    assert "is a multiclass model, but the policy's model.task is 'regression'" in gated.stderr


def test_a_holdout_value_outside_the_classes_is_refused_naming_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    good = as_model(trained_task_bundle(tmp_path_factory, "multiclass"))
    holdout = pd.read_parquet(good.holdout)
    holdout.loc[3, "queue"] = "refunds"
    holdout.to_parquet(tmp_path / "holdout.parquet")
    gated = run_gate(Model(good.bundle, tmp_path / "holdout.parquet", good.policy), tmp_path)
    assert gated.code == 2 and "value 'refunds' (row 3) is not one of the classes" in gated.stderr
    encoded = _task.encode_target(pd.read_parquet(good.holdout)["queue"], {"task": "multiclass", "classes": CLASSES})
    assert set(encoded) == {0, 1, 2, 3}


def _bundle_of(contract: dict[str, Any]) -> _bundle.Bundle:
    manifest = {"model": "m", "contract": {"features": [], **contract}, "files": {}}
    return _bundle.Bundle(Path("/nowhere"), manifest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("candidate", "baseline", "why"),
    [
        ({"task": "regression"}, {"task": "binary"}, "it is a binary model, the candidate a regression model"),
        ({"positive_label": "yes"}, {"positive_label": "no"}, "its positive class is 'no', the candidate's 'yes'"),
        ({"positive_label": 1}, {"positive_label": "1"}, ""),
        ({"task": "multiclass", "classes": ["a", "b", "c"]}, {"task": "multiclass", "classes": ["c", "a", "b"]}, ""),
        ({"task": "multiclass", "classes": ["a", "b", "c"]}, {"task": "multiclass", "classes": ["a", "b", "d"]},
         "its classes are ['a', 'b', 'd'], the candidate's ['a', 'b', 'c']"),
    ],
    ids=["another-task", "another-positive-class", "same-positive-class-by-key", "same-classes-reordered",
         "other-classes"],
)
def test_a_baseline_is_comparable_with_the_same_task_and_classes(
    candidate: dict[str, Any], baseline: dict[str, Any], why: str
) -> None:
    assert gate._unlike(_bundle_of(candidate), _bundle_of(baseline)) == why


# --- public tables (tests/data/README.md): mlops init's policy, validate, train, then the gate ------------------

REAL = {"multiclass": ("penguins", "species"), "regression": ("bikeshare", "bikers")}


def _real_bundle(table: str, target: str, policy: Path, folder: Path, shuffled: bool) -> Model:
    frame = pd.read_csv(DATA / f"{table}.csv")
    if shuffled:
        frame[target] = np.random.default_rng(0).permutation(frame[target].to_numpy())
    frame.to_csv(folder / f"{table}.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert validate.main(["--dataset", str(folder / f"{table}.csv"), "--policy", str(policy), "--out",
                              str(folder / "validated"), "--report", str(folder / "validation.json")]) == 0
        assert train.main(["--data", str(folder / "validated"), "--policy", str(policy), "--bundle",
                           str(folder / "bundle"), "--holdout", str(folder / "holdout.parquet")]) == 0
    return Model(folder / "bundle", folder / "holdout.parquet", policy)


@pytest.mark.parametrize("task", TASKS)
def test_on_a_public_table_the_model_passes_init_s_gates_and_a_shuffled_target_retrain_is_rejected(
    task: str, tmp_path: Path
) -> None:
    table, target = REAL[task]
    policy = tmp_path / f"{table}.yaml"
    with contextlib.redirect_stdout(io.StringIO()):
        assert init.main(["--data", str(DATA / f"{table}.csv"), "--target", target, "--out", str(policy)]) == 0
    policy.write_text(policy.read_text().replace("calls: 1000", "calls: 50").replace("rows: 10000", "rows: 1000"))
    assert load_policy(policy).model.task == task
    (tmp_path / "good").mkdir()
    (tmp_path / "shuffled").mkdir()
    good = _real_bundle(table, target, policy, tmp_path / "good", shuffled=False)
    gated = run_gate(good, tmp_path / "good", baseline=good.bundle)
    assert gated.report["passed"] is True, gated.stderr
    assert gated.report["candidate"][VS_NAIVE[task]] < 0.5  # far better than the naive baseline
    # The retrain on the shuffled target, gated on the good model's holdout with the good model in production.
    shuffled = _real_bundle(table, target, policy, tmp_path / "shuffled", shuffled=True)
    gated = run_gate(Model(shuffled.bundle, good.holdout, policy), tmp_path / "shuffled", baseline=good.bundle)
    assert gated.report["passed"] is False and gated.passed_out == "false"
    assert entry(gated.report, VS_NAIVE[task])["value"] > 1.0
    assert {VS_NAIVE[task], *ABSOLUTE[task]} <= set(gated.report["failed"]), gated.report["failed"]


def test_a_bundle_without_the_naive_baseline_skips_that_gate_and_compares_the_others(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A bundle.json without metrics.train_target_mean (hand-made, or from an older train) cannot give
    rmse_vs_mean: that gate is skipped saying why, and the other comparisons still run."""
    good = as_model(trained_task_bundle(tmp_path_factory, "regression"))
    folder = tmp_path / "bundle"
    shutil.copytree(good.bundle, folder)
    manifest = json.loads((folder / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key)
    del manifest["metrics"]["train_target_mean"]
    _bundle.write_manifest(folder, manifest)
    policy = derive_policy(good.policy, tmp_path / "policy", QUALITY["regression"], replace=True)
    gated = run_gate(Model(folder, good.holdout, policy), tmp_path, baseline=folder)
    assert gated.code == 0, gated.stderr
    g = entry(gated.report, "rmse_vs_mean")
    assert g["status"] == "skipped" and g["value"] is None
    assert g["note"] == "skipped: bundle.json has no metrics.train_target_mean to compare with"
    assert entry(gated.report, "rmse")["interval"] == [0.0, 0.0]
