"""Reading datasets: CSV or Parquet from a local path, file:// or s3://, or the synthetic reference data that a
`generate:` URI names (steps/_core/synthetic.py)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from steps._core import synthetic
from steps._core.errors import TransientError, UsageError
from steps._core.synthetic import DRIFTED_FEATURES, generate
from steps._storage import s3 as _s3

__all__ = ["DRIFTED_FEATURES", "Dataset", "Source", "generate", "open_source", "read_bytes", "read_dataset",
           "read_frame", "write_frame"]

_EMPTY_PROBE = 1 << 16  # a file whose first 64 KiB are all it has and are blank is empty


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    uri: str
    sha256: str
    format: str  # "csv" | "parquet" | "generated"


@dataclass(frozen=True)
class Source:
    """A CSV or Parquet dataset opened for reading: where its bytes are on this machine (an S3 object is copied to a
    temporary file first), its format by content and the sha256 of its bytes. Reads only the columns asked for."""

    uri: str
    path: Path
    sha256: str
    format: str  # "csv" | "parquet"

    def columns(self) -> list[str]:
        """The column names, from the Parquet schema or the CSV header."""
        if self.format == "parquet":
            return [n for n in self._parquet().schema_arrow.names if not n.startswith("__index_level_")]
        return list(self._csv(nrows=0).columns)

    def rows(self) -> int | None:
        """The number of rows a Parquet file holds (from its footer); None for CSV, which must be read to count."""
        return self._parquet().metadata.num_rows if self.format == "parquet" else None

    def read(self, columns: Sequence[str] | None = None, categories: Sequence[str] = ()) -> pd.DataFrame:
        """The whole dataset, or the named columns (which must exist), as pandas reads the file. `categories`: text
        columns of a Parquet file to read as pandas' `category` dtype (Parquet's dictionary: one Python string per
        distinct value, not per row); the values are the same."""
        if columns is not None and not columns:  # no column asked for: still every row
            return self.read().iloc[:, :0]
        if self.format == "parquet":
            frame: pd.DataFrame = self.table(columns, categories).to_pandas()  # as pandas.read_parquet does
        else:
            frame = self._csv(usecols=None if columns is None else list(columns))
        if len(frame.index) == 0:
            raise UsageError(f"dataset {self.uri}: has a header but no rows")
        return frame

    def table(self, columns: Sequence[str] | None = None, categories: Sequence[str] = ()) -> pa.Table:
        """A Parquet file's columns as Arrow reads them (with its pandas index, as pandas.read_parquet reads it);
        `categories` dictionary-encoded."""
        try:
            return pq.read_table(self.path, columns=None if columns is None else list(columns),
                                 use_pandas_metadata=True, read_dictionary=self._text(categories) or None)
        except Exception as err:  # pyarrow raises several unrelated types for a corrupt file
            raise UsageError(f"dataset {self.uri}: corrupt Parquet file: {err}") from err

    def batches(self, columns: Sequence[str], rows: int, categories: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
        """A Parquet file's named columns, `rows` rows at a time (decoded row group by row group, so memory follows
        the batch, not the file); each batch's index numbers its rows in the whole file. `categories`: as `read`."""
        offset = 0
        file = self._parquet(self._text(categories))
        try:
            for batch in file.iter_batches(batch_size=rows, columns=list(columns),
                                                      use_pandas_metadata=False):
                frame = pa.Table.from_batches([batch]).to_pandas()
                frame.index = pd.RangeIndex(offset, offset + len(frame))
                offset += len(frame)
                yield frame
        except (pa.ArrowException, OSError) as err:
            raise UsageError(f"dataset {self.uri}: corrupt Parquet file: {err}") from err

    def _text(self, names: Sequence[str]) -> list[str]:
        """Those of `names` that a Parquet file stores as text."""
        if self.format != "parquet" or not names:
            return []
        schema = self._parquet().schema_arrow
        return [n for n in names if n in schema.names
                and (pa.types.is_string(schema.field(n).type) or pa.types.is_large_string(schema.field(n).type))]

    def _parquet(self, dictionary: Sequence[str] = ()) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path, read_dictionary=list(dictionary) or None)
        except Exception as err:
            raise UsageError(f"dataset {self.uri}: corrupt Parquet file: {err}") from err

    def _csv(self, **kwargs: Any) -> pd.DataFrame:
        try:
            frame: pd.DataFrame = pd.read_csv(self.path, **kwargs)
            return frame
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise UsageError(f"dataset {self.uri}: not a readable CSV or Parquet file: {err}") from err


