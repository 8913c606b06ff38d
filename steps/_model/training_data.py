"""The validated rows as train uses them: split by row numbers, then read one column at a time into the float64
codes the contract encoder gives, for the rows each part needs (fit, threshold validation, holdout).

No step holds the whole table as Python objects: a text column is read as pandas' `category` dtype (each value
decoded once), a feature's column is encoded and copied into the parts' matrices, and dropped. The matrices hold
the same numbers, in the same row order, as encoding a split DataFrame would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steps._core.documents import SourceRecord
from steps._core.errors import UsageError
from steps._core.policy import ModelPolicy
from steps._quality import validated as _validated


def columns(data_dir: Path) -> list[str] | None:
    """The validated file's column names; None when it cannot be read (`read` then says why)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(Path(data_dir) / _validated.DATA_FILE).names)
    except Exception:  # a missing or corrupt file: `read` raises the UsageError that names it
        return None


def read(data_dir: Path, name: str) -> tuple[pd.Series, SourceRecord]:
    """One column of the validated rows (text as `category`) and the folder's source record."""
    frame, source = _validated.read(data_dir, columns=[name], categories=True)
    return frame[name], source


class InOrder:
    """Calls run on one thread beside the caller's (numpy's sorting and counting release the GIL while the caller
    reads the next column), their results given back in the order they were submitted. At most `pending` calls
    wait at a time (train submits two a column), so the columns they hold stay few. `close` when done (results or
    not)."""

    def __init__(self, pending: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside")
        self._waiting: deque[Future[Any]] = deque()
        self._done: list[Any] = []
        self._pending = pending

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        while len(self._waiting) >= self._pending:
            self._done.append(self._waiting.popleft().result())
        self._waiting.append(self._pool.submit(call, *args))

    def results(self) -> list[Any]:
        while self._waiting:
            self._done.append(self._waiting.popleft().result())
        return self._done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Split:
    """Row numbers of each part, in the order train_test_split gives them (the order the model learns in)."""

    train: np.ndarray  # the rows the model learns from: `fit` and `validation` together (a sample, when capped)
    holdout: np.ndarray
    fit: np.ndarray
    validation: np.ndarray | None = None  # the threshold's rows (binary, a rule other than fixed)
    sampled_from: int | None = None  # the training share's size when `train` is a sample of it


def split(y: np.ndarray, spec: ModelPolicy, stratified: bool, threshold_rows: bool) -> Split:
    """The holdout, then (model.max_training_rows) a sample of the rest, then the threshold's validation rows:
    each stratified on the target for a classifier and fixed by the seed. Raises UsageError naming the key."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    try:
        train, holdout = train_test_split(rows, test_size=spec.holdout_fraction,
                                          stratify=y if stratified else None, random_state=spec.seed)
    except ValueError as err:
        raise UsageError(
            f"--data: cannot split {len(y)} rows with model.holdout_fraction={spec.holdout_fraction}: {err}"
        ) from err
    sampled_from = None
    cap = spec.max_training_rows
    if cap is not None and len(train) > cap:
        sampled_from = len(train)
        try:
            train, _ = train_test_split(train, train_size=cap, stratify=y[train] if stratified else None,
                                        random_state=spec.seed)
        except ValueError as err:
            raise UsageError(f"--data: cannot sample model.max_training_rows={cap} of {len(train)} training "
                             f"rows: {err}") from err
    if not threshold_rows:
        return Split(train, holdout, train, None, sampled_from)
    fraction = spec.threshold_rule.validation_fraction
    try:
        fit, validation = train_test_split(train, test_size=fraction, stratify=y[train], random_state=spec.seed)
    except ValueError as err:
        raise UsageError(f"--data: cannot set aside model.threshold.validation_fraction={fraction} of "
                         f"{len(train)} training rows: {err}") from err
    return Split(train, holdout, fit, validation, sampled_from)


@dataclass
class Parts:
    """The encoded features of the rows the model fits on (and of the threshold's rows), and the holdout's columns
    as read (text as categories, holdout order): encoded after the fit (`holdout_codes`), written as the file."""

    fit: np.ndarray
    validation: np.ndarray | None
    holdout_rows: dict[str, pd.Series] = field(default_factory=dict)


def encode(data_dir: Path, names: Sequence[str], split_: Split, encode_column: Callable[[int, pd.Series], np.ndarray],
           on_train: Callable[[str, pd.Series, np.ndarray], None], beside: InOrder | None = None) -> Parts:
    """Read each feature once: its codes (`encode_column(j, column)`) go into the fit (and validation) matrices, its
    holdout rows are kept, and `on_train(name, column, codes)` sees the whole column and its codes (for the profile
    and the ECDFs of the training rows, `split_.train`). With `beside`, the codes are copied into the matrices on
    its thread while the next column is read (numpy's gathering releases the GIL): the matrices are complete once
    `beside.results()` returns (its results then hold a None for each column).
    A feature with no value at all is a UsageError naming every such feature."""
    parts = Parts(fit=_matrix(len(split_.fit), len(names)),
                  validation=None if split_.validation is None else _matrix(len(split_.validation), len(names)))
    empty: list[str] = []
    rows = 0
    for j, name in enumerate(names):
        column, _ = read(data_dir, name)
        rows = len(column)
        if column.isna().all():
            empty.append(name)
            continue
        codes = encode_column(j, column)
        if beside is None:
            _place(parts, split_, j, codes)
        else:
            beside.submit(_place, parts, split_, j, codes)
        parts.holdout_rows[name] = column.take(split_.holdout).reset_index(drop=True)
        on_train(name, column, codes)
    if empty:
        # A feature with no value at all is a broken feed, not a signal (and scikit-learn's binning fails on it
        # with an error that names neither the feature nor the cause).
        raise UsageError(
            f"--data: feature {empty[0]!r} is missing in every one of the {rows} rows (nullable allows missing "
            f"values, not a feature with none); fix the data feed or remove it from data.features"
            + (f" (also empty: {', '.join(empty[1:])})" if len(empty) > 1 else "")
        )
    return parts


def _place(parts: Parts, split_: Split, j: int, codes: np.ndarray) -> None:
    """A feature's codes into column j of the fit (and validation) matrices."""
    parts.fit[:, j] = codes[split_.fit]
    if parts.validation is not None and split_.validation is not None:
        parts.validation[:, j] = codes[split_.validation]


def holdout_codes(parts: Parts, names: Sequence[str], encode_column: Callable[[int, pd.Series], np.ndarray]
                  ) -> np.ndarray:
    """The holdout's features encoded, built when the fit is done (the fit's peak memory does not hold them)."""
    out = _matrix(len(parts.holdout_rows[names[0]]), len(names))
    for j, name in enumerate(names):
        out[:, j] = encode_column(j, parts.holdout_rows[name])
    return out


def holdout_frame(parts: Parts, names: Sequence[str], target: pd.Series, holdout: np.ndarray) -> pd.DataFrame:
    """The holdout file's rows: the features and the target as the validated file types them, holdout order."""
    out: dict[str, Any] = {name: _plain(parts.holdout_rows[name]) for name in names}
    out[str(target.name)] = _plain(target.take(holdout))
    return pd.DataFrame(out).reset_index(drop=True)


def _matrix(rows: int, columns: int) -> np.ndarray:
    return np.empty((rows, columns), dtype=np.float64)


def _plain(column: pd.Series) -> pd.Series:
    """A column as the data frame of the file would hold it: text as Python strings (None where missing), not
    `category`, so the holdout file has the validated file's types."""
    column = column.reset_index(drop=True)
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column
    table = np.empty(len(column.cat.categories) + 1, dtype=object)  # None at the end: code -1, a missing value
    table[:-1] = column.cat.categories.to_numpy(dtype=object)
    values = table[column.cat.codes.to_numpy()]
    return pd.Series(values, dtype=object, name=column.name)
