"""The validated dataset folder: the rows that passed the data contract (data.parquet) and where they came from
(source.json). steps.validate writes it; steps.train reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from steps._core.categories import keys
from steps._core.documents import SourceRecord
from steps._core.errors import UsageError
from steps._core.files import replacing, write_json
from steps._core.policy import DataPolicy

DATA_FILE = "data.parquet"
SOURCE_FILE = "source.json"
_SOURCE_FIELDS: dict[str, tuple[type, str]] = {
    "uri": (str, "a string"), "sha256": (str, "a string"), "format": (str, "a string"), "rows": (int, "an integer"),
}


def validated_frame(frame: pd.DataFrame, data: DataPolicy, task: str = "binary",
                    whole: bool | None = None) -> pd.DataFrame:
    """The rows `train` reads: one dtype per contract type, whatever the source format gave. The target keeps the
    type the data gave it (whole numbers as int64), a regression target's numbers written as text read as numbers.
    `whole`: whether the target is whole numbers in every batch of the file (`target_is_whole` over each); None: in
    this frame."""
    out: dict[str, pd.Series[Any]] = {}
    for f in data.features:
        col = frame[f.name]
        if f.type == "numeric":
            out[f.name] = pd.to_numeric(col).astype("float64")
        elif f.type == "integer":
            out[f.name] = pd.to_numeric(col).astype("Int64")
        else:
            # Each value as its key (steps._core.categories): the integer 1 of a Parquet file and the 1.0 of a CSV
            # column with holes are the one category "1" for training, the profile and the holdout.
            out[f.name] = pd.Series(keys(col), index=col.index, dtype=object)
    target = _target(frame, data, task)
    if _numeric(target) and (whole if whole is not None else target_is_whole(frame, data, task)):
        target = target.astype("int64")
    out[data.target] = target
    return pd.DataFrame(out).reset_index(drop=True)


def target_is_whole(frame: pd.DataFrame, data: DataPolicy, task: str = "binary") -> bool:
    """Whether the frame's target is numbers, all whole (written as int64); AND it over a file's batches."""
    target = _target(frame, data, task)
    return _numeric(target) and bool((target == target.round()).all())


def _target(frame: pd.DataFrame, data: DataPolicy, task: str) -> pd.Series[Any]:
    target = frame[data.target]
    return pd.to_numeric(target) if task == "regression" else target


def _numeric(target: pd.Series[Any]) -> bool:
    return pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)


def write(out: Path, frame: pd.DataFrame, data: DataPolicy, source: SourceRecord, task: str = "binary") -> None:
    """source.json, then the rows as `validated_frame` types them: data.parquet last, so its presence means the
    folder is complete."""
    write_batches(out, [frame], data, source, task)


def write_arrow(out: Path, table: pa.Table, frame: pd.DataFrame, data: DataPolicy, source: SourceRecord,
                task: str = "binary") -> None:
    """`write` for rows read from Parquet (`table`, and `frame` its pandas form): when the file's columns already
    have the validated types (float64 without NaN, int64, text; an int64 or text target), they are written as they
    are, with the pandas metadata `write` gives them; the same file, without converting every value twice."""
    columns = _as_validated(table, data, task)
    if columns is None:
        write(out, frame, data, source, task)
        return
    # The schema and pandas metadata `write` would give, from one row: the types are the columns' own.
    head = validated_frame(frame.iloc[:1], data, task)
    schema = pa.schema([pa.field(name, col.type) for name, col in zip(head.columns, columns, strict=True)])
    schema = pa.Table.from_pandas(head, schema=schema, preserve_index=False).schema
    write_json(out / SOURCE_FILE, source)
    with replacing(out / DATA_FILE) as tmp:
        pq.write_table(pa.Table.from_arrays(columns, schema=schema), tmp)


def _as_validated(table: pa.Table, data: DataPolicy, task: str) -> list[pa.ChunkedArray] | None:
    """The contract's columns of `table` when each already has the validated type; None when one must be converted."""
    columns = []
    for f in data.features:
        col = table.column(f.name)
        if f.type == "categorical" and pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if f.type == "numeric":
            if col.type != pa.float64() or pc.any(pc.is_nan(col)).as_py():  # NaN is written as null
                return None
        elif col.type != {"integer": pa.int64(), "categorical": pa.string()}[f.type]:
            return None
        columns.append(col)
    target = table.column(data.target)
    if target.type not in (pa.int64(), pa.string()) or (task == "regression" and target.type == pa.string()):
        return None
    return [*columns, target]


