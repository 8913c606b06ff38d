"""validate (steps/validate.py): a dataset checked against the policy's data contract on real files, a real S3 API
(moto's server) and the real command line: the report, the validated rows and source.json it writes, nothing
written when it fails, exit codes. What each expectation finds is tests/steps/_quality/test_expectations.py.
Expensive runs are module fixtures shared by the assertions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
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
from tests.support.validation import Run, run_validate

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

def test_failed_validation_writes_the_report_but_no_validated_rows(broken: Run) -> None:
    assert broken.report_path.is_file()
    assert not (broken.dir / "data.parquet").exists()  # the stale one is gone too
    assert not (broken.dir / "source.json").exists()


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


def test_the_model_s_parameters_are_checked_before_any_data_is_read(policy_file: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_file.read_text().replace("learning_rate: 0.1", "learning_rate: -1"))
    assert "learning_rate: -1" in policy.read_text()
    run = run_validate(tmp_path / "not-there.csv", policy, tmp_path)
    assert run.code == 2
    assert "model.params: The 'learning_rate' parameter of HistGradientBoostingClassifier must be a float" in run.err
    assert "not-there.csv" not in run.err  # refused before the dataset was looked at


# --- a Parquet file larger than one batch -----------------------------------------------------------------

def _run_in_batches(path: Path, policy: Path, work: Path, batch_rows: int) -> Run:
    out, report = work / "validated", work / "report.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--dataset", str(path), "--policy", str(policy), "--out", str(out), "--report", str(report),
                     "--batch-rows", str(batch_rows)])
    return Run(code, stdout.getvalue(), stderr.getvalue(), out, report)


def _breaks(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    df = frame.copy()
    if how == "counted":  # breakages counted batch by batch, examples spread over several batches
        df.loc[[3, 1710, 3999], "amount"] = [-5.0, 250000.0, -1.0]
        df.loc[[5, 2500], "channel"] = ["carrier-pigeon", "zz"]
        df.loc[list(range(690, 760)), "region"] = None
        df.loc[1500, "merchant_category"] = "casino"  # unknown: other, a warning
    elif how == "text-in-numeric":  # not counted: Great Expectations validates the whole file
        df["utilization"] = df["utilization"].astype(str)
        df.loc[2200, "utilization"] = "lots"
    return df


@pytest.mark.parametrize("how", ["valid", "counted", "text-in-numeric"])
def test_a_parquet_file_read_in_batches_gets_the_whole_files_report_and_rows(
        how: str, small: pd.DataFrame, policy_file: Path, tmp_path: Path) -> None:
    frame = _breaks(pd.concat([small, small.iloc[:1000]], ignore_index=True), how)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    whole = run_validate(path, policy_file, tmp_path / "whole")
    batched = _run_in_batches(path, policy_file, tmp_path / "batched", 700)
    same = str(tmp_path / "whole")
    assert (batched.code, batched.out.replace(str(tmp_path / "batched"), same),
            batched.err.replace(str(tmp_path / "batched"), same)) == (whole.code, whole.out, whole.err)
    assert batched.report == whole.report and batched.report["rows"] == 4000
    assert batched.code == (0 if how == "valid" else 1)
    if how == "valid":
        assert (batched.dir / "source.json").read_text() == (whole.dir / "source.json").read_text()
        rows = pd.read_parquet(batched.dir / "data.parquet")
        pd.testing.assert_frame_equal(rows, pd.read_parquet(whole.dir / "data.parquet"))
        import pyarrow.parquet as pq
        assert pq.ParquetFile(batched.dir / "data.parquet").metadata.num_row_groups == 6  # written batch by batch
    else:
        assert not (batched.dir / "data.parquet").exists()


def test_batch_rows_must_be_a_positive_number(policy_file: Path, tmp_path: Path) -> None:
    run = _run_in_batches(tmp_path / "t.parquet", policy_file, tmp_path, 0)
    assert run.code == 2 and "--batch-rows: must be a whole number of at least 1, got '0'" in run.err
