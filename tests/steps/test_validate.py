"""validate: the policy's data contract as Great Expectations expectations, on real files, a real S3 API
(moto's server) and the real command line. Expensive runs are module fixtures shared by the assertions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate, write_frame
from steps._core.policy import load_policy
from steps._quality.expectations import contract_checks
from steps.validate import main
from tests.support.paths import ROOT
from tests.support.processes import free_port


@dataclass
class Run:
    code: int
    out: str
    err: str
    dir: Path
    report_path: Path

    @property
    def report(self) -> dict:
        return json.loads(self.report_path.read_text())

    def line(self, column: str, expectation: str) -> str:
        """The stderr line for one failed expectation."""
        prefix = f"validate: {column}: {expectation}"
        lines = [ln for ln in self.err.splitlines() if ln.startswith(prefix)]
        assert len(lines) == 1, f"expected one line starting {prefix!r} in:\n{self.err}"
        return lines[0]


def run_validate(dataset: str | Path, policy: Path, work: Path) -> Run:
    out, report = work / "validated", work / "report.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--dataset", str(dataset), "--policy", str(policy),
                     "--out", str(out), "--report", str(report)])
    return Run(code, stdout.getvalue(), stderr.getvalue(), out, report)


def failed_pairs(run: Run) -> set[tuple[str, str]]:
    return {(r["column"], r["expectation"]) for r in run.report["failed"]}


# --- a valid dataset -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    return generate(20000, seed=11)


@pytest.fixture(scope="module")
def passed(generated: pd.DataFrame, policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """20k valid rows as CSV, with a column the contract does not know (validate drops it)."""
    work = tmp_path_factory.mktemp("passed")
    path = work / "transactions.csv"
    write_frame(generated.assign(comment="free text"), path)
    return run_validate(path, policy_file, work)


def test_valid_csv_passes_every_expectation(passed: Run, policy_file: Path) -> None:
    assert passed.code == 0, passed.err
    assert passed.err == ""
    assert "20000 rows passed" in passed.out
    report = passed.report
    assert report["passed"] is True and report["failed"] == [] and report["warnings"] == []
    assert report["rows"] == 20000 and report["format"] == "csv"
    data = load_policy(policy_file).data
    assert len(report["results"]) == len(contract_checks(data))
    assert all(r["success"] for r in report["results"])
    assert {r["column"] for r in report["results"]} == {*data.feature_names, data.target}


def test_validated_rows_are_the_contract_columns_in_order_with_one_dtype_per_type(
        passed: Run, generated: pd.DataFrame, policy_file: Path) -> None:
    data = load_policy(policy_file).data
    rows = pd.read_parquet(passed.dir / "data.parquet")
    assert list(rows.columns) == [*data.feature_names, data.target]  # `comment` dropped
    expected_dtype = {"numeric": "float64", "integer": "Int64", "categorical": "object"}
    assert {f.name: str(rows[f.name].dtype) for f in data.features} == {
        f.name: expected_dtype[f.type] for f in data.features}
    assert str(rows[data.target].dtype) == "int64"
    # Values and holes survive the CSV -> Parquet trip.
    for f in data.features:
        assert rows[f.name].isna().sum() == generated[f.name].isna().sum(), f.name
    np.testing.assert_allclose(rows["amount"], generated["amount"])
    assert (rows["device_age_days"].dropna() == generated["device_age_days"].dropna()).all()
    assert (rows["merchant_category"] == generated["merchant_category"]).all()
    assert (rows[data.target] == generated[data.target]).all()


def test_source_json_records_the_bytes_read(passed: Run, tmp_path_factory: pytest.TempPathFactory) -> None:
    source = json.loads((passed.dir / "source.json").read_text())
    path = Path(source["uri"])
    assert source == {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "format": "csv", "rows": 20000}
    assert passed.report["sha256"] == source["sha256"]
    assert not [p for p in passed.dir.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(3000, seed=5)


def test_file_uri_passes(small: pd.DataFrame, policy_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    small.to_csv(path, index=False)
    run = run_validate(path.as_uri(), policy_file, tmp_path)
    assert run.code == 0, run.err
    source = json.loads((run.dir / "source.json").read_text())
    assert source["uri"] == path.as_uri() and source["format"] == "csv" and source["rows"] == 3000
    assert len(pd.read_parquet(run.dir / "data.parquet")) == 3000


@pytest.mark.integration
def test_s3_dataset_passes(s3_bucket: str, small: pd.DataFrame, policy_file: Path, tmp_path: Path) -> None:
    import boto3

    body = io.BytesIO()
    small.to_parquet(body, index=False)
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="in/transactions.parquet", Body=body.getvalue())
    uri = f"s3://{s3_bucket}/in/transactions.parquet"
    run = run_validate(uri, policy_file, tmp_path)
    assert run.code == 0, run.err
    source = json.loads((run.dir / "source.json").read_text())
    assert source == {"uri": uri, "sha256": hashlib.sha256(body.getvalue()).hexdigest(),
                      "format": "parquet", "rows": 3000}


# --- a dataset that breaks the contract in every way at once -------------------------------------------

BROKEN_ROWS = 5000


@pytest.fixture(scope="module")
def broken(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    df = generate(BROKEN_ROWS, seed=3)
    df.loc[[3, 10], "amount"] = [-5.0, 250000.0]                       # out of range
    df = df.drop(columns=["hour"])                                      # missing column
    df["utilization"] = df["utilization"].astype(object)
    df.loc[9, "utilization"] = "lots"                                   # text in a numeric column
    df["txn_count_1h"] = df["txn_count_1h"].astype(float)
    df.loc[12, "txn_count_1h"] = 2.5                                    # a fraction in an integer column
    df.loc[5, "channel"] = "carrier-pigeon"                             # unknown category (unknown: reject)
    df.loc[6, "merchant_category"] = "casino"                           # unknown category (unknown: other)
    df.loc[11, "region"] = None                                         # null in a non-nullable column
    df["is_fraud"] = 0                                                  # no positives
    work = tmp_path_factory.mktemp("broken")
    path = work / "broken.csv"
    write_frame(df, path)
    # A previous good run left validated rows here: they must not survive a failed validation.
    (work / "validated").mkdir()
    (work / "validated" / "data.parquet").write_bytes(b"stale")
    (work / "validated" / "source.json").write_text("{}")
    return run_validate(path, policy_file, work)


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


def test_failed_validation_writes_the_report_but_no_validated_rows(broken: Run) -> None:
    assert broken.report_path.is_file()
    assert not (broken.dir / "data.parquet").exists()  # the stale one is gone too
    assert not (broken.dir / "source.json").exists()


def test_wrong_parquet_types_are_named(policy_file: Path, tmp_path: Path) -> None:
    df = generate(2000, seed=4)
    df["region"] = 7                                          # a categorical stored as numbers
    df["failed_logins_24h"] = df["failed_logins_24h"].astype(str)
    df.loc[0, "failed_logins_24h"] = "many"                   # an integer stored as text, one not a number
    path = tmp_path / "typed.parquet"
    df.to_parquet(path, index=False)
    run = run_validate(path, policy_file, tmp_path)
    assert run.code == 1
    assert failed_pairs(run) == {
        ("region", "expect_column_values_to_be_of_type"),
        ("region", "expect_column_values_to_be_in_set"),
        ("failed_logins_24h", "expect_column_values_to_be_integral"),
        ("failed_logins_24h", "expect_column_values_to_be_between"),
    }
    assert "observed int64" in run.line("region", "expect_column_values_to_be_of_type")
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


# --- input that cannot be read, and bad usage ----------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"", "file is empty"),
    (b"amount,hour\n", "has a header but no rows"),
    (b"PAR1" + b"\x00" * 64 + b"PAR1", "corrupt Parquet file"),
    ("dir", "is a directory"),
], ids=["missing", "empty", "header-only", "corrupt-parquet", "directory"])
def test_unreadable_dataset_exits_2_and_writes_nothing(
        content: bytes | str | None, message: str, policy_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "input.parquet"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    run = run_validate(path, policy_file, tmp_path)
    assert run.code == 2
    assert run.err.startswith(f"validate: error: dataset {path}: {message}"), run.err
    assert not run.dir.exists() and not run.report_path.exists()


@pytest.mark.integration
def test_unreachable_s3_exits_3(policy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLOPS_S3_ATTEMPTS", "1")
    run = run_validate("s3://data/transactions.parquet", policy_file, tmp_path)
    assert run.code == 3
    assert "validate: error: dataset s3://data/transactions.parquet: S3 unreachable" in run.err
    assert not run.dir.exists()


@pytest.mark.integration
def test_missing_s3_object_exits_2(s3_bucket: str, policy_file: Path, tmp_path: Path) -> None:
    run = run_validate(f"s3://{s3_bucket}/nothing.csv", policy_file, tmp_path)
    assert run.code == 2
    assert f"validate: error: dataset s3://{s3_bucket}/nothing.csv: cannot read from S3" in run.err


def test_usage_errors_exit_2_naming_the_problem(policy_file: Path, tmp_path: Path) -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["--dataset", "x.csv"]) == 2
    assert stderr.getvalue().startswith("validate: error: the following arguments are required: --policy")

    run = run_validate("x.csv", tmp_path / "nope.yaml", tmp_path)
    assert run.code == 2 and "nope.yaml: policy file not found" in run.err

    bad_policy = tmp_path / "bad.yaml"
    text = policy_file.read_text().replace("{name: amount, type: numeric", "{name: amount, type: number")
    bad_policy.write_text(text)
    run = run_validate("x.csv", bad_policy, tmp_path)
    assert run.code == 2 and "data.features[0] (amount).type: must be one of" in run.err

    (tmp_path / "validated").write_text("a file")
    run = run_validate("x.csv", policy_file, tmp_path)
    assert run.code == 2 and "--out" in run.err and "not a folder" in run.err


# --- the real command line ------------------------------------------------------------------------------

_OFFLINE_CLI = """\
import runpy, sys
def hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        print(f"NETWORK {event} {args[-1] if event == 'socket.connect' else args[0]}", file=sys.__stderr__)
sys.addaudithook(hook)
sys.argv = ["steps.validate", *sys.argv[1:]]
runpy.run_module("steps.validate", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow  # a fresh interpreter imports Great Expectations (seconds)
def test_command_line_runs_offline_without_progress_bars(small: pd.DataFrame, policy_file: Path,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    small.to_parquet(path, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GX_")}  # GX's defaults, not ours
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_CLI, "--dataset", str(path), "--policy", str(policy_file),
         "--out", str(tmp_path / "out"), "--report", str(tmp_path / "report.json")],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bars, no warnings, no network
    assert proc.stdout.startswith(f"validate: {path}: 3000 rows passed")
    assert (tmp_path / "out" / "data.parquet").is_file()
    # An ephemeral context leaves no project folder (gx/) in the working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "report.json", "t.parquet"]


def test_importing_validate_does_not_import_great_expectations() -> None:
    code = "import sys, steps.validate, steps._quality.expectations; print('great_expectations' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