def read_bytes(uri: str) -> bytes:
    """The bytes behind a dataset URI. Missing: UsageError (exit 2); network or storage trouble: TransientError."""
    with open_source(uri, check=False) as source:
        return source.path.read_bytes()


@contextmanager
def open_source(uri: str, check: bool = True) -> Iterator[Source]:
    """The CSV or Parquet file behind a path, file:// or s3:// URI, hashed; an S3 object lives in a temporary file
    until the block ends. Missing or empty: UsageError (exit 2); network or storage trouble: TransientError."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        with tempfile.TemporaryDirectory(prefix="dataset-") as tmp:
            path = Path(tmp) / "data"
            _download(uri, path)
            yield _source(uri, path, check)
        return
    if parsed.scheme not in ("", "file"):
        raise UsageError(f"dataset {uri}: unsupported scheme {parsed.scheme!r} (use a path, file:// or s3://)")
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    if path.is_dir():
        raise UsageError(f"dataset {uri}: is a directory, expected a CSV or Parquet file")
    if not path.is_file():
        raise UsageError(f"dataset {uri}: no such file")
    yield _source(uri, path, check)


def _download(uri: str, path: Path) -> None:
    bucket, key = _s3.split(uri)
    try:
        with path.open("wb") as f:
            _s3.client().download_fileobj(bucket, key, f)
    except Exception as err:
        if _s3.is_transient(err):
            raise TransientError(f"dataset {uri}: S3 unreachable or failing: {err}") from err
        raise UsageError(f"dataset {uri}: cannot read from S3: {err}") from err


def _source(uri: str, path: Path, check: bool) -> Source:
    with path.open("rb") as f:
        head = f.read(_EMPTY_PROBE)
        if check and not head.strip() and len(head) < _EMPTY_PROBE:
            raise UsageError(f"dataset {uri}: file is empty")
        f.seek(0)
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return Source(uri, path, digest, "parquet" if head[:4] == b"PAR1" else "csv")


def read_frame(uri: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A dataset's rows, or only the named columns (those it lacks are left out), read from the file without a
    copy of its bytes in memory; a `generate:` URI is the synthetic data it names."""
    if uri.startswith(synthetic.SCHEME):
        frame = synthetic.from_uri(uri)
        return frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    with open_source(uri) as source:
        if columns is not None:
            have = set(source.columns())
            columns = [c for c in columns if c in have]
        return source.read(columns)


def read_dataset(uri: str) -> Dataset:
    """Read a CSV or Parquet dataset; the format comes from the content (Parquet's magic bytes), not the name.
    A `generate:` URI is the synthetic data it names; its sha256 is the URI's (the generator is deterministic)."""
    if uri.startswith(synthetic.SCHEME):
        frame = synthetic.from_uri(uri)
        return Dataset(frame, uri, hashlib.sha256(uri.encode()).hexdigest(), "generated")
    with open_source(uri) as source:
        return Dataset(source.read(), uri, source.sha256, source.format)


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write CSV or Parquet by the file's extension, atomically (a temporary file, then a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".csv":
        frame.to_csv(tmp, index=False)
    elif out.suffix in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    else:
        raise UsageError(f"--out {out}: use a .csv or .parquet file name")
    tmp.replace(out)
