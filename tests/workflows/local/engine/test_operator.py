"""The engine's entry point runs the conformance cases (tests/workflows/local/conformance/) end to end, with
real processes, and gets Argo v4.1.2's node phases, messages and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.local.engine.cases import bounded, case_files, differences, expectation, run_case

CASES = [c for c in case_files() if "refuse" not in expectation(c)["expect"]]


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case_gives_argos_result(case: Path, tmp_path: Path) -> None:
    expected = expectation(case)
    with bounded(float((expected.get("run") or {}).get("timeout", 60))):
        result = run_case(case, tmp_path / "run", tmp_path / "state")
    assert differences(result, expected) == []

