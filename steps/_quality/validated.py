"""The validated dataset folder: the rows that passed the data contract (data.parquet) and where they came from
(source.json). steps.validate writes it; steps.train reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

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


def validated_frame(frame: pd.DataFrame, data: DataPolicy, task: str = "binary") -> pd.DataFrame:
    """The rows `train` reads: one dtype per contract type, whatever the source format gave. The target keeps the
    type the data gave it (whole numbers as int64), a regression target's numbers written as text read as numbers."""
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
    target = frame[data.target]
    if task == "regression":
        target = pd.to_numeric(target)
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        target = target.astype("int64") if (target == target.round()).all() else target
    out[data.target] = target
    return pd.DataFrame(out).reset_index(drop=True)


def write(out: Path, frame: pd.DataFrame, data: DataPolicy, source: SourceRecord, task: str = "binary") -> None:
    """source.json, then the rows as `validated_frame` types them: data.parquet last, so its presence means the
    folder is complete."""
    write_json(out / SOURCE_FILE, source)
    with replacing(out / DATA_FILE) as tmp:
        validated_frame(frame, data, task).to_parquet(tmp, index=False)


def clear(out: Path) -> None:
    """Remove a previous run's rows, so nothing downstream trains on rows that did not pass."""
    (out / DATA_FILE).unlink(missing_ok=True)
    (out / SOURCE_FILE).unlink(missing_ok=True)


def read(data_dir: Path) -> tuple[pd.DataFrame, SourceRecord]:
    """The rows and their source; errors name train's --data flag, the file and what is wrong."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UsageError(f"--data {data_dir}: not a folder (expected validate's --out folder)")
    source = _read_source(data_dir)
    try:
        frame = pd.read_parquet(data_dir / DATA_FILE)
    except FileNotFoundError as err:
        raise UsageError(f"--data {data_dir}: {DATA_FILE} is missing") from err
    except Exception as err:  # pyarrow raises several unrelated types for a corrupt file
        raise UsageError(f"--data {data_dir / DATA_FILE}: not a readable Parquet file: {err}") from err
    if len(frame) != source["rows"]:
        raise UsageError(
            f"--data {data_dir}: {DATA_FILE} has {len(frame)} rows but {SOURCE_FILE} says "
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
