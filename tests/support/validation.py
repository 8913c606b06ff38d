"""The validate step run in-process for its tests and the expectations' (stdout, stderr, exit code, report), and the
size of the dataset that breaks the contract in every way at once."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from steps.validate import main

BROKEN_ROWS = 5000


@dataclass
class Run:
    code: int
    out: str
    err: str
    dir: Path
    report_path: Path

    @property
    def report(self) -> dict:
        return json.loads(self.report_path.read_text())

    def line(self, column: str, expectation: str) -> str:
        """The stderr line for one failed expectation."""
        prefix = f"validate: {column}: {expectation}"
        lines = [ln for ln in self.err.splitlines() if ln.startswith(prefix)]
        assert len(lines) == 1, f"expected one line starting {prefix!r} in:\n{self.err}"
        return lines[0]


def run_validate(dataset: str | Path, policy: Path, work: Path) -> Run:
    out, report = work / "validated", work / "report.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--dataset", str(dataset), "--policy", str(policy),
                     "--out", str(out), "--report", str(report)])
    return Run(code, stdout.getvalue(), stderr.getvalue(), out, report)


def failed_pairs(run: Run) -> set[tuple[str, str]]:
    return {(r["column"], r["expectation"]) for r in run.report["failed"]}
