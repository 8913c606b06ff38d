"""`mlops init`: the rules that type each column, the target and its positive class, the gate bounds relative to a
useless model, the file it writes (accepted by the policy loader as it is) and its refusals; on a multiclass and a
regression table, the policy as written validated and trained on, its baselines measured on train's holdout. The
task rules themselves: tests/steps/_init/."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import init as step
from steps import train
from steps._core.errors import UsageError
from steps._core.policy import Gate, Policy, load_policy
from steps._init.columns import MAX_CODES, infer_column, widen
from steps._init.gates import bounds, infer_target
from tests.support.validation import run_validate

DATA = Path(__file__).resolve().parents[1] / "data"
ROWS = 200


def column(values: list[object], dtype: str | None = None) -> pd.Series:
    return pd.Series(values, name="c", dtype=dtype)


@pytest.mark.parametrize(("values", "kind", "reason"), [
    (list(range(ROWS)), None, "an identifier: a whole number unique to each of its 200 rows"),
    ([f"u{i:04d}" for i in range(ROWS)], None, "an identifier: a text unique to each of its 200 rows"),
    (["same"] * ROWS, None, "constant: 'same' in every row that has a value"),
    ([None] * ROWS, None, "empty: every value is missing"),
    ([f"t{i % 60}" for i in range(ROWS)], None, "free text or an identifier: 60 distinct values"),
    ([i % 2 for i in range(ROWS)], "categorical", "2 whole-number codes"),
    ([1 + i % 10 for i in range(ROWS)], "categorical", "10 whole-number codes"),
    ([i % (MAX_CODES + 1) for i in range(ROWS)], "integer", "whole numbers 0 to 10"),
    ([i * 0.5 for i in range(ROWS)], "numeric", "numbers 0 to 99.5"),
    (["Yes" if i % 3 else "No" for i in range(ROWS)], "categorical", "2 distinct texts"),
    ([bool(i % 2) for i in range(ROWS)], "categorical", "true/false values"),
], ids=["integer-id", "text-id", "constant", "empty", "free-text", "binary-code", "codes-1-to-10", "count",
        "continuous", "yes-no", "boolean"])
def test_each_column_is_typed_or_left_out_with_its_reason(values, kind, reason):
    found = infer_column(column(values), ROWS)
    assert found.kind == kind
    assert found.reason.startswith(reason)


def test_a_continuous_column_is_never_an_identifier_however_unique():
    amounts = column(list(np.random.default_rng(1).gamma(2.0, 50.0, ROWS)))
    assert amounts.nunique() == ROWS
    assert infer_column(amounts, ROWS).kind == "numeric"


def test_codes_keep_their_type_and_holes_make_a_column_nullable():
    codes = infer_column(column([1, 2, None, 7] * 50, dtype="Int64"), ROWS)
    assert (codes.kind, codes.categories, codes.nullable, codes.missing) == ("categorical", [1, 2, 7], True, 50)
    # The same codes as a CSV reads them with a hole: floats. Still whole-number codes, still integers.
    floats = infer_column(column([1.0, 2.0, np.nan, 7.0] * 50), ROWS)
    assert (floats.kind, floats.categories) == ("categorical", [1, 2, 7])
    texts = infer_column(column(["a", "b", None, "c"] * 50), ROWS)
    assert (texts.kind, texts.categories, texts.nullable) == ("categorical", ["a", "b", "c"], True)


def test_parquet_and_csv_of_one_table_give_one_contract(tmp_path):
    frame = pd.DataFrame({"plan": [1, 2, 3, 1] * 50, "tenure": np.arange(ROWS) % 37 + 0.5,
                          "region": ["n", "s", "e", "w"] * 50, "paid": [True, False] * 100,
                          "churned": ["No", "No", "No", "Yes"] * 50})
    frame.loc[3, "plan"] = None  # a hole: the CSV's column becomes floats, Parquet's stays (nullable) integers
    frame["plan"] = frame["plan"].astype("Int64")
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_csv(tmp_path / "t.csv", index=False)
    policies = []
    for name in ("t.parquet", "t.csv"):
        out = tmp_path / f"{name}.yaml"
        step.init(str(tmp_path / name), "churned", "churn", out)
        policies.append(load_policy(out).data)
    assert policies[0].features == policies[1].features
    plan = policies[0].feature("plan")
    assert (plan.type, plan.categories, plan.nullable) == ("categorical", (1, 2, 3), True)
    assert policies[0].feature("paid").categories == ("false", "true")


def test_bounds_widen_by_the_observed_span_and_stay_non_negative():
    assert widen(0.0, 2654.3, whole=False) == (0.0, 5400.0)
    assert widen(18.0, 95.0, whole=True) == (0.0, 180.0)
    assert widen(-0.67, 0.64, whole=False) == (-2.0, 2.0)


def test_the_target_is_binary_its_positive_class_the_minority_unless_named():
    labels = pd.Series(["No"] * 97 + ["Yes"] * 3, name="default")
    target = infer_target(labels, None)
    assert (target.positive, target.negative, round(target.positive_rate, 2)) == ("Yes", "No", 0.03)
    assert infer_target(labels, "No").positive == "No"
    codes = infer_target(pd.Series([0] * 60 + [1] * 40, name="y"), None)
    assert (codes.positive, codes.negative) == (1, 0)
    assert infer_target(pd.Series([0] * 60 + [1] * 40, name="y"), "0").positive == 0  # named by its text
    with pytest.raises(UsageError, match=r"--positive-label 'Maybe': not a class of default \(No, Yes\)"):
        infer_target(labels, "Maybe")
    with pytest.raises(UsageError, match=r"--target y: a binary model needs a target with two classes; it has 3"):
        infer_target(pd.Series([0, 1, 2] * 10, name="y"), None)


def test_gate_bounds_sit_above_what_a_useless_model_scores():
    rare = infer_target(pd.Series(["No"] * 9670 + ["Yes"] * 330, name="default"), None)
    gates = {b.gate: b.spec for b in bounds(rare, segments=None, rows=10000)}
    assert "accuracy" not in gates  # at 3% positives, answering "No" everywhere scores 0.97
    assert 0.55 < gates["roc_auc"]["minimum"] < 0.7
    assert 0.033 < gates["pr_auc"]["minimum"] <= 2 * 0.033 + 0.001
    assert gates["f1"]["minimum"] > 0  # a model that never flags the positive class scores 0
    balanced = infer_target(pd.Series([0, 1] * 500, name="y"), None)
    gates = {b.gate: b.spec for b in bounds(balanced, segments=4, rows=1000)}
    assert gates["accuracy"]["minimum"] == 0.5 and gates["recall_gap"]["min_positives"] == 12


def test_init_writes_a_policy_the_loader_accepts_with_every_left_out_column_explained(tmp_path, capsys):
    frame = pd.read_csv(DATA / "credit-default.csv").assign(customer=lambda f: range(len(f)), country="NZ")
    frame.to_csv(tmp_path / "credit.csv", index=False)
    out = tmp_path / "gates" / "credit.yaml"
    assert step.main(["--data", str(tmp_path / "credit.csv"), "--target", "default", "--out", str(out)]) == 0
    policy = load_policy(out)
    assert policy.model_name == "credit" and policy.data.source == str(tmp_path / "credit.csv")
    assert policy.data.feature_names == ["student", "balance", "income"]
    assert (policy.data.positive_label, policy.data.classes) == ("Yes", ("No", "Yes"))
    assert policy.model.threshold_rule.rule == "max_f1"
    text = out.read_text()
    assert "#   customer: an identifier: a whole number unique to each of its 10000 rows" in text
    assert "#   country: constant: 'NZ' in every row that has a value" in text
    assert "positive_label: 'Yes'" in text  # quoted: YAML would read an unquoted Yes as true
    assert yaml.safe_load(text)["data"]["positive_label"] == "Yes"
    printed = capsys.readouterr().out
    assert "target default: binary (two distinct values): 'Yes' 3.3% of 10000 rows (positive)" in printed
    assert "left out customer: an identifier" in printed


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "defualt"], "--target 'defualt': no such column in"),
    (["--target", "default", "--segment", "stdent"], "--segment 'stdent': no such column"),
    (["--target", "default", "--segment", "balance"], "--segment 'balance': must be a categorical feature"),
    (["--target", "balance", "--task", "binary"],
     "--task binary: --target balance: a binary model needs a target with two classes; it has 9502"),
    (["--target", "default", "--task", "regression"],
     "--task regression: --target default: a regression target holds numbers; it holds 'No', 'Yes'"),
], ids=["unknown-target", "unknown-segment", "numeric-segment", "continuous-target-as-binary",
        "text-target-as-regression"])
def test_a_bad_column_is_exit_2_naming_it_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "policy.yaml"
    code = step.main(["--data", str(DATA / "credit-default.csv"), "--out", str(out), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_unreadable_file_or_an_existing_policy_is_exit_2(tmp_path, capsys):
    assert step.main(["--data", str(tmp_path / "none.csv"), "--target", "y", "--out", str(tmp_path / "p.yaml")]) == 2
    assert "none.csv: no such file" in capsys.readouterr().err
    existing = tmp_path / "p.yaml"
    existing.write_text("mine")
    assert step.main(["--data", str(DATA / "credit-default.csv"), "--target", "default", "--out", str(existing)]) == 2
    assert "exists; give --force" in capsys.readouterr().err and existing.read_text() == "mine"


def test_the_model_name_comes_from_the_file_name():
    assert step.model_name("data/Credit Default.csv") == "credit-default"
    assert step.model_name("s3://bucket/x/ORANGE_juice.parquet") == "orange-juice"


# --- a multiclass and a regression table (tests/data/README.md): init -> validate -> train, no hand edits ---------

@dataclass
class Trained:
    policy: Policy
    text: str
    printed: str
    manifest: dict
    holdout: pd.DataFrame


def init_validate_train(work: Path, data: str, target: str, *extra: str, shuffled: bool = False) -> Trained:
    """`mlops init` on a public table, then validate and train with the policy as written: on the same file, or on
    it with the target's values shuffled (a model with nothing to learn)."""
    policy = work / "policy.yaml"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert step.main(["--data", str(DATA / data), "--target", target, "--out", str(policy), *extra]) == 0
    dataset = DATA / data
    if shuffled:
        frame = pd.read_csv(dataset)
        frame[target] = np.random.default_rng(1).permutation(frame[target].to_numpy())
        dataset = work / f"shuffled-{data}"
        frame.to_csv(dataset, index=False)
    validated = run_validate(dataset, policy, work)
    assert validated.code == 0, validated.err
    code = train.main(["--data", str(validated.dir), "--policy", str(policy), "--bundle", str(work / "bundle"),
                       "--holdout", str(work / "holdout.parquet")])
    assert code == 0
    manifest = json.loads((work / "bundle" / "bundle.json").read_text())
    return Trained(load_policy(policy), policy.read_text(), printed.getvalue(), manifest,
                   pd.read_parquet(work / "holdout.parquet"))


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return init_validate_train(tmp_path_factory.mktemp("penguins"), "penguins.csv", "species", "--segment", "island")


