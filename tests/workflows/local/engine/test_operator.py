"""The engine's entry point runs the conformance cases (tests/workflows/local/conformance/) end to end, with
real processes, and gets Argo v4.1.2's node phases, messages and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.local.engine.cases import bounded, case_files, differences, expectation, run_case

# cases that need the executor engineer's sandbox (artifacts, volumes, containerSets, sidecars) are run by their
# tests; the refusals are the front-end's
NEEDS_EXECUTOR = ("068", "069", "070", "071", "072", "073", "074", "076")
CONTROLLER_CASES = [c for c in case_files() if not c.name.startswith(NEEDS_EXECUTOR)
                    and "refuse" not in expectation(c)["expect"]]


@pytest.mark.parametrize("case", CONTROLLER_CASES, ids=[c.stem for c in CONTROLLER_CASES])
def test_case_gives_argos_result(case: Path, tmp_path: Path) -> None:
    expected = expectation(case)
    with bounded(float((expected.get("run") or {}).get("timeout", 60))):
        result = run_case(case, tmp_path / "run", tmp_path / "state")
    assert differences(result, expected) == []
