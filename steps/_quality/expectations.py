"""The policy's data contract as Great Expectations 1.x expectations, run offline on a pandas frame.

`contract_checks` turns the contract into plain `Check`s (no Great Expectations import, so it is cheap);
`run_checks` counts them with numpy where the columns are clean (steps/_quality/tally.py: the results GX gives, without
importing it), else `run_gx` builds the suite and runs it in an ephemeral context. Per feature, in this order:

- the column exists;
- its type: `numeric` holds numbers, `integer` whole numbers, `categorical` text (custom expectations
  `expect_column_values_to_be_numeric` / `..._integral`, and GX's `expect_column_values_to_be_of_type`);
- its range (`min`/`max`, inclusive) and, unless `nullable`, no nulls;
- categorical: values in `categories`. With `unknown: reject` an unseen value fails the dataset. With
  `unknown: other` the contract itself says what an unseen value means (training and serving put it in the
  `other` bucket, and a literal `other` is that bucket), so unseen values are reported as a warning
  (GX severity `warning`) and do not fail it: a new merchant category must not stop retraining.

The target, by the model's task: it exists and has no nulls, and then
- binary: it holds both classes, compared by key. With `data.classes` its values must be those two; else with a 0/1
  `positive_label` they must be 0 and 1; else it must have exactly two values, the positive label being one of them;
- multiclass: with `data.classes` its values are among them and each is present (train learns a probability column
  per class); without, it has three distinct values or more;
- regression: numbers (`expect_column_values_to_be_numeric`), within `data.target_min` / `target_max` when given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from steps._core.categories import CategoryError, key, keys
from steps._core.policy import DataPolicy
from steps._quality import tally as _tally

# Map expectations report "n of N rows <verb>"; the verb says what was wrong with those rows.
_VERBS = {
    "expect_column_values_to_be_numeric": "not numbers",
    "expect_column_values_to_be_integral": "not whole numbers",
    "expect_column_values_to_be_of_type": "not text",
    "expect_column_values_to_be_between": "outside",
    "expect_column_values_to_not_be_null": "null",
    "expect_column_values_to_be_in_set": "not in the set",
}
_TYPE_CHECKS = ("expect_column_values_to_be_numeric", "expect_column_values_to_be_integral",
                "expect_column_values_to_be_of_type")
_EXAMPLES = 5


@dataclass(frozen=True)
class Check:
    """One expectation: its GX name, its column, its arguments and whether a failure fails the dataset."""

    expectation: str
    column: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    severity: str = "critical"  # "critical" fails the dataset; "warning" is reported only
    # A value set holds keys (steps._core.categories); messages show them as the policy writes them (1, not '1').
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    check: Check
    success: bool
    observed: Any
    details: str

    @property
    def rule(self) -> str:
        return _rule(self.check)

    def line(self) -> str:
        """E.g. `amount: expect_column_values_to_be_between [0, 100000]: 2 of 20000 rows outside, e.g. -5`."""
        rule = f" {self.rule}" if self.rule else ""
        return f"{self.check.column}: {self.check.expectation}{rule}: {self.details}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.check.expectation,
            "column": self.check.column,
            "kwargs": _plain(self.check.kwargs),
            "severity": self.check.severity,
            "success": self.success,
            "observed": _plain(self.observed),
            "details": self.details,
        }


def contract_checks(data: DataPolicy, task: str = "binary") -> list[Check]:
    """Every expectation the contract implies, features in contract order, then the target (by `task`)."""
    checks: list[Check] = []
    for f in data.features:
        checks.append(Check("expect_column_to_exist", f.name))
        if f.type == "numeric":
            checks.append(Check("expect_column_values_to_be_numeric", f.name))
        elif f.type == "integer":
            checks.append(Check("expect_column_values_to_be_integral", f.name))
        else:
            checks.append(Check("expect_column_values_to_be_of_type", f.name, {"type_": "str"}))
        if f.min is not None or f.max is not None:
            checks.append(Check("expect_column_values_to_be_between", f.name,
                                {"min_value": _number(f.min), "max_value": _number(f.max)}))
        if not f.nullable:
            checks.append(Check("expect_column_values_to_not_be_null", f.name))
        if f.type == "categorical":
            # By key (steps._core.categories): `prepare` writes the column's values as their keys too.
            labels = _labels(f.categories)
            allowed = list(labels)
            if f.unknown == "other":
                allowed += [] if "other" in allowed else ["other"]
                checks.append(Check("expect_column_values_to_be_in_set", f.name, {"value_set": allowed},
                                    "warning", labels))
            else:
                checks.append(Check("expect_column_values_to_be_in_set", f.name, {"value_set": allowed},
                                    labels=labels))

    return checks + target_checks(data, task)


def target_checks(data: DataPolicy, task: str = "binary") -> list[Check]:
    """The target's expectations for the model's task (the module's docstring says which)."""
    target = data.target
    checks = [Check("expect_column_to_exist", target), Check("expect_column_values_to_not_be_null", target)]
    if task == "regression":
        checks.append(Check("expect_column_values_to_be_numeric", target))
        if data.target_min is not None or data.target_max is not None:
            checks.append(Check("expect_column_values_to_be_between", target,
                                {"min_value": _number(data.target_min), "max_value": _number(data.target_max)}))
        return checks
    if task == "multiclass":
        if data.classes:
            labels = _labels(data.classes)
            checks.append(Check("expect_column_values_to_be_in_set", target, {"value_set": list(labels)},
                                labels=labels))
            checks.append(Check("expect_column_distinct_values_to_contain_set", target,
                                {"value_set": list(labels)}, labels=labels))
        else:
            checks.append(Check("expect_column_unique_value_count_to_be_between", target,
                                {"min_value": 3, "max_value": None}))
        return checks
    positive = str(key(data.positive_label))
    classes = _labels(data.classes) if data.classes else _labels([0, 1]) if positive in ("0", "1") else None
    if classes is not None:
        checks.append(Check("expect_column_values_to_be_in_set", target, {"value_set": list(classes)},
                            labels=classes))
        # One expectation says "both classes present" and names the class that is missing.
        checks.append(Check("expect_column_distinct_values_to_contain_set", target, {"value_set": list(classes)},
                            labels=classes))
    else:
        checks.append(Check("expect_column_distinct_values_to_contain_set", target, {"value_set": [positive]},
                            labels=_labels([data.positive_label])))
        checks.append(Check("expect_column_unique_value_count_to_be_between", target,
                            {"min_value": 2, "max_value": 2}))
    return checks


def prepare(frame: pd.DataFrame, data: DataPolicy, task: str = "binary") -> pd.DataFrame:
    """The frame the expectations see: the contract's columns that are present, in order, then the target.

    Numeric and integer columns of numbers (as pandas read them, or written as text) become float64 (NaN for
    null), so range checks take GX's vectorised path and pandas' nullable `pd.NA` never reaches it; a column with
    a value that is not a number stays as read, so the type check can show it. Categorical columns and a class
    target hold their values' keys (steps._core.categories): the integer 1, the float 1.0 and the text "1" are one
    category, however the file stored it; a value that cannot be a category (a list) stays as it is, for the type
    check to show. A regression target is a column of numbers like a numeric feature.
    """
    columns: dict[str, pd.Series] = {}
    for f in data.features:
        if f.name not in frame.columns:
            continue
        col = frame[f.name]
        columns[f.name] = _as_floats(col) if f.type in ("numeric", "integer") else _as_keys(col)
    if data.target in frame.columns:
        col = frame[data.target]
        columns[data.target] = _as_floats(col) if task == "regression" else _as_keys(col)
    return pd.DataFrame(columns, index=frame.index)


def _as_floats(col: pd.Series) -> pd.Series:
    """A column of numbers (as pandas read them, or every value a number written as text) as float64, NaN for null;
    any other as read, for the type check to show the values that are not numbers."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return pd.Series(col.to_numpy(dtype="float64", na_value=np.nan), index=col.index, name=col.name)
    numbers = _as_numbers(col)
    if int(numbers.notna().sum()) == int(col.notna().sum()):
        return pd.Series(numbers.to_numpy(), index=col.index, name=col.name)
    return col


def _as_keys(col: pd.Series) -> pd.Series:
    try:
        return pd.Series(keys(col), index=col.index, name=col.name, dtype=object)
    except CategoryError:  # e.g. a list in a cell: left as read, for the type check to name
        return col.astype(object)


def run_checks(frame: pd.DataFrame, checks: list[Check],
               before_gx: Callable[[], None] | None = None) -> list[Outcome]:
    """Every check's outcome on a prepared frame: counted with numpy (steps/_quality/tally.py) when its columns are
    in the form clean data takes, else by Great Expectations itself (`run_gx`, after `before_gx`); the same outcomes
    either way.

    Every check runs even when its column is missing: those fail, and the outcome says why.
    """
    if _tally.clean(frame, checks):
        tally = _tally.Tally(checks, frame.columns)
        tally.add(frame)
        if tally.complete():
            return outcomes(tally, len(frame))
    if before_gx is not None:
        before_gx()
    return run_gx(frame, checks)


def outcomes(tally: _tally.Tally, rows: int) -> list[Outcome]:
    """The outcomes of a tally's checks over `rows` rows (one frame, or every batch of a file)."""
    results = tally.results()
    type_failed = {c.column for c, (ok, _) in zip(tally.checks, results, strict=True)
                   if c.expectation in _TYPE_CHECKS and not ok}
    return [Outcome(check, ok, *_describe(check, result, {}, tally.columns, rows, type_failed))
            for check, (ok, result) in zip(tally.checks, results, strict=True)]


def run_gx(frame: pd.DataFrame, checks: list[Check]) -> list[Outcome]:
    """Run every check with Great Expectations (ephemeral context, no progress bars, no network)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    classes = _expectation_classes()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (context.data_sources.add_pandas("dataset")
             .add_dataframe_asset("frame")
             .add_batch_definition_whole_dataframe("whole"))
    # `meta` carries our index: GX does not promise to return results in suite order. The suite is
    # complete before it is stored: adding to a stored suite re-serialises it every time (quadratic).
    expectations = [
        classes[c.expectation](column=c.column, severity=c.severity, meta={"check": i}, **c.kwargs)
        for i, c in enumerate(checks)
    ]
    suite = context.suites.add(gx.ExpectationSuite(name="contract", expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="contract", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame},
                            result_format={"result_format": "SUMMARY",
                                           "partial_unexpected_count": _tally.PARTIAL})

    by_index = {int(r.expectation_config.meta["check"]): r for r in result.results
                if r.expectation_config is not None and r.expectation_config.meta}
    type_failed = {checks[i].column for i, r in by_index.items()
                   if checks[i].expectation in _TYPE_CHECKS and not r.success}
    columns = set(frame.columns)
    out = []
    for i, check in enumerate(checks):
        r = by_index.get(i)
        if r is None:  # never seen; a check without a result must not count as passed
            out.append(Outcome(check, False, None, "not evaluated: no result from Great Expectations"))
            continue
        observed, details = _describe(check, r.result or {}, r.exception_info or {}, columns, len(frame),
                                      type_failed)
        out.append(Outcome(check, bool(r.success), observed, details))
    return out


def _describe(check: Check, result: dict[str, Any], exception: dict[str, Any], columns: set[str], length: int,
              type_failed: set[str]) -> tuple[Any, str]:
    """What GX observed, as plain data, and a sentence for a person."""
    if check.column not in columns:
        return None, ("column is missing" if check.expectation == "expect_column_to_exist"
                      else "not evaluated: the column is missing")
    raised = _raised(exception)
    if raised is not None:
        if check.column in type_failed:
            return None, "not evaluated: the column holds values of the wrong type (see its type check)"
        return None, f"could not be evaluated: {raised}"
    if check.expectation == "expect_column_to_exist":
        return None, "column is present"
    if "unexpected_count" in result:
        count, total = int(result["unexpected_count"]), int(result.get("element_count", length))
        examples = _examples(result)
        rows = list(result.get("partial_unexpected_index_list") or [])[:_EXAMPLES]
        observed = {"unexpected_count": count, "element_count": total,
                    "unexpected_percent": result.get("unexpected_percent"), "examples": examples,
                    "rows": rows}
        if count == 0:
            return observed, f"all {total} rows pass"
        if check.expectation == "expect_column_values_to_not_be_null":
            # The value of a null is not worth showing; where it is, is.
            shown = "row " + ", ".join(str(r) for r in rows) if rows else "..."
        else:
            shown = ", ".join(_show(v) for v in examples)
        verb = _VERBS.get(check.expectation, "unexpected")
        return observed, f"{count} of {total} rows {verb}, e.g. {shown}"
    if "missing_count" in result:
        missing = list(result.get("partial_missing_list") or [])
        missing = [check.labels.get(v, v) for v in missing]
        if not missing:
            return {"missing": []}, "every value is present"
        return {"missing": missing}, "no row has " + " or ".join(_show(v) for v in missing)
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, list):
            shown = "[" + ", ".join(_show(v) for v in value) + "]"
        else:  # a count, or a type name (int64), which reads better unquoted
            shown = value if isinstance(value, str) else _show(value)
        return value, f"observed {shown}"
    return None, "no observation"


def _labels(values: Any) -> dict[str, Any]:
    """key -> the value as the policy writes it (steps._core.categories)."""
    return {str(key(v)): v for v in values}


def _raised(exception: dict[str, Any]) -> str | None:
    # A failed metric comes back keyed by metric id; a failed expectation comes back flat.
    if exception.get("raised_exception"):
        return str(exception.get("exception_message"))
    for info in exception.values():
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _examples(result: dict[str, Any]) -> list[Any]:
    """Distinct unexpected values, the most frequent first (from GX's first 20 unexpected rows)."""
    counts = result.get("partial_unexpected_counts") or []
    if counts:
        return [c["value"] for c in counts][:_EXAMPLES]
    values = list(dict.fromkeys(result.get("partial_unexpected_list", [])))
    return values[:_EXAMPLES]


def _rule(check: Check) -> str:
    k = check.kwargs
    if "min_value" in k or "max_value" in k:
        lo = "-inf" if k.get("min_value") is None else _show(k["min_value"])
        hi = "inf" if k.get("max_value") is None else _show(k["max_value"])
        return f"[{lo}, {hi}]"
    if "value_set" in k:
        return "{" + ", ".join(_show(check.labels.get(v, v)) for v in k["value_set"]) + "}"
    if "type_" in k:
        return str(k["type_"])
    return ""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _number(value: float | None) -> int | float | None:
    return int(value) if value is not None and float(value).is_integer() else value


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to strings (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _as_numbers(column: pd.Series) -> pd.Series:
    """The column as float64, NaN where a value is not a number (text that parses counts; booleans do not)."""
    if pd.api.types.is_bool_dtype(column):
        return pd.Series(np.nan, index=column.index)
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    no_bools = column.map(lambda v: np.nan if isinstance(v, (bool, np.bool_)) else v)
    return pd.to_numeric(no_bools, errors="coerce").astype("float64")


@functools.cache
def _expectation_classes() -> dict[str, type]:
    """GX's expectation classes by name, plus our two type checks (registered with GX once per process)."""
    import great_expectations.expectations as gxe
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnMapMetricProvider,
        column_condition_partial,
    )

    class ColumnValuesNumeric(ColumnMapMetricProvider):
        condition_metric_name = "column_values.mlops_numeric"

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
            return _as_numbers(column).notna()

    class ColumnValuesIntegral(ColumnMapMetricProvider):
        condition_metric_name = "column_values.mlops_integral"

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
            numbers = _as_numbers(column)
            return numbers.notna() & numbers.eq(np.floor(numbers.to_numpy()))

    class ExpectColumnValuesToBeNumeric(ColumnMapExpectation):
        """Every non-null value is a number."""

        map_metric = "column_values.mlops_numeric"

    class ExpectColumnValuesToBeIntegral(ColumnMapExpectation):
        """Every non-null value is a whole number (3 and 3.0 are; 3.5 and "three" are not)."""

        map_metric = "column_values.mlops_integral"

    return {
        "expect_column_to_exist": gxe.ExpectColumnToExist,
        "expect_column_values_to_be_numeric": ExpectColumnValuesToBeNumeric,
        "expect_column_values_to_be_integral": ExpectColumnValuesToBeIntegral,
        "expect_column_values_to_be_of_type": gxe.ExpectColumnValuesToBeOfType,
        "expect_column_values_to_be_between": gxe.ExpectColumnValuesToBeBetween,
        "expect_column_values_to_not_be_null": gxe.ExpectColumnValuesToNotBeNull,
        "expect_column_values_to_be_in_set": gxe.ExpectColumnValuesToBeInSet,
        "expect_column_distinct_values_to_contain_set": gxe.ExpectColumnDistinctValuesToContainSet,
        "expect_column_unique_value_count_to_be_between": gxe.ExpectColumnUniqueValueCountToBeBetween,
    }
