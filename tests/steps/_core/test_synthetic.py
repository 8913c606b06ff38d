"""`generate:` dataset URIs: the synthetic reference data read like any other dataset, with clear refusals."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from steps._core.data import read_dataset
from steps._core.errors import UsageError
from steps._core.synthetic import generate


def test_a_generate_uri_reads_the_generator_s_frame_with_a_stable_digest():
    uri = "generate:fraud-detection?rows=500&seed=3&drift=0.4"
    dataset = read_dataset(uri)
    pd.testing.assert_frame_equal(dataset.frame, generate(500, seed=3, drift=0.4))
    assert dataset.format == "generated" and dataset.sha256 == read_dataset(uri).sha256
    assert dataset.sha256 != read_dataset("generate:fraud-detection?rows=500&seed=4").sha256


@pytest.mark.parametrize(("uri", "message"), [
    ("generate:churn?rows=5", "no generator 'churn' (known: fraud-detection)"),
    ("generate:fraud-detection", "rows= is required"),
    ("generate:fraud-detection?rows=many", "rows='many' is not a whole number"),
    ("generate:fraud-detection?rows=5&speed=1", "unknown parameter 'speed'"),
    ("generate:fraud-detection?rows=0", "--rows: must be at least 1"),
])
def test_a_bad_generate_uri_is_a_usage_error_naming_the_part(uri, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        read_dataset(uri)
