"""The gate step: every quality gate of the policy, absolute bounds and a baseline on the same holdout."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import gate, train
from steps._core.data import generate
from steps._model import skops as _model

ROWS = 20_000


def write_validated(frame: pd.DataFrame, folder: Path) -> Path:
    """What validate's --out folder holds: data.parquet and source.json (sha256 of the bytes read)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "data.parquet", index=False)
    digest = hashlib.sha256((folder / "data.parquet").read_bytes()).hexdigest()
    (folder / "source.json").write_text(
        json.dumps(
            {"uri": str(folder / "data.parquet"), "sha256": digest, "format": "parquet", "rows": len(frame)}
        )
    )
    return folder


@dataclass
class Model:
    bundle: Path
    holdout: Path
    policy: Path


def train_model(frame: pd.DataFrame, out: Path, policy: Path) -> Model:
    data = write_validated(frame, out / "data")
    with contextlib.redirect_stdout(io.StringIO()):
        code = train.main(
            [
                "--data",
                str(data),
                "--policy",
                str(policy),
                "--bundle",
                str(out / "bundle"),
                "--holdout",
                str(out / "holdout.parquet"),
                "--git-commit",
                "abc",
            ]
        )
    if code != 0:
        raise RuntimeError(f"training the test model failed with exit code {code}")
    return Model(out / "bundle", out / "holdout.parquet", policy)


def derive_policy(policy_file: Path, folder: Path, quality: dict[str, Any], replace: bool = False) -> Path:
    """The reference policy with some gates changed (or the whole quality section replaced)."""
    raw = yaml.safe_load(policy_file.read_text())
    raw["quality"] = quality if replace else {**raw["quality"], **quality}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / policy_file.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Gated:
    code: int
    report: dict[str, Any]
    html: str
    passed_out: str
    stdout: str
    stderr: str


def run_gate(
    candidate: Model, out: Path, policy: Path | None = None, baseline: Path | None = None, *extra: str
) -> Gated:
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [
        "--bundle",
        str(candidate.bundle),
        "--holdout",
        str(candidate.holdout),
        "--policy",
        str(policy or candidate.policy),
        "--report-dir",
        str(out / "report"),
        "--passed-out",
        str(out / "passed"),
        *extra,
    ]
    if baseline is not None:
        argv += ["--baseline-bundle", str(baseline)]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = gate.main(argv)
    report_file, html_file, passed_file = (
        out / "report" / "gate.json",
        out / "report" / "index.html",
        out / "passed",
    )
    return Gated(
        code=code,
        report=json.loads(report_file.read_text()) if report_file.exists() else {},
        html=html_file.read_text() if html_file.exists() else "",
        passed_out=passed_file.read_text() if passed_file.exists() else "",
        stdout=stdout.getvalue(),
        stderr=stderr.getvalue(),
    )


def run_gate_without_baseline(candidate: Model, out: Path, policy: Path | None = None) -> Gated:
    """The pure function, with no baseline: the CLI would ask the registry for the production version."""
    from steps._core.policy import load_policy

    loaded = load_policy(policy or candidate.policy)
    bundle = gate.load_bundle(candidate.bundle)
    holdout, y = gate.read_holdout(candidate.holdout, loaded, bundle)
    result = gate.gate(bundle, holdout, y, loaded, baseline=None)
    result.write(out / "report", out / "passed")
    return Gated(
        0,
        json.loads((out / "report" / "gate.json").read_text()),
        (out / "report" / "index.html").read_text(),
        (out / "passed").read_text(),
        "",
        "\n".join(result.failure_lines()),
    )


def entry(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in report["gates"] if g["name"] == name)


