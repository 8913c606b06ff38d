"""The contract's expectations counted with numpy, batch by batch: the results Great Expectations gives for the whole
frame (steps/_quality/expectations.py turns them into outcomes), without its import and per-run overhead, and for
files larger than memory.

It handles the columns as `expectations.prepare` writes clean data: numbers as float64, categories and class targets
as their keys (text, None for a missing value), and each column with at least one value. A column in any other form
(text in a numeric column, a list in a cell, a column that is entirely null) goes to Great Expectations itself, whose
exceptions and type names are part of the report (`clean` and `Tally.complete` say when).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from steps._quality.expectations import Check

PARTIAL = 20  # Great Expectations' partial_unexpected_count, as run_checks asks for it

_MAPS = ("expect_column_values_to_be_numeric", "expect_column_values_to_be_integral",
         "expect_column_values_to_be_of_type", "expect_column_values_to_be_between",
         "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_null")
_NUMBERS = ("expect_column_values_to_be_numeric", "expect_column_values_to_be_integral")
_DISTINCT = ("expect_column_distinct_values_to_contain_set", "expect_column_unique_value_count_to_be_between")


def clean(frame: pd.DataFrame, checks: list[Check]) -> bool:
    """Whether every column of a prepared frame (or batch) is one this module counts: float64 for a column of
    numbers (one with a numeric or integral check), keys (text and None) for any other. Checked per batch; that each
    column has a value at all is `Tally.complete`, over the whole data."""
    numbers = {c.column for c in checks if c.expectation in _NUMBERS}
    for name in frame.columns:
        col = frame[name]
        if name in numbers:
            if col.dtype != np.float64:
                return False
        elif col.dtype != object or pd.api.types.infer_dtype(col.to_numpy(), skipna=True) not in ("string", "empty"):
            return False
    return True


@dataclass
class _Map:
    """A column map expectation's running counts and its first PARTIAL unexpected values and rows."""

    elements: int = 0
    nonnull: int = 0
    unexpected: int = 0
    values: list[Any] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)


class Tally:
    """Counts for `checks` over batches of a prepared frame; `results` gives Great Expectations' result per check."""

    def __init__(self, checks: list[Check], columns: Iterable[str]) -> None:
        self.checks = checks
        self.columns = set(columns)  # the contract's columns the dataset has
        self.rows = 0
        self._maps = {i: _Map() for i, c in enumerate(checks) if c.expectation in _MAPS}
        self._distinct: dict[str, set[Any]] = {c.column: set() for c in checks if c.expectation in _DISTINCT}
        self._nonnull: dict[str, int] = dict.fromkeys(self.columns, 0)

    def add(self, frame: pd.DataFrame) -> None:
        """Count one batch (a prepared, `clean` frame whose index numbers the rows in the whole dataset)."""
        self.rows += len(frame)
        index = frame.index
        masks: dict[str, np.ndarray] = {}
        for name in self.columns:
            if name in frame.columns:
                masks[name] = frame[name].notna().to_numpy()
                self._nonnull[name] += int(masks[name].sum())
        for i, tally in self._maps.items():
            check = self.checks[i]
            if check.column not in masks:
                continue
            values = frame[check.column].to_numpy()
            present = masks[check.column]
            tally.elements += len(values)
            tally.nonnull += int(present.sum())
            bad = _unexpected(check, values, present)
            count = int(bad.sum())
            tally.unexpected += count
            room = PARTIAL - len(tally.values)
            if count and room > 0:
                where = np.flatnonzero(bad)[:room]
                tally.values += values[where].tolist()
                tally.rows += index[where].tolist()
        for name, seen in self._distinct.items():
            if name in frame.columns:
                seen.update(pd.unique(frame[name].dropna().to_numpy()).tolist())

    def complete(self) -> bool:
        """Whether every column seen has a value: Great Expectations types an all-null column by its dtype."""
        return all(self._nonnull[name] > 0 for name in self.columns)

    def results(self) -> list[tuple[bool, dict[str, Any]]]:
        """(success, result) per check, in order, as Great Expectations' SUMMARY format gives them."""
        out: list[tuple[bool, dict[str, Any]]] = []
        for i, check in enumerate(self.checks):
            if check.column not in self.columns:
                out.append((False, {}))
            elif check.expectation == "expect_column_to_exist":
                out.append((True, {}))
            elif i in self._maps:
                out.append(self._map_result(check, self._maps[i]))
            else:
                out.append(self._distinct_result(check))
        return out

    def _map_result(self, check: Check, tally: _Map) -> tuple[bool, dict[str, Any]]:
        # As great_expectations.expectations.expectation._format_map_output: not_null has no nonnull count, so its
        # percentage is of every row; the others' is of the rows with a value (None when there is none).
        count = tally.unexpected
        if check.expectation == "expect_column_values_to_not_be_null":
            percent = count / tally.elements * 100 if tally.elements else None
        else:
            percent = count / tally.nonnull * 100 if tally.nonnull else None
        result: dict[str, Any] = {"element_count": tally.elements, "unexpected_count": count,
                                  "unexpected_percent": percent, "partial_unexpected_list": tally.values,
                                  "partial_unexpected_index_list": tally.rows}
        try:
            common = Counter(tally.values).most_common(PARTIAL)
            result["partial_unexpected_counts"] = [
                {"value": v, "count": n} for v, n in sorted(common, key=lambda x: (-x[1], x[0]))]
        except TypeError:  # None beside text: Great Expectations leaves the counts out
            pass
        return count == 0, result

    def _distinct_result(self, check: Check) -> tuple[bool, dict[str, Any]]:
        seen = self._distinct[check.column]
        if check.expectation == "expect_column_distinct_values_to_contain_set":
            missing = [v for v in check.kwargs["value_set"] if v not in seen]
            return not missing, {"observed_value": None, "missing_count": len(missing),
                                 "partial_missing_list": missing}
        lo, hi = check.kwargs.get("min_value"), check.kwargs.get("max_value")
        n = len(seen)
        return (lo is None or n >= lo) and (hi is None or n <= hi), {"observed_value": n}


def _unexpected(check: Check, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The rows a map expectation does not accept; a null is never unexpected, except to not_null."""
    name = check.expectation
    if name == "expect_column_values_to_not_be_null":
        return ~present
    if name in ("expect_column_values_to_be_numeric", "expect_column_values_to_be_of_type"):
        return np.zeros(len(values), dtype=bool)  # float64 holds numbers; keys are text
    if name == "expect_column_values_to_be_integral":
        with np.errstate(invalid="ignore"):
            fraction: np.ndarray = present & (values != np.floor(values))
        return fraction
    if name == "expect_column_values_to_be_between":
        lo, hi = check.kwargs.get("min_value"), check.kwargs.get("max_value")
        bad = np.zeros(len(values), dtype=bool)
        with np.errstate(invalid="ignore"):
            if lo is not None:
                bad |= values < lo
            if hi is not None:
                bad |= values > hi
        outside: np.ndarray = present & bad
        return outside
    # expect_column_values_to_be_in_set
    inside = pd.Series(values).isin(check.kwargs["value_set"]).to_numpy()
    unknown: np.ndarray = present & ~inside
    return unknown
