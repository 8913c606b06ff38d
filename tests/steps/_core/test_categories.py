"""One rule for a category value: its key. The integer 1 of a Parquet column or a JSON body, the 1.0 of a CSV
column with a hole and the text "1" are one category; a boolean is true/false; a missing value has no key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps._core.categories import CategoryError, key, keys, lookup, shown


@pytest.mark.parametrize(("value", "expected"), [
    ("Yes", "Yes"), ("01", "01"), (1, "1"), (1.0, "1"), (np.int64(1), "1"), (np.float64(2.0), "2"), (1.5, "1.5"),
    (True, "true"), (np.bool_(False), "false"), (None, None), (float("nan"), None), (pd.NA, None),
])
def test_the_key_of_one_value(value, expected):
    assert key(value) == expected


def test_a_value_no_column_holds_is_refused_naming_its_type():
    with pytest.raises(CategoryError, match="list is not a category value"):
        key(["a"])


@pytest.mark.parametrize("column", [
    pd.Series([0, 1, None], dtype=object), pd.Series([0.0, 1.0, np.nan]), pd.Series(["0", "1", None]),
    pd.Series([0, 1, None], dtype="Int64"), pd.Series(["0", "1", None], dtype="category"),
    pd.Series([0, "1", None], dtype=object),
], ids=["python-ints", "float-with-hole", "text", "nullable-int", "pandas-category", "mixed-objects"])
def test_every_storage_of_integer_codes_gives_the_same_keys(column):
    assert list(keys(column)) == ["0", "1", None]


def test_booleans_and_a_thousand_rows_of_text():
    assert list(keys(pd.Series([True, False]))) == ["true", "false"]
    text = pd.Series(np.random.default_rng(0).choice(["a", "b"], 1000).astype(object))
    assert list(keys(text)) == list(text)


def test_the_contract_lookup_refuses_two_categories_with_one_key():
    assert lookup([0, 1]) == {"0": 0, "1": 1} and lookup(["No", "Yes"]) == {"No": 0, "Yes": 1}
    with pytest.raises(ValueError, match="categories '1' and 1 are the same value"):
        lookup(["1", 1])
    assert shown([0, "x"]) == "0, x"
