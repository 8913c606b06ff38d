"""`mlops demo --task multiclass`: the whole loop on ticket-triage, the reference multiclass model (checks in
tests/support/demos.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demos import check_task_demo

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_multiclass_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    check_task_demo("multiclass", tmp_path)
