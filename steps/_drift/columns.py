"""A column of the reference or current data as a NumPy array of numbers, as both the counting and the raw
methods read it."""

from __future__ import annotations

import numpy as np
import pandas as pd


def numbers(values: pd.Series, name: str) -> np.ndarray:
    """A column as a NumPy array of numbers: integers as they are, anything else as float with NaN."""
    if values.dtype.kind in "iu":
        return values.to_numpy()
    if values.dtype.kind == "b":
        return values.to_numpy(dtype=np.int64)
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"feature {name!r}: expected numbers ({err})") from err


def sample(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The feature's column of `frame` as numbers; a missing column is an error naming it."""
    if name not in frame.columns:
        raise ValueError(f"no column {name!r} (a feature of the reference profile) in the data")
    return numbers(frame[name], name)
