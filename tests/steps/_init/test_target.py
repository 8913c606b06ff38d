"""The task `mlops init` infers from a target (steps/_init/target.py): two values binary, a few labels multiclass,
numbers regression; `--task` where the user knows better, refused naming the column, the rule and the value when
the target cannot be that task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps._core.errors import UsageError
from steps._init.target import MAX_CLASSES, MIN_CLASS_ROWS, Classes, Numbers, infer

ROWS = 200


def target(values: list[object], dtype: str | None = None) -> pd.Series:
    return pd.Series(values, name="y", dtype=dtype)


@pytest.mark.parametrize(("values", "task", "why"), [
    (["No", "Yes"] * 100, "binary", "two distinct values"),
    ([0, 1] * 100, "binary", "two distinct values"),
    ([True, False] * 100, "binary", "two distinct values"),
    ([1.5, 2.5] * 100, "binary", "two distinct values"),
    (["a", "b", "c", "d"] * 50, "multiclass", "4 distinct labels"),
    ([1 + i % 5 for i in range(ROWS)], "multiclass", "5 whole-number values, each in at least 5 rows: class codes"),
    ([i % 40 for i in range(ROWS)], "regression", "40 distinct whole numbers, more than 10: a quantity"),
    ([[0, 1, 2][i % 3] for i in range(ROWS - 2)] + [7, 7], "regression", "4 distinct whole numbers, some in fewer "
                                                                          "than 5 rows: a quantity"),
    (list(np.linspace(0, 1, ROWS)), "regression", "200 distinct numbers, not all whole"),
    ([0.5, 1.5, 2.25] * 66 + [0.5, 1.5], "regression", "3 distinct numbers, not all whole"),
], ids=["yes-no", "zero-one", "booleans", "two-numbers", "labels", "codes-1-to-5", "count", "codes-with-a-rare-one",
        "measure", "three-fractions"])
def test_the_target_implies_its_task(values, task, why):
    found = infer(target(values))
    assert found.task == task
    assert found.why.startswith(why)


def test_classes_are_in_the_order_of_the_probability_columns_typed_as_the_data_has_them():
    codes = infer(target([1 + i % 10 for i in range(ROWS)]))
    assert isinstance(codes, Classes)
    assert codes.classes == tuple(range(1, 11))  # 10 after 9, not after 1 as text would sort
    assert codes.counts == (20,) * 10
    labels = infer(target(["Gentoo", "Adelie", None, "Chinstrap", "Adelie"] * 40))
    assert isinstance(labels, Classes)
    assert (labels.classes, labels.counts, labels.rows, labels.missing) == (
        ("Adelie", "Chinstrap", "Gentoo"), (80, 40, 40), 160, 40)
    # A CSV's codes with a hole are floats: still the whole-number classes 0, 1, 2.
    floats = infer(target([0.0, 1.0, 2.0, np.nan] * 50))
    assert isinstance(floats, Classes) and floats.classes == (0, 1, 2)


def test_a_regression_target_records_its_range_widened():
    counts = infer(target([1 + (i * 37) % 651 for i in range(1000)]))
    assert isinstance(counts, Numbers)
    assert (counts.observed, counts.allowed, counts.whole) == ((1.0, 651.0), (0.0, 1400.0), True)
    signed = infer(target(list(np.linspace(-2.5, 7.5, ROWS))))
    assert isinstance(signed, Numbers) and signed.allowed[0] < -2.5 and signed.allowed[1] > 7.5


@pytest.mark.parametrize(("values", "task", "message"), [
    ([f"t{i % 60}" for i in range(ROWS * 3)], None,
     f"--target y: a multiclass model has at most {MAX_CLASSES} classes; it has 60 (t0, t1,"),
    (["a"] * 100 + ["b"] * 100 + ["c"] * 2, None,
     f"--target y: each class needs at least {MIN_CLASS_ROWS} rows (train holds out a share of each); 'c' 2 rows: "
     "drop those rows or merge the class into another"),
    (["same"] * ROWS, None, "--target y: a multiclass model needs 3 classes or more; it has 1 (same)"),
    ([None] * ROWS, None, "--target y: every value is missing"),
    ([0, 1, 2] * 70, "binary", "--task binary: --target y: a binary model needs a target with two classes; it has 3"),
    (["No", "Yes"] * 100, "multiclass",
     "--task multiclass: --target y: a multiclass model needs 3 classes or more; it has 2 (No, Yes) (two: --task "
     "binary)"),
    (list(np.linspace(0, 1, ROWS)), "multiclass",
     "--task multiclass: --target y: classes are text or whole numbers; it holds numbers like 0.00502513, "),
    (["a", "b", "c"] * 70, "regression",
     "--task regression: --target y: a regression target holds numbers; it holds 'a', 'b', 'c'"),
    ([1.0, np.inf, 2.0] * 70, "regression", "--task regression: --target y: a regression target holds finite "
                                            "numbers; it holds inf"),
    ([3] * ROWS, "regression", "--task regression: --target y: a constant target (3 in every row) has nothing"),
    ([1, 2] * 100, "ordinal", "--task 'ordinal': must be one of binary, multiclass, regression"),
], ids=["too-many-labels", "a-class-too-rare", "constant", "empty", "binary-of-three", "multiclass-of-two",
        "multiclass-of-fractions", "regression-of-text", "regression-of-infinity", "regression-of-a-constant",
        "unknown-task"])
def test_a_target_that_cannot_be_the_task_is_refused_naming_the_column_the_rule_and_the_value(values, task, message):
    with pytest.raises(UsageError) as err:
        infer(target(values), task)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(("values", "task", "classes"), [
    ([i % 12 for i in range(240)], "multiclass", tuple(range(12))),  # 12 codes: a count by default
    ([0, 1] * 100, "regression", None),  # a 0/1 target as a number (a linear probability model)
    ([[0, 1, 2][i % 3] for i in range(ROWS)], "regression", None),
], ids=["count-as-classes", "zero-one-as-numbers", "codes-as-numbers"])
def test_task_overrides_what_the_data_implies_where_the_target_can_be_that_task(values, task, classes):
    found = infer(target(values), task)
    assert found.task == task and found.why.startswith(f"--task {task}")
    if classes is not None:
        assert isinstance(found, Classes) and found.classes == classes


def test_a_positive_label_belongs_to_a_binary_target_only():
    assert infer(target(["No", "Yes", "Yes"] * 50), None, "No").positive == "No"
    with pytest.raises(UsageError, match=r"--positive-label 'a': only a binary model has a positive label \(the "
                                         r"target y is multiclass"):
        infer(target(["a", "b", "c"] * 50), None, "a")
    with pytest.raises(UsageError, match=r"--positive-label '1': only a binary model has a positive label \(the "
                                         r"target y is regression\)"):
        infer(target([0, 1] * 100), "regression", "1")
