"""Fixtures shared by tests of the steps in more than one folder: a registry on a local folder and on a real S3 API
(the Registry's tests in tests/steps/_storage and its command line's in tests/steps/test_registry.py), and a
validation of a dataset that breaks the contract (the validate step's tests and the expectations')."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steps._core.data import generate, write_frame
from steps._storage.registry import Registry
from tests.support.models import Trained
from tests.support.serving import Server, start
from tests.support.validation import BROKEN_ROWS, Run, run_validate


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"s3://{request.getfixturevalue('s3_bucket')}/registry"


@pytest.fixture
def reg(location: str) -> Registry:
    return Registry.open(location)


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    return tmp_path / "bundles"


@pytest.fixture(scope="session")
def broken(policy_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A CSV that breaks the contract in every way at once, validated where a previous good run left validated
    rows (session-wide: the step's tests and the expectations' read the same run)."""
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


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m steps.serve` of the module's `trained` bundle (tests/conftest.py's fraud model, or the module's own
    fixture of that name), for the module's tests."""
    s = start(trained.bundle, tmp_path_factory.mktemp("server"))
    yield s
    s.stop()
