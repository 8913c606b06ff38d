"""What each column of a dataset is, for `mlops init`: a numeric, integer or categorical feature (with its range,
categories and nullability), or a column that cannot be a feature and why.

The rules, where common tools guess wrong:
- TFDV's infer_schema and Great Expectations' onboarding type a column by its storage type, so a category coded
  0/1 or 1..10 becomes a number, and an ID column becomes a feature. Here a column of whole numbers with few
  distinct values is categorical (codes, typed as the data has them), and one whose values are unique per row is
  an identifier, left out.
- Evidently's column mapping asks the user which column is which; here the data decides and a comment in the
  policy says why, for the user to change where they know better.
- A continuous numeric column is never dropped as an identifier, however unique its values (amounts are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_CODES = 10  # whole numbers with at most this many distinct values are category codes (0/1, 1..10)
MAX_CATEGORIES = 50  # more distinct texts than this: free text or an identifier, not a category


@dataclass
class Column:
    """One column's role: a feature (its contract entry) or left out (`reason`), and what was observed."""

    name: str
    kind: str | None  # numeric | integer | categorical, or None when left out
    reason: str = ""  # why it is left out, or how it was typed (the policy's comment)
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    observed: tuple[float, float] | None = None  # the observed range of a number
    categories: list[str | int] = field(default_factory=list)
    missing: int = 0
    distinct: int = 0


def infer(frame: pd.DataFrame, exclude: set[str]) -> list[Column]:
    """Every column's role, in the frame's order, `exclude` (the target) left out."""
    return [infer_column(frame[name], len(frame)) for name in frame.columns if name not in exclude]


def infer_column(values: pd.Series, rows: int) -> Column:
    name = str(values.name)
    present = values.dropna()
    missing = rows - len(present)
    if len(present) == 0:
        return Column(name, None, "empty: every value is missing", missing=missing)
    distinct = int(present.nunique())
    if distinct == 1:
        value = present.iloc[0]
        return Column(name, None, f"constant: {_shown(value)} in every row that has a value", missing=missing,
                      distinct=1)
    nullable = missing > 0
    if pd.api.types.is_bool_dtype(values) or present.map(lambda v: isinstance(v, bool | np.bool_)).all():
        # A boolean's key is its text (steps._core.categories), which the contract lists.
        return Column(name, "categorical", "true/false values", nullable, categories=["false", "true"],
                      missing=missing, distinct=distinct)
    numbers = as_numbers(present)
    if numbers is not None:
        whole = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
        if whole and distinct == len(present) and len(present) > MAX_CODES:
            return Column(name, None, f"an identifier: a whole number unique to each of its {len(present)} rows",
                          missing=missing, distinct=distinct)
        if whole and distinct <= MAX_CODES:
            codes = sorted({int(v) for v in numbers})
            return Column(name, "categorical", f"{distinct} whole-number codes: a category, typed as the data has "
                          "them", nullable, categories=list(codes), missing=missing, distinct=distinct)
        kind = "integer" if whole else "numeric"
        lo, hi = float(np.min(numbers)), float(np.max(numbers))
        minimum, maximum = widen(lo, hi, whole)
        return Column(name, kind, f"{'whole ' if whole else ''}numbers {number_text(lo)} to {number_text(hi)}, bounds "
                      "widened by that span (tighten them where you know the true limits)", nullable, minimum, maximum,
                      (lo, hi), missing=missing, distinct=distinct)
    texts = present.astype(str)
    if distinct == len(present) and len(present) > MAX_CODES:
        return Column(name, None, f"an identifier: a text unique to each of its {len(present)} rows",
                      missing=missing, distinct=distinct)
    if distinct > MAX_CATEGORIES:
        return Column(name, None, f"free text or an identifier: {distinct} distinct values (a category has at "
                      f"most {MAX_CATEGORIES})", missing=missing, distinct=distinct)
    categories = sorted(set(texts))
    return Column(name, "categorical", f"{distinct} distinct texts", nullable, categories=list(categories),
                  missing=missing, distinct=distinct)


def widen(lo: float, hi: float, whole: bool) -> tuple[float, float]:
    """The contract's bounds from the observed range: the range again on each side (so new data a little beyond
    what this sample holds is accepted, while nonsense is refused), never below 0 for a column with no negative
    value, rounded outwards to two significant digits (5308.6 -> 5400)."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    minimum = 0.0 if lo >= 0 else -round_up(span - lo)
    maximum = round_up(hi + span)
    if whole:
        minimum, maximum = float(math.floor(minimum)), float(math.ceil(maximum))
    return minimum, maximum


def round_up(x: float, digits: int = 2) -> float:
    """The smallest number of `digits` significant digits at or above x (x > 0)."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return float(f"{math.ceil(round(x / step, 9)) * step:.12g}")  # 2.9, not 2.9000000000000004


def as_numbers(values: pd.Series) -> np.ndarray | None:
    """The values as floats when every one is a number (a text column of numbers counts), else None."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(values, errors="coerce")
    if converted.isna().any():
        return None
    return converted.to_numpy(dtype=np.float64)


def _shown(value: Any) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"