def write_batches(out: Path, frames: Iterable[pd.DataFrame], data: DataPolicy, source: SourceRecord,
                  task: str = "binary", whole: bool | None = None) -> None:
    """`write` for rows that come in batches (a file larger than memory): one Parquet row group per batch, the
    schema of the first (pandas' metadata too, so the file reads back as `write`'s does). One batch: the bytes
    `DataFrame.to_parquet` writes."""
    write_json(out / SOURCE_FILE, source)
    with replacing(out / DATA_FILE) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for frame in frames:
                table = pa.Table.from_pandas(validated_frame(frame, data, task, whole), preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                elif not table.schema.equals(writer.schema):  # e.g. a text column with no value in this batch
                    table = table.cast(writer.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def clear(out: Path) -> None:
    """Remove a previous run's rows, so nothing downstream trains on rows that did not pass."""
    (out / DATA_FILE).unlink(missing_ok=True)
    (out / SOURCE_FILE).unlink(missing_ok=True)


def read(data_dir: Path, columns: Sequence[str] | None = None,
         categories: bool = False) -> tuple[pd.DataFrame, SourceRecord]:
    """The rows (only `columns`, in that order, when given) and their source; errors name train's --data flag, the
    file and what is wrong. `categories`: text columns as pandas' `category` dtype, decoded once per distinct value
    (Parquet's dictionary), instead of one Python string per row; the values are the same."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UsageError(f"--data {data_dir}: not a folder (expected validate's --out folder)")
    source = _read_source(data_dir)
    path = data_dir / DATA_FILE
    try:
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
        names = schema.names if columns is None else list(columns)
        text = [n for n in names if n in schema.names and pa.types.is_string(schema.field(n).type)]
        missing = [n for n in names if n not in schema.names]
        if categories and text:
            # Parquet stores text dictionary-encoded: read the dictionary and its codes as they are, instead of
            # decoding a string per row and hashing them back into a dictionary (1M rows: 0.04 s, not 0.3-0.6 s).
            file = pq.ParquetFile(path, read_dictionary=text)
        table = file.read(columns=names, use_pandas_metadata=False)
        frame = table.to_pandas()
    except FileNotFoundError as err:
        raise UsageError(f"--data {data_dir}: {DATA_FILE} is missing") from err
    except Exception as err:  # pyarrow raises several unrelated types for a corrupt file or a missing column
        raise UsageError(f"--data {path}: not a readable Parquet file: {err}") from err
    if missing:
        raise UsageError(f"--data {path}: has no column {', '.join(missing)} (it has {', '.join(schema.names)})")
    rows = file.metadata.num_rows
    if rows != source["rows"]:
        raise UsageError(
            f"--data {data_dir}: {DATA_FILE} has {rows} rows but {SOURCE_FILE} says "
            f"rows={source['rows']}: the two files do not belong together"
        )
    return frame, source


def _read_source(data_dir: Path) -> SourceRecord:
    path = data_dir / SOURCE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UsageError(f"--data {data_dir}: {SOURCE_FILE} is missing (expected validate's --out folder)") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"--data {path}: not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise UsageError(f"--data {path}: must be a JSON object")
    for key, (kind, described) in _SOURCE_FIELDS.items():
        if key not in raw:
            raise UsageError(f"--data {path}: key {key!r} is missing")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise UsageError(f"--data {path}: key {key!r} must be {described}, got {raw[key]!r}")
    return SourceRecord(uri=raw["uri"], sha256=raw["sha256"], rows=raw["rows"], format=raw["format"])
