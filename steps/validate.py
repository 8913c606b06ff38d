"""The `validate` step: check a dataset against the policy's data contract with Great Expectations.

On success it writes the validated rows for `train` (`DIR/data.parquet`: contract columns in contract
order, then the target; numeric as float64, integer as nullable Int64, categorical as text) and
`DIR/source.json`; on failure only the report, and it removes a stale `data.parquet` so nothing
downstream trains on rows that did not pass. Only the contract's columns are read; a Parquet file of more than
--batch-rows rows is read in batches, twice (validate, then write), for the whole file's report in a batch's memory.
The expectations themselves: steps/_quality/expectations.py; the folder's format: steps/_quality/validated.py.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from steps._core.data import Dataset, Source, open_source, read_dataset
from steps._core.documents import SourceRecord
from steps._core.errors import UsageError, run
from steps._core.files import write_text
from steps._core.policy import DataPolicy, load_policy
from steps._core.synthetic import SCHEME
from steps._quality import expectations as _expectations
from steps._quality import tally as _tally
from steps._quality import validated as _validated

STEP = "validate"
BATCH_ROWS = 1 << 20  # pyarrow's default row group: the 1M rows of `mlops data generate` are one batch


@dataclass(frozen=True)
class ValidationReport:
    dataset: Dataset  # its frame: the rows checked, or (rows in batches) the last batch's
    outcomes: list[_expectations.Outcome]
    rows: int = -1  # -1: len(dataset.frame)

    @property
    def row_count(self) -> int:
        return len(self.dataset.frame) if self.rows < 0 else self.rows

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
            "rows": self.row_count,
            "results": [o.as_dict() for o in self.outcomes],
            "failed": [o.as_dict() for o in self.failed],
            "warnings": [o.as_dict() for o in self.warnings],
        }


def validate(dataset: Dataset, data: DataPolicy, task: str = "binary",
             before_gx: Callable[[], None] | None = None) -> tuple[ValidationReport, pd.DataFrame]:
    """Run every expectation of the contract, the target's by the model's task; returns the report and the rows as
    checked (contract order). `before_gx` is called before Great Expectations is imported, if it is."""
    frame = _expectations.prepare(dataset.frame, data, task)
    outcomes = _expectations.run_checks(frame, _expectations.contract_checks(data, task), before_gx)
    return ValidationReport(dataset, outcomes), frame


def validate_batches(source: Source, data: DataPolicy, task: str = "binary", batch_rows: int = BATCH_ROWS,
                     before_gx: Callable[[], None] | None = None) -> tuple[ValidationReport, bool]:
    """`validate` for a Parquet file read `batch_rows` rows at a time, so memory follows the batch, not the file: the
    same report as for the whole frame. Data the batches cannot count (steps/_quality/tally.py: e.g. text in a
    numeric column) is validated whole, as `validate` does. Also returns whether the target is whole numbers in
    every batch (validated.target_is_whole), for writing the rows."""
    columns = _contract_columns(source, data)
    checks = _expectations.contract_checks(data, task)
    tally = _tally.Tally(checks, columns)
    whole, last = True, pd.DataFrame()
    for batch in source.batches(columns, batch_rows, _categorical(data)):
        prepared = _expectations.prepare(batch, data, task)
        if not _tally.clean(prepared, checks):
            break
        tally.add(prepared)
        whole = whole and data.target in batch.columns and _validated.target_is_whole(batch, data, task)
        last = batch
    else:
        if tally.complete():
            outcomes = _expectations.outcomes(tally, tally.rows)
            dataset = Dataset(last, source.uri, source.sha256, source.format)
            return ValidationReport(dataset, outcomes, tally.rows), whole
    dataset = Dataset(source.read(columns, _categorical(data)), source.uri, source.sha256, source.format)
    report, _ = validate(dataset, data, task, before_gx)
    whole = bool(report.passed and _validated.target_is_whole(dataset.frame, data, task))
    # The rows are written batch by batch again: the report need not hold them all.
    kept = Dataset(dataset.frame.iloc[:0], source.uri, source.sha256, source.format)
    return ValidationReport(kept, report.outcomes, report.row_count), whole


def write_outputs(report: ValidationReport, frame: pd.DataFrame, data: DataPolicy, out: Path,
                  report_path: Path, task: str = "binary") -> None:
    """The report always; the validated rows and source.json only when the dataset passed."""
    write_report(report, report_path, out)
    if report.passed:
        # From the rows as read, not as checked: the checks see keys, the target keeps the type the data gave it.
        _validated.write(out, report.dataset.frame, data, _source_record(report), task)


def write_report(report: ValidationReport, report_path: Path, out: Path) -> None:
    """The report; when the dataset failed, a previous run's validated rows go, so nothing trains on them."""
    # The report keeps its reading order (verdict first), hence not write_json's sorted keys.
    write_text(report_path, json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.passed:
        _validated.clear(out)


def _source_record(report: ValidationReport) -> SourceRecord:
    dataset = report.dataset
    return SourceRecord(uri=dataset.uri, sha256=dataset.sha256, rows=report.row_count, format=dataset.format)


def _categorical(data: DataPolicy) -> list[str]:
    """The categorical features: read as pandas categories (not the target, whose type the validated rows keep)."""
    return [f.name for f in data.features if f.type == "categorical"]


def _contract_columns(source: Source, data: DataPolicy) -> list[str]:
    """The contract's columns the file has (the features, then the target): nothing else is read."""
    have = set(source.columns())
    return [c for c in (*data.feature_names, data.target) if c in have]


def _check(data: DataPolicy, task: str, uri: str, out: Path, report_path: Path, batch_rows: int,
           ready: Callable[[], None] = lambda: None) -> ValidationReport:
    """Read, validate and write: the whole file at once, or (a Parquet file of more than `batch_rows` rows) in
    batches, twice: once to validate, once to write the rows that passed. `ready` is called before any write."""
    if uri.startswith(SCHEME):
        report, _ = validate(read_dataset(uri), data, task, ready)
        ready()
        write_outputs(report, report.dataset.frame, data, out, report_path, task)
        return report
    with open_source(uri) as source:
        rows = source.rows()
        if rows is None or rows <= batch_rows:
            columns = _contract_columns(source, data)
            table = source.table(columns, _categorical(data)) if source.format == "parquet" and columns else None
            frame = source.read(columns, _categorical(data)) if table is None else table.to_pandas()
            if len(frame.index) == 0:
                raise UsageError(f"dataset {uri}: has a header but no rows")
            dataset = Dataset(frame, uri, source.sha256, source.format)
            # Great Expectations, if it is needed, is imported after scikit-learn (on the check's thread) is done.
            report, checked = validate(dataset, data, task, ready)
            del checked  # written from the rows as read: the rows as checked need not stay in memory
            ready()
            if table is None or not report.passed:
                write_outputs(report, frame, data, out, report_path, task)
            else:
                write_report(report, report_path, out)
                _validated.write_arrow(out, table, frame, data, _source_record(report), task)
            return report
        report, whole = validate_batches(source, data, task, batch_rows, ready)
        ready()
        write_report(report, report_path, out)
        if report.passed:
            batches = source.batches(_contract_columns(source, data), batch_rows, _categorical(data))
            _validated.write_batches(out, batches, data, _source_record(report), task, whole)
        return report


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
    p.add_argument("--batch-rows", type=_positive, default=BATCH_ROWS, metavar="N",
                   help=f"a Parquet file of more rows is read N rows at a time, twice (default {BATCH_ROWS})")
    return p


class _Background:
    """A call run on a thread; `wait` joins it and raises what it raised."""

    def __init__(self, call: Callable[[], None]) -> None:
        self._error: BaseException | None = None

        def target() -> None:
            try:
                call()
            except BaseException as err:  # handed to wait(), on the caller's thread
                self._error = err

        self._thread = threading.Thread(target=target, name="check-params", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class _Forked:
    """model.params checked in a forked process beside the reading: importing scikit-learn takes a second or two
    of one core, and on a thread it held the GIL the reading needs (1M rows at load 4-5: validate took 3.4-6.2 s
    with the check on a thread, 2.4-3.1 s without it). `wait` joins it and raises its UsageError."""

    def __init__(self, estimator: str, params: dict[str, Any], task: str) -> None:
        context = multiprocessing.get_context("fork")
        self._answer, sender = context.Pipe(duplex=False)
        self._process: Any = context.Process(target=_check_in_child, args=(sender, estimator, params, task),
                                              name="check-params", daemon=True)
        self._process.start()
        sender.close()

    def wait(self) -> None:
        if self._process is None:
            return
        try:
            answer = self._answer.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            answer = ("error", "the process checking model.params ended without an answer")
        finally:
            self._process.join()
            self._process = None
            self._answer.close()
        if answer is not None:
            kind, message = answer
            raise UsageError(message) if kind == "usage" else RuntimeError(f"checking model.params: {message}")


def _check_in_child(sender: Any, estimator: str, params: dict[str, Any], task: str) -> None:
    try:
        _check_params(estimator, params, task)
        sender.send(None)
    except UsageError as err:
        sender.send(("usage", str(err)))
    except BaseException as err:  # the parent raises it; the child only reports
        sender.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        sender.close()


def _check_beside(estimator: str, params: dict[str, Any], task: str) -> _Background | _Forked:
    """The parameter check, started beside the reading: in a forked process where the platform forks safely
    (Linux), else on a thread."""
    if sys.platform == "linux":
        return _Forked(estimator, params, task)
    return _Background(lambda: _check_params(estimator, params, task))


def _check_params(estimator: str, params: dict[str, Any], task: str) -> None:
    from steps._model.features import check_params

    check_params(estimator, params, task)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _body(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    if args.report.is_dir():
        raise UsageError(f"--report {args.report}: is a folder, expected a file name")
    policy = load_policy(args.policy)
    # The whole policy is checked, the model's parameters too, which train would otherwise refuse only after
    # validation has run. That check imports scikit-learn (seconds): it runs beside the reading, and its verdict
    # comes first, before anything is written and before any error about the data.
    task = policy.model.task
    params = _check_beside(policy.model.estimator, policy.model.params, task)
    try:
        report = _check(policy.data, task, args.dataset, args.out, args.report, args.batch_rows, params.wait)
    except BaseException:
        params.wait()
        raise
    dataset = report.dataset
    for o in report.warnings:
        print(f"{STEP}: warning: {o.line()}", file=sys.stderr)
    for o in report.failed:
        print(f"{STEP}: {o.line()}", file=sys.stderr)
    rows = report.row_count
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
