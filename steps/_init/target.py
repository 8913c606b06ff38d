"""What a model predicts, for `mlops init`: the task its target implies (binary, multiclass or regression), or the
one `--task` asks for when the target can be that task, with the classes or the range the policy records.

The rules, where the data decides:
- two distinct values are a binary target, whatever they are (0/1, Yes/No, 1.5/2.5);
- text (or true/false) is labels: 3 to MAX_CLASSES distinct texts are a multiclass target, more is refused;
- whole numbers with at most MAX_CODES distinct values, each in at least MIN_CLASS_ROWS rows, are class codes
  (1..5 ratings, 0/1/2 severities), as columns.py types such a feature; any other numbers are a regression target
  (a price, a count of hundreds of values), and `--task multiclass` says otherwise where the user knows better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from steps._core.categories import CategoryError, key
from steps._core.errors import UsageError
from steps._init import gates as _gates
from steps._init.columns import MAX_CODES, as_numbers, number_text, widen

TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 50  # as many distinct texts as a categorical feature may have (columns.MAX_CATEGORIES)
MIN_CLASS_ROWS = 5  # below this a class has about one row in a 20% holdout: train could not stratify on it


@dataclass(frozen=True)
class Classes:
    """A multiclass target: its classes in the policy's order (the model's probability columns) and their rows."""

    name: str
    classes: tuple[str | int, ...]
    counts: tuple[int, ...]  # rows of each class, in class order
    rows: int  # rows with a label
    missing: int  # rows without one
    why: str  # how the task was chosen

    task = "multiclass"


@dataclass(frozen=True)
class Numbers:
    """A regression target: its observed range and the range validate accepts (observed, widened)."""

    name: str
    observed: tuple[float, float]
    allowed: tuple[float, float]
    whole: bool
    rows: int
    missing: int
    distinct: int
    why: str

    task = "regression"


Target = _gates.Target | Classes | Numbers


def infer(values: pd.Series, task: str | None = None, positive_label: str | None = None) -> Target:
    """The target as the task it implies, or as `task` when given. Raises UsageError naming the column, the rule
    and the value when the target cannot be the task asked for (or any task)."""
    name = str(values.name)
    if task is not None and task not in TASKS:
        raise UsageError(f"--task {task!r}: must be one of {', '.join(TASKS)}")
    present = values.dropna()
    if len(present) == 0:
        raise UsageError(f"--target {name}: every value is missing: a model needs a target to learn")
    try:
        labels = present.map(key)
    except CategoryError as err:
        raise UsageError(f"--target {name}: {err}") from err
    counts = labels.value_counts()
    numbers = None if _is_bool(present) else as_numbers(present)
    whole = numbers is not None and bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    chosen = task or _implied(numbers, whole, counts)
    if chosen != "binary" and positive_label is not None:
        raise UsageError(f"--positive-label {positive_label!r}: only a binary model has a positive label (the target "
                         f"{name} is {chosen}{'' if task else ', as inferred; --task binary needs two classes'})")
    if chosen == "binary":
        return _gates.infer_target(values, positive_label, flag="--task binary: " if task else "")
    if chosen == "multiclass":
        return _classes(values, present, counts, numbers, whole, asked=task is not None)
    return _numbers(values, present, numbers, whole, counts, asked=task is not None)


def _implied(numbers: np.ndarray | None, whole: bool, counts: pd.Series) -> str:
    distinct = len(counts)
    if distinct == 2:
        return "binary"
    if numbers is None:
        return "multiclass"  # _classes refuses more than MAX_CLASSES and a constant, naming them
    if whole and 3 <= distinct <= MAX_CODES and int(counts.min()) >= MIN_CLASS_ROWS:
        return "multiclass"
    return "regression"


def _classes(values: pd.Series, present: pd.Series, counts: pd.Series, numbers: np.ndarray | None, whole: bool,
             asked: bool) -> Classes:
    name, distinct = str(values.name), len(counts)
    flag = "--task multiclass: " if asked else ""
    if numbers is not None and not whole:
        raise UsageError(f"{flag}--target {name}: classes are text or whole numbers; it holds numbers like "
                         f"{_example(present, numbers)} (a regression target: --task regression)")
    if distinct < 3:
        raise UsageError(f"{flag}--target {name}: a multiclass model needs 3 classes or more; it has {distinct} "
                         f"({', '.join(map(str, counts.index))})" + (" (two: --task binary)" if distinct == 2 else ""))
    if distinct > MAX_CLASSES:
        shown = ", ".join(map(str, list(counts.index[:10])))
        raise UsageError(f"{flag}--target {name}: a multiclass model has at most {MAX_CLASSES} classes; it has "
                         f"{distinct} ({shown}, ...)" + (" (numbers: --task regression)" if numbers is not None
                                                         else ""))
    rare = counts[counts < MIN_CLASS_ROWS]
    if len(rare):
        shown = ", ".join(f"{k!r} {int(n)} row{'s' if n > 1 else ''}" for k, n in rare.items())
        raise UsageError(f"{flag}--target {name}: each class needs at least {MIN_CLASS_ROWS} rows (train holds out a "
                         f"share of each); {shown}: drop those rows or merge the class into another")
    typed = {str(key(v)): _gates.plain(v) for v in present.drop_duplicates()}
    # Whole numbers in numeric order (a code 10 after 9); text in key order, as train reads a policy without classes.
    order = sorted(typed, key=int) if numbers is not None else sorted(typed)
    if asked:
        why = f"--task multiclass: {distinct} classes"
    elif numbers is not None:
        why = (f"{distinct} whole-number values, each in at least {MIN_CLASS_ROWS} rows: class codes (a count or a "
               "measure with few values is a regression target: --task regression)")
    else:
        why = f"{distinct} distinct labels"
    return Classes(name, tuple(typed[k] for k in order), tuple(int(counts[k]) for k in order), len(present),
                   len(values) - len(present), why)


def _numbers(values: pd.Series, present: pd.Series, numbers: np.ndarray | None, whole: bool, counts: pd.Series,
             asked: bool) -> Numbers:
    name, distinct = str(values.name), len(counts)
    flag = "--task regression: " if asked else ""
    if numbers is None:
        texts = [v for v in present.drop_duplicates() if as_numbers(pd.Series([v])) is None][:3]
        raise UsageError(f"{flag}--target {name}: a regression target holds numbers; it holds "
                         f"{', '.join(map(repr, texts))}")
    if not np.all(np.isfinite(numbers)):
        raise UsageError(f"{flag}--target {name}: a regression target holds finite numbers; it holds "
                         f"{_example(present, numbers, finite=False)}")
    if distinct < 2:
        raise UsageError(f"{flag}--target {name}: a constant target ({number_text(float(numbers[0]))} in every "
                         "row) has nothing to learn")
    lo, hi = float(np.min(numbers)), float(np.max(numbers))
    if asked:
        why = f"--task regression: {distinct} distinct numbers"
    elif whole:
        why = (f"{distinct} distinct whole numbers, " + (f"more than {MAX_CODES}: a quantity, not class codes"
               if distinct > MAX_CODES else f"some in fewer than {MIN_CLASS_ROWS} rows: a quantity, not class codes "
               "(--task multiclass if they are classes)"))
    else:
        why = f"{distinct} distinct numbers, not all whole"
    return Numbers(name, (lo, hi), widen(lo, hi, whole), whole, len(present), len(values) - len(present), distinct,
                   why)


def _is_bool(values: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(values) or values.map(lambda v: isinstance(v, bool | np.bool_)).all())


def _example(present: pd.Series, numbers: np.ndarray, finite: bool = True) -> str:
    """Up to three values that break the rule: not whole (finite=True) or not finite."""
    bad = ~np.isfinite(numbers) if not finite else np.isfinite(numbers) & (numbers != np.round(numbers))
    return ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in present[bad].drop_duplicates().iloc[:3])
