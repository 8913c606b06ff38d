"""Fixtures shared by tests of the steps in more than one folder: a registry on a local folder and on a real S3 API
(the Registry's tests in tests/steps/_storage and its command line's in tests/steps/test_registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps._storage.registry import Registry


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"s3://{request.getfixturevalue('s3_bucket')}/registry"


@pytest.fixture
def reg(location: str) -> Registry:
    return Registry.open(location)


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    return tmp_path / "bundles"
