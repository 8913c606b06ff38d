"""The validated dataset folder: validate writes the rows and their source, train reads them back as written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.documents import SourceRecord
from steps._core.errors import UsageError
from steps._core.policy import load_policy
from steps._quality import validated
from tests.support.paths import POLICY


def test_rows_and_source_read_back_with_one_dtype_per_contract_type(tmp_path: Path) -> None:
    data = load_policy(POLICY).data
    frame = generate(200, seed=4)
    source = SourceRecord(uri="s3://data/transactions.csv", sha256="ab" * 32, rows=200, format="csv")
    validated.write(tmp_path / "out", frame, data, source)
    rows, read_source = validated.read(tmp_path / "out")
    assert read_source == source
    assert list(rows.columns) == [*data.feature_names, data.target]
    for f in data.features:
        expected = {"numeric": "float64", "integer": "Int64", "categorical": "object"}[f.type]
        assert str(rows[f.name].dtype) == expected, f.name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.parquet", "source.json"]


def test_clear_removes_a_previous_runs_rows(tmp_path: Path) -> None:
    data = load_policy(POLICY).data
    source = SourceRecord(uri="x.csv", sha256="0" * 64, rows=10, format="csv")
    validated.write(tmp_path, generate(10, seed=1), data, source)
    validated.clear(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": "200"}, "key 'rows' must be an integer, got '200'"),
        ({"rows": True}, "key 'rows' must be an integer, got True"),
        ({"uri": None}, "key 'uri' must be a string, got None"),
    ],
    ids=["rows-as-text", "rows-as-bool", "uri-null"],
)
def test_a_source_field_of_the_wrong_type_is_refused_naming_it(
    change: dict[str, object], message: str, tmp_path: Path
) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / validated.DATA_FILE)
    source = {"uri": "x.csv", "sha256": "0" * 64, "rows": 1, "format": "csv", **change}
    (tmp_path / validated.SOURCE_FILE).write_text(json.dumps(source))
    with pytest.raises(UsageError, match=f"--data {tmp_path / validated.SOURCE_FILE}: {message}"):
        validated.read(tmp_path)


def test_rows_written_in_batches_read_back_as_one_frame_and_by_column(tmp_path: Path) -> None:
    data = load_policy(POLICY).data
    frame = generate(1000, seed=4)
    source = SourceRecord(uri="t.parquet", sha256="0" * 64, rows=1000, format="parquet")
    validated.write(tmp_path / "whole", frame, data, source)
    validated.write_batches(tmp_path / "batched", (frame.iloc[i:i + 300] for i in range(0, 1000, 300)), data, source)
    whole, _ = validated.read(tmp_path / "whole")
    batched, _ = validated.read(tmp_path / "batched")
    pd.testing.assert_frame_equal(batched, whole)

    some, _ = validated.read(tmp_path / "batched", columns=["is_fraud", "channel", "amount"], categories=True)
    assert list(some.columns) == ["is_fraud", "channel", "amount"]
    assert isinstance(some["channel"].dtype, pd.CategoricalDtype) and str(some["is_fraud"].dtype) == "int64"
    assert (some["channel"].astype(object) == whole["channel"]).all()
    with pytest.raises(UsageError, match="data.parquet: has no column no-such-column"):
        validated.read(tmp_path / "batched", columns=["no-such-column"])


@pytest.mark.parametrize("case", ["typed", "nan-in-numeric", "float-integer"])
def test_rows_read_from_parquet_are_written_as_write_writes_them(case: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = load_policy(POLICY).data
    frame = generate(500, seed=6)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if case == "nan-in-numeric":  # a NaN that is not a null: converted, as write does
        table = table.set_column(0, "amount", pa.array([float("nan")] + frame["amount"].tolist()[1:]))
    elif case == "float-integer":
        table = table.set_column(1, "hour", table.column("hour").cast(pa.float64()))
    pq.write_table(table, tmp_path / "in.parquet")
    read = pq.read_table(tmp_path / "in.parquet", read_dictionary=["channel"])
    source = SourceRecord(uri="in.parquet", sha256="0" * 64, rows=500, format="parquet")
    validated.write_arrow(tmp_path / "arrow", read, read.to_pandas(), data, source)
    validated.write(tmp_path / "pandas", read.to_pandas(), data, source)
    assert (tmp_path / "arrow" / "data.parquet").read_bytes() == (tmp_path / "pandas" / "data.parquet").read_bytes()
