"""`mlops demo --task`: what it refuses before it starts (each task's whole demo: test_demo_regression.py and
test_demo_multiclass.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps._core.policy import builtin_policy_dir
from tests.support.demos import demo

pytestmark = [pytest.mark.integration]


def test_a_policy_of_another_task_is_refused_naming_both(tmp_path: Path) -> None:
    done = demo(tmp_path, "--task", "regression", "--policy", str(builtin_policy_dir() / "fraud-detection.yaml"),
                timeout=120)
    assert done.returncode == 1
    assert "--task regression:" in done.stderr and "is a binary model" in done.stderr, done.stderr
