"""The policy file's value types: durations, Kubernetes quantities, and categories or labels written as YAML
booleans."""

from __future__ import annotations

import pytest

from steps._core.values import duration_seconds, quantity_value


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800)])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize(("text", "value"), [("2", 2.0), ("500m", 0.5), ("1.5", 1.5), ("4Gi", 4 * 2.0**30),
                                             ("1k", 1000.0)])
def test_quantity_value(text, value):
    assert quantity_value(text) == value


@pytest.mark.parametrize("convert", [duration_seconds, quantity_value], ids=["duration", "quantity"])
def test_a_malformed_duration_or_quantity_is_a_value_error_naming_it(convert):
    with pytest.raises(ValueError, match="'lots' is not a"):
        convert("lots")
