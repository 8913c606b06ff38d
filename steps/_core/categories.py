"""One rule for a category value, wherever one is read: validation, training, the profile, the server's request
contract, the drift step's dataset reader. A value is compared by its key, the text it is written as:

- a string is itself (`"Yes"`, `"01"`);
- a whole number is its decimal digits, whatever carried it: the integer 1 from a Parquet column or a JSON body,
  the float 1.0 of a CSV column that pandas read as floats because of a hole, the string "1" of a text column;
- a boolean is `"true"` or `"false"` (a Parquet or CSV boolean column; JSON `true`);
- a number that is not whole is its shortest decimal form (`1.5`), so it is simply an unknown category;
- a missing value (None, NaN, pandas' NA) has no key.

The contract lists categories as the data has them (`[0, 1]`, `["No", "Yes"]`); their keys make the lookup.
`key` is plain Python (the server imports it); `keys` is its vectorised form for frames.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class CategoryError(TypeError):
    """A value that cannot be a category (a list, an object): the message names its type."""


def key(value: Any) -> str | None:
    """The key of one value (None for a missing one). Raises CategoryError for a value no column can hold."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]  # the common case first: `type(...) is str` narrows nothing
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return _float_key(value)
    if value is None:
        return None
    return _other_key(value)


def _float_key(x: float) -> str | None:
    if math.isnan(x):
        return None
    if x.is_integer():
        return str(int(x))
    return repr(x)


def _other_key(value: Any) -> str | None:
    # numpy and pandas scalars (numpy registers its numbers with the `numbers` ABCs), and subclasses of str
    if isinstance(value, str):
        return str(value)
    if type(value).__name__ in ("bool", "bool_"):  # numpy.bool (numpy 2) or numpy.bool_
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _float_key(float(value))
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    raise CategoryError(f"{type(value).__name__} is not a category value (a string, a whole number or a boolean)")


def lookup(categories: Sequence[Any]) -> dict[str, int]:
    """key -> the category's index in the contract's list (the encoder's code). Two categories with one key (the
    integer 1 and the string "1") are a contract error: ValueError names both."""
    table: dict[str, int] = {}
    for i, category in enumerate(categories):
        k = key(category)
        if k is None:
            raise ValueError(f"category {category!r} is a missing value, not a category")
        if k in table:
            raise ValueError(f"categories {categories[table[k]]!r} and {category!r} are the same value")
        table[k] = i
    return table


def shown(categories: Iterable[Any]) -> str:
    """The categories as a person reads them in a message: `0, 1` or `No, Yes`."""
    return ", ".join(str(key(c)) for c in categories)


def keys(values: pd.Series[Any] | np.ndarray | Sequence[Any]) -> np.ndarray:
    """`key` of every value, as an object array (None where missing), without a Python call per value for the
    columns data usually has (text, integers, floats, booleans)."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object if not isinstance(
        values, np.ndarray) else None)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        table = keys(pd.Series(series.cat.categories))
        out = np.empty(len(series), dtype=object)
        present = codes >= 0
        out[present] = table[codes[present]]
        out[~present] = None
        return out
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        # A column holds few distinct values: key each once (factorize hashes, it does not sort).
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        table = np.array([key(v) for v in uniques.tolist()] + [None], dtype=object)
        return table[codes]  # code -1 (missing) picks the None at the end
    array = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(array, skipna=True) in ("string", "empty"):
        out = array.copy()
        out[pd.isna(array)] = None
        return out
    return np.array([key(v) for v in array], dtype=object)
