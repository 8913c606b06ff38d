"""The policy's data contract as Great Expectations expectations (steps/_quality/expectations.py), run by the
validate step on real files: a dataset that breaks the contract in every way at once fails exactly the broken
expectations, each named with its column and observed values; wrongly typed Parquet columns are named; and another
model's contract (a string target, unknown: other) is checked the same way."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from tests.support.validation import BROKEN_ROWS, Run, failed_pairs, run_validate


def test_broken_dataset_fails_exactly_the_broken_expectations(broken: Run) -> None:
    assert broken.code == 1
    assert failed_pairs(broken) == {
        ("amount", "expect_column_values_to_be_between"),
        ("hour", "expect_column_to_exist"),
        ("hour", "expect_column_values_to_be_integral"),
        ("hour", "expect_column_values_to_be_between"),
        ("hour", "expect_column_values_to_not_be_null"),
        ("utilization", "expect_column_values_to_be_numeric"),
        ("utilization", "expect_column_values_to_be_between"),
        ("txn_count_1h", "expect_column_values_to_be_integral"),
        ("channel", "expect_column_values_to_be_in_set"),
        ("region", "expect_column_values_to_not_be_null"),
        ("is_fraud", "expect_column_distinct_values_to_contain_set"),
    }
    assert broken.report["passed"] is False
    assert f"11 of {len(broken.report['results'])} expectations failed" in broken.err


@pytest.mark.parametrize(("column", "expectation", "shown"), [
    ("amount", "expect_column_values_to_be_between", ["[0, 100000]", f"2 of {BROKEN_ROWS} rows outside", "-5",
                                                       "250000"]),
    ("hour", "expect_column_to_exist", ["column is missing"]),
    ("hour", "expect_column_values_to_be_between", ["[0, 23]", "not evaluated: the column is missing"]),
    ("utilization", "expect_column_values_to_be_numeric", [f"1 of {BROKEN_ROWS} rows not numbers", "'lots'"]),
    ("utilization", "expect_column_values_to_be_between", ["not evaluated", "wrong type"]),
    ("txn_count_1h", "expect_column_values_to_be_integral", ["not whole numbers", "2.5"]),
    ("channel", "expect_column_values_to_be_in_set", ["'pos'", f"1 of {BROKEN_ROWS} rows not in the set",
                                                      "'carrier-pigeon'"]),
    ("region", "expect_column_values_to_not_be_null", [f"1 of {BROKEN_ROWS} rows null", "row 11"]),
    ("is_fraud", "expect_column_distinct_values_to_contain_set", ["{0, 1}", "no row has 1"]),
], ids=["out-of-range", "missing-column", "missing-column-range", "text-in-numeric", "text-in-numeric-range",
        "fraction-in-integer", "unknown-category", "null", "no-positives"])
def test_each_breakage_is_named_with_its_column_and_observed_values(
        broken: Run, column: str, expectation: str, shown: list[str]) -> None:
    line = broken.line(column, expectation)
    for text in shown:
        assert text in line
    entry = next(r for r in broken.report["failed"]
                 if (r["column"], r["expectation"]) == (column, expectation))
    assert entry["success"] is False and entry["details"] in line


def test_report_keeps_observed_values_as_data(broken: Run) -> None:
    amount = next(r for r in broken.report["failed"] if r["column"] == "amount")
    assert amount["kwargs"] == {"min_value": 0, "max_value": 100000}
    assert amount["observed"]["unexpected_count"] == 2
    assert sorted(amount["observed"]["examples"]) == [-5.0, 250000.0]
    assert sorted(amount["observed"]["rows"]) == [3, 10]
    target = next(r for r in broken.report["failed"] if r["column"] == "is_fraud")
    assert target["observed"] == {"missing": [1]}


def test_unseen_value_of_an_unknown_other_feature_is_a_warning_not_a_failure(broken: Run) -> None:
    warnings = broken.report["warnings"]
    assert [(w["column"], w["severity"]) for w in warnings] == [("merchant_category", "warning")]
    assert "'casino'" in warnings[0]["details"]
    assert "validate: warning: merchant_category: expect_column_values_to_be_in_set" in broken.err


def test_wrong_parquet_types_are_named(policy_file: Path, tmp_path: Path) -> None:
    df = generate(2000, seed=4)
    df["region"] = 7                                          # a category the contract does not list, as a number
    df["failed_logins_24h"] = df["failed_logins_24h"].astype(str)
    df.loc[0, "failed_logins_24h"] = "many"                   # an integer stored as text, one not a number
    path = tmp_path / "typed.parquet"
    df.to_parquet(path, index=False)
    run = run_validate(path, policy_file, tmp_path)
    assert run.code == 1
    # A number is a category value (integer codes), compared by its key: 7 is simply not one of region's.
    assert failed_pairs(run) == {
        ("region", "expect_column_values_to_be_in_set"),
        ("failed_logins_24h", "expect_column_values_to_be_integral"),
        ("failed_logins_24h", "expect_column_values_to_be_between"),
    }
    assert "2000 of 2000 rows not in the set, e.g. '7'" in run.line("region", "expect_column_values_to_be_in_set")
    assert "1 of 2000 rows not whole numbers, e.g. 'many'" in run.line(
        "failed_logins_24h", "expect_column_values_to_be_integral")


# --- another model's contract: nothing is wired to fraud detection -------------------------------------

@pytest.fixture
def churn_policy(tmp_path: Path) -> Path:
    path = tmp_path / "churn.yaml"
    path.write_text(textwrap.dedent("""\
        model_name: churn
        data:
          source: churn.csv
          target: churned
          positive_label: "yes"
          features:
            - {name: tenure, type: integer, min: 0, max: 600, nullable: true}
            - {name: spend, type: numeric, min: 0}
            - {name: plan, type: categorical, categories: [basic, pro], unknown: other}
        model: {estimator: logistic_regression}
        quality: {roc_auc: {minimum: 0.6}}
        """))
    return path


def churn_frame(labels: list[str]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({"tenure": [float(i % 50) if i % 7 else np.nan for i in range(n)],
                         "spend": np.linspace(0, 99.5, n),
                         "plan": ["basic", "pro", "enterprise", "pro"] * (n // 4),
                         "churned": labels})


def test_string_target_and_unknown_other_pass_with_a_warning(churn_policy: Path, tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    churn_frame(["no", "yes", "no", "no"] * 50).to_csv(path, index=False)
    run = run_validate(path, churn_policy, tmp_path)
    assert run.code == 0, run.err
    assert "validate: warning: plan: expect_column_values_to_be_in_set {'basic', 'pro', 'other'}" in run.err
    assert "'enterprise'" in run.err
    rows = pd.read_parquet(run.dir / "data.parquet")
    assert list(rows.columns) == ["tenure", "spend", "plan", "churned"]
    assert str(rows["tenure"].dtype) == "Int64" and rows["tenure"].isna().sum() == 200 // 7 + 1


def test_string_target_with_one_class_fails_naming_the_missing_label(churn_policy: Path,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    churn_frame(["no"] * 200).to_csv(path, index=False)
    run = run_validate(path, churn_policy, tmp_path)
    assert run.code == 1
    assert failed_pairs(run) == {("churned", "expect_column_distinct_values_to_contain_set"),
                                 ("churned", "expect_column_unique_value_count_to_be_between")}
    assert "no row has 'yes'" in run.line("churned", "expect_column_distinct_values_to_contain_set")
    assert "observed 1" in run.line("churned", "expect_column_unique_value_count_to_be_between")
