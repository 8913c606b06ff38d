"""The `validate` step: check a dataset against the policy's data contract with Great Expectations.

On success it writes the validated rows for `train` (`DIR/data.parquet`: contract columns in contract
order, then the target; numeric as float64, integer as nullable Int64, categorical as text) and
`DIR/source.json`; on failure only the report, and it removes a stale `data.parquet` so nothing
downstream trains on rows that did not pass. The expectations themselves: steps/_quality/expectations.py; the
folder's format: steps/_quality/validated.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from steps._core.data import Dataset, read_dataset
from steps._core.documents import SourceRecord
from steps._core.errors import UsageError, run
from steps._core.files import write_text
from steps._core.policy import DataPolicy, load_policy
from steps._model.features import check_params
from steps._quality import expectations as _expectations
from steps._quality import validated as _validated

STEP = "validate"


@dataclass(frozen=True)
class ValidationReport:
    dataset: Dataset
    outcomes: list[_expectations.Outcome]

    @property
    def failed(self) -> list[_expectations.Outcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity == "critical"]

    @property
    def warnings(self) -> list[_expectations.Outcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity != "critical"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "dataset": self.dataset.uri,
            "sha256": self.dataset.sha256,
            "format": self.dataset.format,
            "rows": len(self.dataset.frame),
            "results": [o.as_dict() for o in self.outcomes],
            "failed": [o.as_dict() for o in self.failed],
            "warnings": [o.as_dict() for o in self.warnings],
        }


def validate(dataset: Dataset, data: DataPolicy, task: str = "binary") -> tuple[ValidationReport, pd.DataFrame]:
    """Run every expectation of the contract, the target's by the model's task; returns the report and the rows as
    checked (contract order)."""
    frame = _expectations.prepare(dataset.frame, data, task)
    outcomes = _expectations.run_checks(frame, _expectations.contract_checks(data, task))
    return ValidationReport(dataset, outcomes), frame


def write_outputs(report: ValidationReport, frame: pd.DataFrame, data: DataPolicy, out: Path,
                  report_path: Path, task: str = "binary") -> None:
    """The report always; the validated rows and source.json only when the dataset passed."""
    # The report keeps its reading order (verdict first), hence not write_json's sorted keys.
    write_text(report_path, json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.passed:
        _validated.clear(out)
        return
    dataset = report.dataset
    source = SourceRecord(uri=dataset.uri, sha256=dataset.sha256, rows=len(frame), format=dataset.format)
    # From the rows as read, not as checked: the checks see keys, the target keeps the type the data gave it.
    _validated.write(out, dataset.frame, data, source, task)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # `validate: error: ...` and exit 2, like every other bad input, through run().
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"python -m steps.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="CSV or Parquet: a local path, file:// or s3:// URI")
    p.add_argument("--policy", required=True, type=Path, help="the model's policy file (gates/<model>.yaml)")
    p.add_argument("--out", required=True, type=Path, help="folder for data.parquet and source.json")
    p.add_argument("--report", required=True, type=Path, help="the JSON validation report")
    return p


def _body(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    if args.report.is_dir():
        raise UsageError(f"--report {args.report}: is a folder, expected a file name")
    policy = load_policy(args.policy)
    # The whole policy is checked before any data is read: the model's parameters too, which train would
    # otherwise refuse only after validation has run.
    task = policy.model.task
    check_params(policy.model.estimator, policy.model.params, task)
    data = policy.data
    dataset = read_dataset(args.dataset)
    report, frame = validate(dataset, data, task)
    write_outputs(report, frame, data, args.out, args.report, task)
    for o in report.warnings:
        print(f"{STEP}: warning: {o.line()}", file=sys.stderr)
    for o in report.failed:
        print(f"{STEP}: {o.line()}", file=sys.stderr)
    rows = len(dataset.frame)
    if not report.passed:
        print(f"{STEP}: {dataset.uri}: {len(report.failed)} of {len(report.outcomes)} expectations failed "
              f"({rows} rows); report: {args.report}", file=sys.stderr)
        return 1
    print(f"{STEP}: {dataset.uri}: {rows} rows passed {len(report.outcomes)} expectations -> "
          f"{args.out / _validated.DATA_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(STEP, lambda: _body(argv))


if __name__ == "__main__":
    sys.exit(main())