@pytest.fixture(scope="module")
def bikeshare(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return init_validate_train(tmp_path_factory.mktemp("bikeshare"), "bikeshare.csv", "bikers")


def gates_of(trained: Trained) -> dict[str, Gate]:
    return {g.name: g for g in trained.policy.quality}


def test_a_table_of_penguins_is_a_multiclass_model_with_its_classes_and_gates(penguins: Trained) -> None:
    policy = penguins.policy
    assert (policy.model.task, policy.model.estimator) == ("multiclass", "hist_gradient_boosting")
    assert policy.data.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert policy.data.segment == "island" and "positive_label" not in penguins.text
    assert "threshold" not in yaml.safe_load(penguins.text)["model"]
    # 344 rows: a drift check of the table against itself decides rather than waiting for 500.
    assert policy.drift.min_samples == 344
    assert set(gates_of(penguins)) == {
        "accuracy", "macro_f1", "log_loss", "log_loss_vs_prior", "class_recall", "macro_f1_gap", "latency_p95_ms",
        "model_size_mb", "feature_importance_stability", "peak_memory_mb", "edge_cases", "predictor_parity"}
    assert "init: target species: multiclass (3 distinct labels): 'Adelie' 44.2%, 'Chinstrap' 19.8%, 'Gentoo' " \
           "36.0% of 344 rows" in penguins.printed
    assert penguins.manifest["contract"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]


def test_the_multiclass_baseline_in_the_comments_is_measured_on_trains_holdout(penguins: Trained) -> None:
    """The class shares init wrote about are train's (bundle.json), scored on the holdout train wrote."""
    shares = np.array(penguins.manifest["metrics"]["train_class_shares"])
    codes = penguins.holdout["species"].map(["Adelie", "Chinstrap", "Gentoo"].index).to_numpy()
    prior_loss = -np.mean(np.log(shares[codes]))
    majority = np.mean(codes == np.argmax(shares))
    assert f"score {prior_loss:.4g} on this holdout" in penguins.text
    assert f"('Adelie') scores {majority:.3g} on the {len(codes)} holdout rows" in penguins.text
    gates, metrics = gates_of(penguins), penguins.manifest["metrics"]
    # The model trained from the policy as written beats the bounds init set from that baseline.
    assert metrics["holdout_accuracy"] > gates["accuracy"].minimum
    assert metrics["holdout_macro_f1"] > gates["macro_f1"].minimum
    assert metrics["holdout_log_loss"] / prior_loss < gates["log_loss_vs_prior"].maximum


def test_a_table_of_bike_rentals_is_a_regression_model_with_its_range_and_gates(bikeshare: Trained) -> None:
    policy = bikeshare.policy
    assert (policy.model.task, policy.model.estimator) == ("regression", "hist_gradient_boosting")
    assert (policy.data.target_min, policy.data.target_max, policy.data.classes) == (0, 1400, None)
    assert "# The target's range: validate refuses a value outside it. Observed 1 to 651 in 8645 rows" in bikeshare.text
    assert set(gates_of(bikeshare)) == {"rmse", "mae", "r2", "rmse_vs_mean", "latency_p95_ms", "model_size_mb",
                                        "feature_importance_stability", "peak_memory_mb", "edge_cases",
                                        "predictor_parity"}
    assert "init: target bikers: regression (585 distinct whole numbers, more than 10: a quantity, not class codes)" \
           ": 1 to 651 in 8645 rows (allowed 0 to 1400)" in bikeshare.printed
    assert bikeshare.manifest["contract"]["target_max"] == 1400


def test_the_regression_baseline_in_the_comments_is_measured_on_trains_holdout(bikeshare: Trained) -> None:
    mean = bikeshare.manifest["metrics"]["train_target_mean"]
    y = bikeshare.holdout["bikers"].to_numpy(dtype=float)
    rmse0 = float(np.sqrt(np.mean((y - mean) ** 2)))
    assert f"always predicting the training mean ({mean:.4g}) scores {rmse0:.4g} on the {len(y)} holdout rows" \
        in bikeshare.text
    gates, metrics = gates_of(bikeshare), bikeshare.manifest["metrics"]
    assert rmse0 > gates["rmse"].maximum > metrics["holdout_rmse"]
    assert metrics["holdout_rmse"] / rmse0 < gates["rmse_vs_mean"].maximum
    assert metrics["holdout_r2"] > gates["r2"].minimum


@pytest.mark.parametrize(("data", "target"), [("penguins.csv", "species"), ("bikeshare.csv", "bikers")],
                         ids=["multiclass", "regression"])
def test_a_model_of_a_shuffled_target_fails_the_bounds_init_set_from_the_baseline(tmp_path, data, target):
    shuffled = init_validate_train(tmp_path, data, target, shuffled=True)
    gates, metrics = gates_of(shuffled), shuffled.manifest["metrics"]
    if shuffled.policy.model.task == "multiclass":
        assert metrics["holdout_accuracy"] < gates["accuracy"].minimum
        assert metrics["holdout_macro_f1"] < gates["macro_f1"].minimum
        assert metrics["holdout_log_loss"] > gates["log_loss"].maximum
    else:
        assert metrics["holdout_rmse"] > gates["rmse"].maximum
        assert metrics["holdout_mae"] > gates["mae"].maximum
        assert metrics["holdout_r2"] < gates["r2"].minimum


@pytest.mark.parametrize(("data", "args", "message"), [
    ("bikeshare.csv", ["--target", "bikers", "--segment", "weathersit"],
     "--segment 'weathersit': a regression model has no per-segment gate"),
    ("penguins.csv", ["--target", "species", "--task", "regression"],
     "--task regression: --target species: a regression target holds numbers; it holds 'Adelie', 'Gentoo', "
     "'Chinstrap'"),
    ("penguins.csv", ["--target", "species", "--positive-label", "Adelie"],
     "--positive-label 'Adelie': only a binary model has a positive label"),
    ("bikeshare.csv", ["--target", "bikers", "--task", "multiclass"],
     "--task multiclass: --target bikers: a multiclass model has at most 50 classes; it has 585"),
], ids=["segment-of-a-regression", "text-as-regression", "positive-label-of-multiclass", "count-as-classes"])
def test_a_task_the_target_cannot_be_is_exit_2_naming_it(tmp_path, capsys, data, args, message):
    out = tmp_path / "policy.yaml"
    assert step.main(["--data", str(DATA / data), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_task_makes_whole_number_codes_a_regression_target(tmp_path):
    """Orange juice's StoreID (1..7) is a class code by default; --task regression reads it as a number."""
    out = tmp_path / "store.yaml"
    step.init(str(DATA / "orange-juice.csv"), "StoreID", "store", out)
    assert load_policy(out).model.task == "multiclass" and load_policy(out).data.classes == (1, 2, 3, 4, 7)
    step.init(str(DATA / "orange-juice.csv"), "StoreID", "store", out, force=True, task="regression")
    policy = load_policy(out)
    assert (policy.model.task, policy.data.target_min, policy.data.target_max) == ("regression", 0, 13)
