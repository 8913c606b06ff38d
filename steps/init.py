"""Init step: a complete, commented policy for a new model, inferred from a dataset (`mlops init`).

    python -m steps.init --data PATH --target COLUMN [--task binary|multiclass|regression] [--model NAME]
                         [--positive-label VALUE] [--segment COLUMN] [--out FILE] [--force]

Reads a CSV or Parquet file (a path, file:// or s3://), writes gates/<model>.yaml (or --out) that
`mlops run training --policy FILE` accepts as it is, and prints what it found. The task comes from the target (two
values: binary; a few labels: multiclass; numbers: regression) unless --task names it. The file is written only
once the policy loader accepts it. Exit 0 written; 2 a bad file, an unknown column, a target that cannot be the task
(or any), or an existing file without --force.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import pandas as pd

from steps._core.data import read_dataset
from steps._core.errors import UsageError, run
from steps._core.files import replacing
from steps._core.policy import SCHEMA_FILE, load_policy
from steps._init import baselines as _baselines
from steps._init import columns as _columns
from steps._init import gates as _gates
from steps._init import target as _target
from steps._init.render import policy_text


def init(data: str, target: str, model: str, out: Path, positive_label: str | None = None,
         segment: str | None = None, force: bool = False, task: str | None = None) -> list[str]:
    """Write the policy; returns the summary lines to print. Raises UsageError."""
    if out.exists() and not force:
        raise UsageError(f"--out {out}: exists; give --force to replace it, or another --out")
    if out.parent.name == "gates" and out.suffix in (".yaml", ".yml") and out.stem != model:
        raise UsageError(f"--out {out}: a policy in gates/ is named after its model: gates/{model}.yaml")
    frame = read_dataset(data).frame
    for flag, column in (("--target", target), ("--segment", segment)):
        if column is not None and column not in frame.columns:
            names = ", ".join(map(str, frame.columns))
            raise UsageError(f"{flag} {column!r}: no such column in {data} (columns: {names})")
    found = _columns.infer(frame, exclude={target})
    features = [c for c in found if c.kind is not None]
    if not features:
        raise UsageError(f"--data {data}: no column besides {target!r} can be a feature: "
                         + "; ".join(f"{c.name}: {c.reason}" for c in found))
    goal = _target.infer(frame[target], task, positive_label)
    segments = None
    if segment is not None and goal.task == "regression":
        raise UsageError(f"--segment {segment!r}: a regression model has no per-segment gate (recall_gap is "
                         "binary's, macro_f1_gap multiclass')")
    if segment is not None:
        chosen = next(c for c in found if c.name == segment)
        if chosen.kind != "categorical":
            raise UsageError(f"--segment {segment!r}: must be a categorical feature (it is "
                             f"{chosen.kind or 'left out: ' + chosen.reason})")
        segments = len(chosen.categories)
    bounds = _bounds(goal, frame[target], segments, len(frame))
    schema = _schema_reference(out)
    text = policy_text(model, data, len(frame), found, goal, segment, bounds, _gates.drift_min_samples(goal.rows),
                       schema)
    with replacing(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_policy(tmp)  # the loader's word before the file is in place
    return _summary(model, data, len(frame), found, goal, out)


def _bounds(goal: _target.Target, values: pd.Series, segments: int | None, rows: int) -> list[_gates.Bound]:
    if isinstance(goal, _target.Classes):
        return _baselines.multiclass_bounds(goal, _baselines.prior(values, goal), segments)
    if isinstance(goal, _target.Numbers):
        return _baselines.regression_bounds(goal, _baselines.mean(values))
    return _gates.bounds(goal, segments, rows)


def model_name(data: str) -> str:
    """A Kubernetes name from the dataset's file name: 'Credit Default.csv' -> 'credit-default'."""
    stem = Path(data.rstrip("/").rsplit("/", 1)[-1]).stem
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:42].strip("-")
    return name or "model"


def _schema_reference(out: Path) -> str | None:
    """The policy schema beside gates/ as a path relative to `out`, for editors; None when there is none."""
    schema = Path("gates") / SCHEMA_FILE
    if not schema.is_file():
        return None
    return os.path.relpath(schema.resolve(), out.resolve().parent)


def _summary(model: str, data: str, rows: int, found: list[_columns.Column], goal: _target.Target,
             out: Path) -> list[str]:
    kinds = {k: [c.name for c in found if c.kind == k] for k in ("numeric", "integer", "categorical")}
    left_out = [c for c in found if c.kind is None]
    lines = [f"init: {data}: {rows} rows, {len(found) + 1} columns"]
    for kind, names in kinds.items():
        if names:
            lines.append(f"init:   {len(names)} {kind}: {', '.join(names)}")
    lines.append(f"init: target {goal.name}: {goal.task} ({goal.why}): {_target_summary(goal)}"
                 + (f"; {goal.missing} rows have no label (validate refuses them: drop them)" if goal.missing else ""))
    for c in left_out:
        lines.append(f"init:   left out {c.name}: {c.reason}")
    lines.append(f"init: wrote {out} ({model}); next: mlops run training --policy {out}")
    return lines


def _target_summary(goal: _target.Target) -> str:
    if isinstance(goal, _target.Classes):
        return ", ".join(f"{c!r} {n / goal.rows:.1%}" for c, n in zip(goal.classes, goal.counts, strict=True)) \
            + f" of {goal.rows} rows"
    if isinstance(goal, _target.Numbers):
        lo, hi = goal.observed
        return (f"{_columns.number_text(lo)} to {_columns.number_text(hi)} in {goal.rows} rows (allowed "
                f"{_columns.number_text(goal.allowed[0])} to {_columns.number_text(goal.allowed[1])})")
    return (f"{goal.positive!r} {goal.positive_rate:.1%} of {goal.rows} rows (positive), {goal.negative!r} "
            f"{1 - goal.positive_rate:.1%}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the dataset: CSV or Parquet, a path, file:// or s3://")
    p.add_argument("--target", required=True, help="the column the model predicts")
    p.add_argument("--task", choices=_target.TASKS,
                   help="what the model predicts (default: from the target: two values binary, a few labels "
                        "multiclass, numbers regression)")
    p.add_argument("--model", help="the model's name (default: from the file name)")
    p.add_argument("--positive-label", help="binary: the target's class the model scores (default: the minority "
                   "class)")
    p.add_argument("--segment", help="a categorical column whose segments the recall_gap (binary) or macro_f1_gap "
                   "(multiclass) bias gate compares")
    p.add_argument("--out", type=Path, help="where to write the policy (default: gates/<model>.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        model = args.model or model_name(args.data)
        out = args.out or Path("gates") / f"{model}.yaml"
        for line in init(args.data, args.target, model, out, args.positive_label, args.segment, args.force,
                         args.task):
            print(line)
        return 0

    return run("init", body)


if __name__ == "__main__":
    sys.exit(main())
