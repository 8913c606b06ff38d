"""The `validate` step: check a dataset against the policy's data contract with Great Expectations.

On success it writes the validated rows for `train` (`DIR/data.parquet`: contract columns in contract
order, then the target; numeric as float64, integer as nullable Int64, categorical as text) and
`DIR/source.json`; on failure only the report, and it removes a stale `data.parquet` so nothing
downstream trains on rows that did not pass. The expectations themselves: steps/_quality/expectations.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from steps._core.data import Dataset, read_dataset
from steps._core.errors import UsageError, run
from steps._core.policy import DataPolicy, load_policy
from steps._quality import expectations as _expectations

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


def validate(dataset: Dataset, data: DataPolicy) -> tuple[ValidationReport, pd.DataFrame]:
    """Run every expectation of the contract; returns the report and the rows as checked (contract order)."""
    frame = _expectations.prepare(dataset.frame, data, dataset.format)
    outcomes = _expectations.run_checks(frame, _expectations.contract_checks(data))
    return ValidationReport(dataset, outcomes), frame


def validated_frame(frame: pd.DataFrame, data: DataPolicy) -> pd.DataFrame:
    """The rows `train` reads: one dtype per contract type, whatever the source format gave."""
    out = {}
    for f in data.features:
        col = frame[f.name]
        if f.type == "numeric":
            out[f.name] = pd.to_numeric(col).astype("float64")
        elif f.type == "integer":
            out[f.name] = pd.to_numeric(col).astype("Int64")
        else:
            out[f.name] = col.astype(object).where(col.notna(), None)
    target = frame[data.target]
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        target = target.astype("int64") if (target == target.round()).all() else target
    out[data.target] = target
    return pd.DataFrame(out).reset_index(drop=True)


def write_outputs(report: ValidationReport, frame: pd.DataFrame, data: DataPolicy, out: Path,
                  report_path: Path) -> None:
    """The report always; the validated rows and source.json only when the dataset passed."""
    _atomic_write(report_path, json.dumps(report.as_dict(), indent=2).encode() + b"\n")
    data_path, source_path = out / "data.parquet", out / "source.json"
    if not report.passed:
        data_path.unlink(missing_ok=True)
        source_path.unlink(missing_ok=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    source = {"uri": report.dataset.uri, "sha256": report.dataset.sha256, "format": report.dataset.format,
              "rows": len(frame)}
    _atomic_write(source_path, json.dumps(source, indent=2).encode() + b"\n")
    # data.parquet last: its presence means the folder is complete.
    with _temp_beside(data_path) as tmp:
        validated_frame(frame, data).to_parquet(tmp, index=False)
        tmp.replace(data_path)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temp_beside(path) as tmp:
        tmp.write_bytes(data)
        tmp.replace(path)


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A temporary name in the target's folder (so the rename is atomic), removed if it was not renamed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


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
    data = load_policy(args.policy).data
    dataset = read_dataset(args.dataset)
    report, frame = validate(dataset, data)
    write_outputs(report, frame, data, args.out, args.report)
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
          f"{args.out / 'data.parquet'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(STEP, lambda: _body(argv))


if __name__ == "__main__":
    sys.exit(main())
