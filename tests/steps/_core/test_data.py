"""steps/_core/data.py: the generated reference data matches the policy's contract, drift shifts what it says it
shifts, and datasets are read by content and written by extension."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps._core.data import DRIFTED_FEATURES, generate, open_source, read_dataset, read_frame, write_frame
from steps._core.errors import UsageError
from steps._core.policy import DataPolicy, Feature, load_policy

ROWS = 20000


@pytest.fixture(scope="module")
def contract(policy_file: Path) -> DataPolicy:
    return load_policy(policy_file).data


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate(ROWS, seed=1)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    # Another seed, so "unchanged" means the same distribution, not the same draws.
    return generate(ROWS, seed=2, drift=1.0)


def shift(a: pd.Series, b: pd.Series, feature: Feature) -> float:
    """How far apart two samples are: total variation for categories, the KS statistic for numbers (0..1)."""
    a, b = a.dropna(), b.dropna()
    if feature.type == "categorical":
        pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
        return float(0.5 * pa.subtract(pb, fill_value=0).abs().sum())
    x, y = np.sort(a.to_numpy(dtype=float)), np.sort(b.to_numpy(dtype=float))
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def test_generate_is_deterministic_per_seed() -> None:
    pd.testing.assert_frame_equal(generate(2000, seed=3), generate(2000, seed=3))
    pd.testing.assert_frame_equal(generate(2000, seed=3, drift=0.5), generate(2000, seed=3, drift=0.5))
    assert not generate(2000, seed=3).equals(generate(2000, seed=4))


def test_generate_has_two_to_three_percent_fraud(reference: pd.DataFrame, contract: DataPolicy) -> None:
    labels = reference[contract.target]
    assert set(labels.unique()) == {0, 1}
    assert 0.02 <= (labels == contract.positive_label).mean() <= 0.03


def test_generate_matches_the_policy_contract(reference: pd.DataFrame, contract: DataPolicy) -> None:
    assert list(reference.columns) == [*contract.feature_names, contract.target]
    for f in contract.features:
        values = reference[f.name]
        if not f.nullable:
            assert values.notna().all(), f"{f.name}: nulls in a non-nullable feature"
        present = values.dropna()
        if f.type == "categorical":
            assert set(present) <= set(f.categories), f"{f.name}: {set(present) - set(f.categories)}"
            continue
        numbers = present.to_numpy(dtype=float)
        if f.min is not None:
            assert numbers.min() >= f.min, f.name
        if f.max is not None:
            assert numbers.max() <= f.max, f.name
        if f.type == "integer":
            assert (numbers == np.round(numbers)).all(), f"{f.name}: fractions in an integer feature"


def test_generate_leaves_holes_only_where_the_contract_allows(reference: pd.DataFrame,
                                                              contract: DataPolicy) -> None:
    with_nulls = {f.name for f in contract.features if reference[f.name].isna().any()}
    assert with_nulls  # real data has holes, and the model must learn to live with them
    assert with_nulls <= {f.name for f in contract.features if f.nullable}


def test_drift_shifts_more_than_a_third_of_the_features(reference: pd.DataFrame, drifted: pd.DataFrame,
                                                         contract: DataPolicy) -> None:
    assert set(DRIFTED_FEATURES) <= set(contract.feature_names)
    assert len(DRIFTED_FEATURES) > len(contract.features) / 3
    shifts = {n: shift(reference[n], drifted[n], contract.feature(n)) for n in DRIFTED_FEATURES}
    assert {name: s for name, s in shifts.items() if s < 0.1} == {}


def test_no_drift_means_the_same_distribution(reference: pd.DataFrame, contract: DataPolicy) -> None:
    other_seed = generate(ROWS, seed=2)
    shifts = {f.name: shift(reference[f.name], other_seed[f.name], f) for f in contract.features}
    assert {name: s for name, s in shifts.items() if s >= 0.05} == {}


def test_drift_keeps_every_other_feature(reference: pd.DataFrame, drifted: pd.DataFrame,
                                         contract: DataPolicy) -> None:
    kept = [f for f in contract.features if f.name not in DRIFTED_FEATURES]
    shifts = {f.name: shift(reference[f.name], drifted[f.name], f) for f in kept}
    assert {name: s for name, s in shifts.items() if s >= 0.05} == {}


def test_generate_refuses_bad_arguments() -> None:
    with pytest.raises(UsageError, match="--rows: must be at least 1"):
        generate(0)
    with pytest.raises(UsageError, match="--drift: must be between 0 and 1"):
        generate(10, drift=1.5)


# --- reading and writing ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(500, seed=9)


@pytest.mark.parametrize(("name", "fmt"), [("data.csv", "csv"), ("data.parquet", "parquet")])
def test_write_frame_picks_the_format_from_the_extension(name: str, fmt: str, small: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "sub" / name
    write_frame(small, path)
    head = path.read_bytes()[:4]
    assert (head == b"PAR1") == (fmt == "parquet")
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left behind
    back = read_dataset(str(path))
    assert back.format == fmt and len(back.frame) == 500
    np.testing.assert_allclose(back.frame["amount"], small["amount"])


def test_write_frame_refuses_an_unknown_extension(small: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"use a \.csv or \.parquet file name"):
        write_frame(small, tmp_path / "data.xlsx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "writer", "fmt"), [
    ("looks.csv", "parquet", "parquet"),
    ("looks.parquet", "csv", "csv"),
    ("no-extension", "parquet", "parquet"),
])
def test_read_dataset_detects_the_format_from_content(name: str, writer: str, fmt: str, small: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    path = tmp_path / name
    if writer == "parquet":
        small.to_parquet(path, index=False)
    else:
        small.to_csv(path, index=False)
    dataset = read_dataset(path.as_uri())
    assert dataset.format == fmt
    assert dataset.uri == path.as_uri()
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(dataset.frame.columns) == list(small.columns) and len(dataset.frame) == 500


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"   \n", "file is empty"),
    (b"a,b\n", "has a header but no rows"),
    (b"PAR1not really parquet", "corrupt Parquet file"),
], ids=["missing", "blank", "header-only", "corrupt-parquet"])
def test_read_dataset_refuses_unreadable_input(content: bytes | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=f"dataset {path}: {message}"):
        read_dataset(str(path))


def test_read_dataset_refuses_an_unknown_scheme() -> None:
    with pytest.raises(UsageError, match="unsupported scheme 'http'"):
        read_dataset("http://example.com/data.csv")


@pytest.mark.integration
def test_read_dataset_reads_s3(s3_bucket: str, small: pd.DataFrame) -> None:
    import boto3

    body = small.to_csv(index=False).encode()
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="d/data.csv", Body=body)
    dataset = read_dataset(f"s3://{s3_bucket}/d/data.csv")
    assert dataset.format == "csv" and dataset.sha256 == hashlib.sha256(body).hexdigest()
    assert len(dataset.frame) == 500


@pytest.mark.parametrize("name", ["data.csv", "data.parquet"])
def test_read_frame_reads_only_the_columns_asked_for(name: str, small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / name
    write_frame(small, path)
    frame = read_frame(str(path), ["channel", "amount", "not-in-the-file"])
    assert sorted(frame.columns) == ["amount", "channel"] and len(frame) == 500
    assert (frame["channel"] == small["channel"]).all()
    pd.testing.assert_frame_equal(read_frame(path.as_uri()), read_dataset(str(path)).frame)
    assert len(read_frame(str(path), ["not-in-the-file"])) == 500  # no column, still every row


def test_a_parquet_source_reads_text_as_categories_and_in_batches(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    write_frame(small, path)
    with open_source(str(path)) as source:
        assert source.format == "parquet" and source.rows() == 500 and source.columns() == list(small.columns)
        assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        whole = source.read(["amount", "channel"], categories=["channel"])
        assert isinstance(whole["channel"].dtype, pd.CategoricalDtype)
        assert (whole["channel"].astype(object) == small["channel"]).all()
        batches = list(source.batches(["amount", "channel"], 200, categories=["channel"]))
    assert [len(b) for b in batches] == [200, 200, 100]
    assert [b.index[0] for b in batches] == [0, 200, 400]  # each batch's rows keep their numbers in the file
    joined = pd.concat(batches)
    pd.testing.assert_series_equal(joined["amount"], whole["amount"])
    assert (joined["channel"].astype(object) == small["channel"]).all()
