"""`mlops init`: the rules that type each column, the target and its positive class, the gate bounds relative to a
useless model, the file it writes (accepted by the policy loader as it is) and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import init as step
from steps._core.errors import UsageError
from steps._core.policy import load_policy
from steps._init.columns import MAX_CODES, infer_column, widen
from steps._init.gates import bounds, infer_target

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
    assert "target default: 'Yes' 3.3% of 10000 rows (positive)" in printed
    assert "left out customer: an identifier" in printed


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "defualt"], "--target 'defualt': no such column in"),
    (["--target", "default", "--segment", "stdent"], "--segment 'stdent': no such column"),
    (["--target", "default", "--segment", "balance"], "--segment 'balance': must be a categorical feature"),
    (["--target", "balance"], "--target balance: a binary model needs a target with two classes"),
], ids=["unknown-target", "unknown-segment", "numeric-segment", "continuous-target"])
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