@pytest.fixture(scope="module")
def policy_file(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the reference policy, so an edit to gates/ while this module runs cannot split it."""
    snapshot = tmp_path_factory.mktemp("reference-policy") / policy_file.name
    shutil.copyfile(policy_file, snapshot)
    return snapshot


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(ROWS, seed=11)


@pytest.fixture(scope="module")
def quick_policy(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference model-quality bounds, with fewer latency calls and rows scored to keep the suite fast.

    Latency depends on the machine as much as the model (a busy CI runner can triple it), so its bound here is
    loose; test_resource_gates_fail_beyond_their_maximum shows that the gate does bite.
    """
    return derive_policy(
        policy_file,
        tmp_path_factory.mktemp("quick"),
        {
            "latency_p95_ms": {"maximum": 1000, "calls": 100},
            "peak_memory_mb": {"maximum": 256, "rows": 2000},
        },
    )


@pytest.fixture(scope="module")
def good(frame: pd.DataFrame, policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    return train_model(frame, tmp_path_factory.mktemp("good"), policy_file)


@pytest.fixture(scope="module")
def shuffled(frame: pd.DataFrame, policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A model trained on permuted labels: no signal, yet it predicts 'no fraud' well enough for accuracy."""
    noise = frame.assign(is_fraud=np.random.default_rng(0).permutation(frame["is_fraud"].to_numpy()))
    return train_model(noise, tmp_path_factory.mktemp("shuffled"), policy_file)


@pytest.fixture(scope="module")
def good_gated(good: Model, quick_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Gated:
    """The reference bounds on a good model with no baseline yet."""
    return run_gate_without_baseline(good, tmp_path_factory.mktemp("good-gated"), quick_policy)


def test_reference_policy_passes_a_good_model(good_gated: Gated) -> None:
    assert good_gated.report["passed"] is True, good_gated.stderr
    assert good_gated.report["failed"] == []
    assert good_gated.passed_out == "true"
    assert good_gated.report["candidate"]["pr_auc"] >= 0.5
    assert good_gated.report["candidate"]["latency_p95_ms"] > 0
    assert 0 < good_gated.report["candidate"]["peak_memory_mb"] < 256


def test_with_no_baseline_comparisons_pass_and_say_so(good_gated: Gated) -> None:
    assert good_gated.report["baseline"] is None
    for name in ("accuracy", "pr_auc", "roc_auc", "feature_importance_stability"):
        g = entry(good_gated.report, name)
        assert g["passed"] and g["baseline_value"] is None
        assert "no baseline yet" in g["note"]


def test_gate_json_has_the_documented_shape(good_gated: Gated, policy_file: Path) -> None:
    report = good_gated.report
    assert set(report) == {"model", "passed", "holdout_rows", "candidate", "baseline", "gates", "failed", "skipped"}
    assert report["model"] == "fraud-detection" and report["holdout_rows"] == ROWS // 5
    gates_in_policy = list(yaml.safe_load(policy_file.read_text())["quality"])
    assert [g["name"] for g in report["gates"]] == gates_in_policy
    for g in report["gates"]:
        assert set(g) == {
            "name",
            "passed",
            "status",
            "interval",
            "value",
            "bound",
            "bound_kind",
            "comparison",
            "baseline_value",
            "tolerance",
            "note",
        }
    assert entry(report, "accuracy") | {"value": None, "note": None} == {
        "name": "accuracy",
        "passed": True,
        "status": "pass",
        "interval": None,
        "value": None,
        "bound": 0.92,
        "bound_kind": "minimum",
        "comparison": "gte",
        "baseline_value": None,
        "tolerance": 0.01,
        "note": None,
    }


def test_edge_cases_are_recorded_case_by_case(good_gated: Gated) -> None:
    g = entry(good_gated.report, "edge_cases")
    assert g["passed"] and g["value"] == 0 and g["bound_kind"] == "required"
    for case in (
        "empty_batch",
        "contract_bounds",
        "huge_values",
        "missing_each_feature",
        "unseen_categories",
    ):
        assert f"{case}: " in g["note"]
    # The empty batch is refused with a clear error; the others give scores.
    assert re.search(r"empty_batch: error ValueError: .*0 sample", g["note"])
    assert re.search(r"huge_values: 32 scores in \[", g["note"])  # 16 numeric features at +-1e12
    # each of 23 features, then all
    assert "<td class='wrap'>missing_each_feature</td><td class='num'>24</td>" in good_gated.html


def test_the_report_page_is_one_file_with_inline_svg_pictures_and_a_link_to_gate_json(good_gated: Gated) -> None:
    pictures = re.findall(r"<svg role='img' aria-label='([^']+)'", good_gated.html)
    assert pictures[:4] == ["ROC curve", "Precision-recall curve", "Confusion matrix at the threshold",
                            "Recall per segment"]
    assert "data:" not in good_gated.html and "<img" not in good_gated.html and "<script" not in good_gated.html
    # The only link leaves the picture for the JSON beside the page (an SVG's own references start with #).
    links = re.findall(r"""href=['"]([^'"]+)""", good_gated.html)
    assert {link for link in links if not link.startswith("#")} == {"gate.json"}
    assert "Passed: the candidate meets every required gate" in good_gated.html
    assert "with no baseline to compare with" in good_gated.html


def test_shuffled_labels_pass_accuracy_but_are_rejected_by_pr_auc(
    shuffled: Model, good: Model, quick_policy: Path, tmp_path: Path
) -> None:
    # Scored on the real labels of the good model's holdout.
    gated = run_gate_without_baseline(Model(shuffled.bundle, good.holdout, quick_policy), tmp_path)
    assert entry(gated.report, "accuracy")["passed"] is True  # ~97.5% by never flagging fraud
    pr_auc = entry(gated.report, "pr_auc")
    assert pr_auc["passed"] is False and pr_auc["value"] < 0.1
    assert gated.report["passed"] is False and "pr_auc" in gated.report["failed"]
    assert gated.passed_out == "false"
    assert re.search(r"gate: FAILED pr_auc 0\.0\d+ < minimum 0\.5", gated.stderr)


def test_candidate_below_a_better_baseline_fails_with_the_baseline_value(
    shuffled: Model, good: Model, policy_file: Path, tmp_path: Path
) -> None:
    # Absolute minimums out of the way: only the comparison can fail.
    policy = derive_policy(
        policy_file,
        tmp_path / "policy",
        {
            "roc_auc": {"minimum": 0.0},
            "pr_auc": {"minimum": 0.0, "comparison": "gte", "tolerance": 0.03},
        },
        replace=True,
    )
    gated = run_gate(Model(shuffled.bundle, good.holdout, policy), tmp_path, baseline=good.bundle)
    assert gated.code == 0  # a rejection is a result, not an error
    assert gated.passed_out == "false" and gated.report["failed"] == ["pr_auc"]
    baseline_pr_auc = gated.report["baseline"]["metrics"]["pr_auc"]
    assert baseline_pr_auc > 0.5
    g = entry(gated.report, "pr_auc")
    assert g["baseline_value"] == baseline_pr_auc and g["value"] < baseline_pr_auc - 0.03
    assert f"< baseline {baseline_pr_auc:.4g} - 0.03" in g["note"]
    assert re.search(rf"gate: FAILED pr_auc 0\.0\d+ < baseline {baseline_pr_auc:.4g} - 0\.03", gated.stderr)
    assert "REJECTED (pr_auc)" in gated.stdout
    assert entry(gated.report, "roc_auc")["passed"] is True


def test_the_same_model_as_baseline_passes_with_perfectly_stable_importances(
    good: Model, quick_policy: Path, tmp_path: Path
) -> None:
    gated = run_gate(good, tmp_path, quick_policy, baseline=good.bundle)
    assert gated.code == 0 and gated.report["passed"] is True, gated.stderr
    stability = entry(gated.report, "feature_importance_stability")
    assert stability["value"] == pytest.approx(1.0)
    for name in ("accuracy", "pr_auc", "roc_auc"):
        assert entry(gated.report, name)["baseline_value"] == gated.report["candidate"][name]
    assert "Permutation importance" in gated.html
    assert len(re.findall("<svg role='img'", gated.html)) >= 5


def test_a_retrain_on_drifted_data_keeps_stable_importances_and_passes(
    good: Model, policy_file: Path, quick_policy: Path, tmp_path: Path
) -> None:
    """The loop's own case: the drift check fired (drift 0.7 drifts 12 of 23 features), the retrain must pass."""
    retrained = train_model(generate(ROWS, seed=12, drift=0.7), tmp_path / "retrained", policy_file)
    gated = run_gate(retrained, tmp_path, quick_policy, baseline=good.bundle)
    stability = entry(gated.report, "feature_importance_stability")
    assert stability["passed"] is True and stability["value"] >= 0.9, (stability["value"], stability.get("note"))


def test_a_candidate_that_relies_on_no_feature_fails_stability(
    good: Model, shuffled: Model, quick_policy: Path, tmp_path: Path
) -> None:
    """Trained on shuffled labels, its importances are noise around 0: uncorrelated with the baseline's."""
    gated = run_gate(shuffled, tmp_path, quick_policy, baseline=good.bundle)
    stability = entry(gated.report, "feature_importance_stability")
    assert stability["passed"] is False and stability["value"] < 0.5, (stability["value"], stability.get("note"))
    assert "feature_importance_stability" in gated.report["failed"]


def test_a_tampered_model_is_refused_before_it_is_loaded(good: Model, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(good.bundle, bundle)
    data = bytearray((bundle / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "model.skops").write_bytes(bytes(data))
    gated = run_gate(Model(bundle, good.holdout, good.policy), tmp_path)
    assert gated.code == 2
    assert "gate: error: bundle" in gated.stderr and "model.skops: sha256" in gated.stderr
    assert gated.report == {} and gated.passed_out == ""


def test_recall_gap_compares_only_segments_with_enough_positives(
    good: Model, policy_file: Path, tmp_path: Path
) -> None:
    policy = derive_policy(
        policy_file, tmp_path / "policy", {"recall_gap": {"maximum": 0.0, "min_positives": 20}}, replace=True
    )
    gated = run_gate_without_baseline(good, tmp_path, policy)
    # The same numbers, computed here from the model's own predictions.
    holdout = pd.read_parquet(good.holdout)
    flagged = _model.load(good.bundle / "model.skops").predict_proba(holdout)[:, 1] >= 0.5
    fraud = holdout["is_fraud"].to_numpy() == 1
    recalls = {
        r: flagged[fraud & (holdout["region"].to_numpy() == r)].mean()
        for r in holdout["region"].unique()
        if (fraud & (holdout["region"].to_numpy() == r)).sum() >= 20
    }
    assert len(recalls) >= 2
    g = entry(gated.report, "recall_gap")
    assert g["value"] == pytest.approx(max(recalls.values()) - min(recalls.values()))
    assert g["passed"] is (g["value"] <= 0.0)
    assert f"over {len(recalls)} segments" in g["note"]


def test_resource_gates_fail_beyond_their_maximum(good: Model, policy_file: Path, tmp_path: Path) -> None:
    policy = derive_policy(
        policy_file,
        tmp_path / "policy",
        {
            "latency_p95_ms": {"maximum": 0.001, "calls": 20},
            "peak_memory_mb": {"maximum": 0.001, "rows": 500},
            "model_size_mb": {"maximum": 0.001},
        },
        replace=True,
    )
    gated = run_gate(good, tmp_path, policy, baseline=good.bundle)
    assert gated.code == 0 and gated.report["failed"] == ["latency_p95_ms", "peak_memory_mb", "model_size_mb"]
    size = sum((good.bundle / name).stat().st_size for name in ("model.skops", "model.trees.json")) / 2**20
    assert gated.report["candidate"]["model_size_mb"] == pytest.approx(size)
    for name in gated.report["failed"]:
        value = gated.report["candidate"][name]
        assert f"gate: FAILED {name} {value:.4g} > maximum 0.001" in gated.stderr


def test_a_baseline_of_another_model_is_refused(
    good: Model, churn: tuple[Model, Gated], tmp_path: Path
) -> None:
    churn_model, _ = churn
    gated = run_gate(good, tmp_path, baseline=churn_model.bundle)
    assert (
        gated.code == 2 and "is a model of 'churn', but the policy is for 'fraud-detection'" in gated.stderr
    )


def test_an_unreadable_holdout_exits_2(good: Model, tmp_path: Path) -> None:
    (tmp_path / "holdout.parquet").write_text("not parquet")
    gated = run_gate(
        Model(good.bundle, tmp_path / "holdout.parquet", good.policy), tmp_path, baseline=good.bundle
    )
    assert gated.code == 2 and "--holdout" in gated.stderr and "not a readable Parquet file" in gated.stderr


def test_without_a_baseline_flag_the_registry_decides_and_an_empty_one_means_none(
    good: Model, policy_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("steps._storage.registry")
    policy = derive_policy(
        policy_file,
        tmp_path / "policy",
        {"pr_auc": {"minimum": 0.5, "comparison": "gte", "tolerance": 0.03}},
        replace=True,
    )
    gated = run_gate(good, tmp_path, policy, None, "--registry", str(tmp_path / "registry"))
    assert gated.code == 0 and gated.report["baseline"] is None
    assert "no baseline yet" in entry(gated.report, "pr_auc")["note"]


@pytest.mark.parametrize("version", ["²", "-1", "v1"], ids=["superscript-digit", "negative", "prefixed"])
def test_a_baseline_version_outside_the_reference_grammar_exits_2_naming_the_flag(
    version: str, good: Model, tmp_path: Path
) -> None:
    registry = str(tmp_path / "registry")
    gated = run_gate(good, tmp_path, None, None, "--registry", registry, "--baseline-version", version)
    assert gated.code == 2
    assert f"gate: error: --baseline-version: version {version!r}: expected a number (3)" in gated.stderr
    assert gated.report == {} and gated.passed_out == ""


@pytest.mark.parametrize("flags", [[], ["--baseline-version", "1"]], ids=["production", "version"])
def test_the_baseline_comes_from_the_registry(
    flags: list[str], good: Model, shuffled: Model, good_gated: Gated, policy_file: Path, tmp_path: Path
) -> None:
    _registry = pytest.importorskip("steps._storage.registry")
    registry = _registry.Registry.open(str(tmp_path / "registry"))
    registry.register("fraud-detection", good.bundle, passed=True, gate_report=good_gated.report)
    registry.promote("fraud-detection", 1, "production")
    policy = derive_policy(
        policy_file,
        tmp_path / "policy",
        {"pr_auc": {"minimum": 0.0, "comparison": "gte", "tolerance": 0.03}},
        replace=True,
    )
    gated = run_gate(
        Model(shuffled.bundle, good.holdout, policy),
        tmp_path,
        None,
        None,
        "--registry",
        str(tmp_path / "registry"),
        *flags,
    )
    assert gated.code == 0, gated.stderr
    assert gated.report["baseline"]["version"] == 1
    assert gated.report["failed"] == ["pr_auc"]
    assert entry(gated.report, "pr_auc")["baseline_value"] == pytest.approx(
        good_gated.report["candidate"]["pr_auc"]
    )
    assert "against baseline v1" in gated.stdout


# --- a second model: nothing in train or gate is specific to fraud detection -----------------------------

CHURN_POLICY = """
model_name: churn
data:
  source: /data/churn.parquet
  target: churned
  positive_label: "yes"
  segment: contract
  features:
    - {name: tenure_months, type: integer, min: 0, max: 72}
    - {name: monthly_charges, type: numeric, min: 0, max: 500, nullable: true}
    - {name: contract, type: categorical, categories: [month, year, two_year], unknown: other}
model:
  estimator: logistic_regression
  params: {max_iter: 1000}
  threshold: 0.4
  seed: 7
  holdout_fraction: 0.25
quality:
  accuracy: {minimum: 0.6}
  roc_auc: {minimum: 0.7, comparison: gte, tolerance: 0.01}
  latency_p95_ms: {maximum: 100, calls: 50}
  recall_gap: {maximum: 0.9, min_positives: 10}
  edge_cases: {required: true}
"""


def churn_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows)
    charges = np.round(rng.uniform(20, 120, rows), 2)
    contract = rng.choice(["month", "year", "two_year"], rows, p=[0.5, 0.3, 0.2])
    logit = (
        -0.5
        - 0.05 * tenure
        + 0.02 * (charges - 70)
        + np.select([contract == "month", contract == "year"], [1.5, 0.0], -1.0)
    )
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    charges[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {"tenure_months": tenure, "monthly_charges": charges, "contract": contract, "churned": churned}
    )


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, Gated]:
    folder = tmp_path_factory.mktemp("churn")
    policy = folder / "churn.yaml"
    policy.write_text(CHURN_POLICY)
    model = train_model(churn_frame(4000, seed=3), folder, policy)
    return model, run_gate(model, folder / "gate", baseline=model.bundle)


def test_a_second_policy_trains_and_gates_with_its_own_features(churn: tuple[Model, Gated]) -> None:
    model, gated = churn
    manifest = json.loads((model.bundle / "bundle.json").read_text())
    assert manifest["model"] == "churn" and manifest["estimator"] == "logistic_regression"
    assert [f["name"] for f in manifest["contract"]["features"]] == [
        "tenure_months",
        "monthly_charges",
        "contract",
    ]
    assert gated.code == 0 and gated.report["passed"] is True, gated.stderr
    assert gated.report["model"] == "churn" and gated.report["holdout_rows"] == 1000
    assert [g["name"] for g in gated.report["gates"]] == [
        "accuracy",
        "roc_auc",
        "latency_p95_ms",
        "recall_gap",
        "edge_cases",
    ]
    assert "contract: recall" in entry(gated.report, "recall_gap")["note"]
    assert entry(gated.report, "roc_auc")["baseline_value"] == gated.report["candidate"]["roc_auc"]


def test_failed_out_names_the_failed_gates_for_the_workflows_outputs(
    shuffled: Model, good: Model, quick_policy: Path, tmp_path: Path
) -> None:
    # The training Workflow shows this file as its `failed-gates` output in the Argo UI.
    rejected = run_gate(Model(shuffled.bundle, good.holdout, quick_policy), tmp_path / "rejected", None, good.bundle,
                        "--failed-out", str(tmp_path / "rejected-failed"))
    assert rejected.code == 0 and "pr_auc" in rejected.report["failed"], rejected.stderr
    assert (tmp_path / "rejected-failed").read_text() == ", ".join(rejected.report["failed"])
    passing = run_gate(Model(good.bundle, good.holdout, quick_policy), tmp_path / "passing", None, good.bundle,
                       "--failed-out", str(tmp_path / "passing-failed"))
    assert passing.report["passed"] is True, passing.stderr
    assert (tmp_path / "passing-failed").read_text() == "none"
