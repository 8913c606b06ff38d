"""Reading datasets: CSV or Parquet from a local path, file:// or s3://, or the synthetic reference data that a
`generate:` URI names (steps/_core/synthetic.py)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from steps._core import synthetic
from steps._core.errors import TransientError, UsageError
from steps._core.synthetic import DRIFTED_FEATURES, generate

__all__ = ["DRIFTED_FEATURES", "Dataset", "generate", "read_bytes", "read_dataset", "write_frame"]
from steps._storage import s3 as _s3


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    uri: str
    sha256: str
    format: str  # "csv" | "parquet" | "generated"


def read_bytes(uri: str) -> bytes:
    """The bytes behind a dataset URI. Missing: UsageError (exit 2); network or storage trouble: TransientError."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        bucket, key = _s3.split(uri)
        try:
            data: bytes = _s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            return data
        except Exception as err:
            if _s3.is_transient(err):
                raise TransientError(f"dataset {uri}: S3 unreachable or failing: {err}") from err
            raise UsageError(f"dataset {uri}: cannot read from S3: {err}") from err
    if parsed.scheme not in ("", "file"):
        raise UsageError(f"dataset {uri}: unsupported scheme {parsed.scheme!r} (use a path, file:// or s3://)")
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise UsageError(f"dataset {uri}: no such file") from err
    except IsADirectoryError as err:
        raise UsageError(f"dataset {uri}: is a directory, expected a CSV or Parquet file") from err


def read_dataset(uri: str) -> Dataset:
    """Read a CSV or Parquet dataset; the format comes from the content (Parquet's magic bytes), not the name.
    A `generate:` URI is the synthetic data it names; its sha256 is the URI's (the generator is deterministic)."""
    if uri.startswith(synthetic.SCHEME):
        frame = synthetic.from_uri(uri)
        return Dataset(frame, uri, hashlib.sha256(uri.encode()).hexdigest(), "generated")
    data = read_bytes(uri)
    if not data.strip():
        raise UsageError(f"dataset {uri}: file is empty")
    digest = hashlib.sha256(data).hexdigest()
    if data[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as err:
            raise UsageError(f"dataset {uri}: corrupt Parquet file: {err}") from err
        fmt = "parquet"
    else:
        try:
            frame = pd.read_csv(io.BytesIO(data))
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise UsageError(f"dataset {uri}: not a readable CSV or Parquet file: {err}") from err
        fmt = "csv"
    if frame.empty:
        raise UsageError(f"dataset {uri}: has a header but no rows")
    return Dataset(frame, uri, digest, fmt)


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
