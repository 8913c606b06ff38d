"""`generate:` dataset URIs: the synthetic reference data read like any other dataset, with clear refusals."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from steps._core.data import read_dataset
from steps._core.errors import UsageError
from steps._core.synthetic import GENERATORS, TASK_GENERATORS, drifted_features, generate, generate_named


def test_a_generate_uri_reads_the_generator_s_frame_with_a_stable_digest():
    uri = "generate:fraud-detection?rows=500&seed=3&drift=0.4"
    dataset = read_dataset(uri)
    pd.testing.assert_frame_equal(dataset.frame, generate(500, seed=3, drift=0.4))
    assert dataset.format == "generated" and dataset.sha256 == read_dataset(uri).sha256
    assert dataset.sha256 != read_dataset("generate:fraud-detection?rows=500&seed=4").sha256


@pytest.mark.parametrize(("name", "target"), [("demand-forecast", "units_sold"), ("ticket-triage", "team")])
def test_each_reference_model_has_its_generator(name, target):
    frame = read_dataset(f"generate:{name}?rows=300&seed=5&drift=0.5").frame
    assert len(frame) == 300 and target in frame.columns
    pd.testing.assert_frame_equal(frame, generate_named(name, 300, seed=5, drift=0.5))
    assert not frame.equals(generate_named(name, 300, seed=6, drift=0.5))
    assert set(drifted_features(name)) < set(frame.columns) - {target}


def test_each_task_names_a_generator():
    assert set(TASK_GENERATORS) == {"binary", "regression", "multiclass"}
    assert set(TASK_GENERATORS.values()) == set(GENERATORS)


@pytest.mark.parametrize(("uri", "message"), [
    ("generate:churn?rows=5", "no generator 'churn' (known: fraud-detection, demand-forecast, ticket-triage)"),
    ("generate:fraud-detection", "rows= is required"),
    ("generate:fraud-detection?rows=many", "rows='many' is not a whole number"),
    ("generate:fraud-detection?rows=5&speed=1", "unknown parameter 'speed'"),
    ("generate:fraud-detection?rows=0", "--rows: must be at least 1"),
    ("generate:demand-forecast?rows=0", "--rows: must be at least 1"),
    ("generate:ticket-triage?rows=5&drift=1.5", "--drift: must be between 0 and 1 (got 1.5)"),
])
def test_a_bad_generate_uri_is_a_usage_error_naming_the_part(uri, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        read_dataset(uri)


@pytest.mark.parametrize(("task", "name", "target"), [("binary", "fraud-detection", "is_fraud"),
                                                      ("regression", "demand-forecast", "units_sold"),
                                                      ("multiclass", "ticket-triage", "team")])
def test_mlops_data_generate_writes_the_data_of_the_task_s_reference_model(task, name, target, tmp_path, capsys):
    from workflows import cli

    out = tmp_path / "data.parquet"
    assert cli.main(["data", "generate", "--task", task, "--rows", "400", "--seed", "2", "--drift", "0.5",
                     "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), generate_named(name, 400, seed=2, drift=0.5),
                                  check_dtype=False)
    assert target in pd.read_parquet(out).columns
    assert f"wrote 400 rows to {out} ({name}, {task})" in capsys.readouterr().out
