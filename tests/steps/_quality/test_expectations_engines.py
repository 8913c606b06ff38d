"""The contract's expectations counted with numpy (steps/_quality/tally.py) give the outcomes Great Expectations gives
(steps/_quality/expectations.run_gx) on the same prepared frame, for every task and for valid, drifted and broken
data; data in a form the counts do not handle (text in a numeric column, an all-null column) goes to GX; and counting
in batches gives what counting the whole frame gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps._core.data import generate
from steps._core.policy import DataPolicy, load_policy
from steps._core.synthetic import generate_named
from steps._quality import expectations as _expectations
from steps._quality import tally as _tally
from tests.support.paths import ROOT


def _contract(name: str) -> tuple[DataPolicy, str]:
    path = ROOT / "gates" / ("fraud-detection.yaml" if name == "fraud-detection" else f"examples/{name}.yaml")
    policy = load_policy(path)
    return policy.data, policy.model.task


def _broken(frame: pd.DataFrame) -> pd.DataFrame:
    """Every breakage the counts handle: out of range, a missing column, fractions and infinity in an integer
    column, unknown categories, nulls (first 20 kept as examples), one class only."""
    df = frame.copy()
    df.loc[[3, 10], "amount"] = [-5.0, 250000.0]
    df = df.drop(columns=["hour"])
    df["txn_count_1h"] = df["txn_count_1h"].astype(float)
    df.loc[[12, 40, 41], "txn_count_1h"] = [2.5, 2.5, np.inf]
    df.loc[[5, 7, 9], "channel"] = ["carrier-pigeon", "zz", "carrier-pigeon"]
    df.loc[6, "merchant_category"] = "casino"
    df.loc[list(range(11, 60)), "region"] = None
    df.loc[list(range(11, 60, 2)), "amount"] = np.nan
    df["is_fraud"] = 0
    return df


CASES = {
    "valid": lambda: ("fraud-detection", generate(4000, seed=3)),
    "drifted": lambda: ("fraud-detection", generate(4000, seed=4, drift=0.8)),
    "broken": lambda: ("fraud-detection", _broken(generate(4000, seed=3))),
    "multiclass": lambda: ("ticket-triage", generate_named("ticket-triage", 3000, seed=2)),
    "multiclass-unknown-class": lambda: ("ticket-triage", generate_named("ticket-triage", 3000, seed=2).pipe(
        lambda f: f.assign(team=f["team"].where(f.index != 7, "Emperor")))),
    "regression": lambda: ("demand-forecast", generate_named("demand-forecast", 3000, seed=2)),
    "regression-negative-target": lambda: ("demand-forecast", generate_named("demand-forecast", 3000, seed=2).pipe(
        lambda f: f.assign(units_sold=-f["units_sold"]))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_counted_outcomes_are_great_expectations_outcomes(case: str) -> None:
    name, frame = CASES[case]()
    data, task = _contract(name)
    prepared = _expectations.prepare(frame, data, task)
    checks = _expectations.contract_checks(data, task)
    assert _tally.clean(prepared, checks)
    counted = [o.as_dict() for o in _expectations.run_checks(prepared, checks)]
    gx = [o.as_dict() for o in _expectations.run_gx(prepared, checks)]
    assert counted == gx
    assert all(o["success"] for o in counted) == (case in ("valid", "drifted", "multiclass", "regression"))


@pytest.mark.parametrize("case", ["valid", "broken", "multiclass-unknown-class", "regression"])
def test_counting_in_batches_gives_the_whole_frames_outcomes(case: str) -> None:
    name, frame = CASES[case]()
    data, task = _contract(name)
    prepared = _expectations.prepare(frame, data, task)
    checks = _expectations.contract_checks(data, task)
    tally = _tally.Tally(checks, prepared.columns)
    for start in range(0, len(prepared), 700):  # batches keep their rows' numbers in the whole frame
        tally.add(prepared.iloc[start:start + 700])
    assert tally.complete() and tally.rows == len(prepared)
    batched = [o.as_dict() for o in _expectations.outcomes(tally, tally.rows)]
    assert batched == [o.as_dict() for o in _expectations.run_checks(prepared, checks)]


def test_columns_the_counts_cannot_handle_go_to_great_expectations(tmp_path: Path) -> None:
    data, task = _contract("fraud-detection")
    checks = _expectations.contract_checks(data, task)
    text = generate(300, seed=1)
    text["utilization"] = text["utilization"].astype(object)
    text.loc[9, "utilization"] = "lots"
    prepared = _expectations.prepare(text, data, task)
    assert not _tally.clean(prepared, checks)
    [numeric] = [o for o in _expectations.run_checks(prepared, checks)
                 if (o.check.column, o.check.expectation) == ("utilization", "expect_column_values_to_be_numeric")]
    assert numeric.details == "1 of 300 rows not numbers, e.g. 'lots'"

    empty = generate(300, seed=1).assign(region=None)  # all null: GX reports the dtype it sees
    prepared = _expectations.prepare(empty, data, task)
    tally = _tally.Tally(checks, prepared.columns)
    tally.add(prepared)
    assert not tally.complete()
    assert [o.as_dict() for o in _expectations.run_checks(prepared, checks)] == [
        o.as_dict() for o in _expectations.run_gx(prepared, checks)]
