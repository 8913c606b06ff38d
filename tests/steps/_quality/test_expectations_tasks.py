"""The target checked by the model's task (steps/_quality/expectations.py), on the public tables with the policies
`mlops init` writes for them: a multiclass target's values among data.classes, each present; a regression target's
numbers within data.target_min / target_max, none missing. Each failure names the column, the rule and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import init
from steps._core.policy import load_policy
from steps._quality.expectations import target_checks
from tests.support.validation import Run, failed_pairs, run_validate

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def penguins_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("penguins") / "penguins.yaml"
    init.init(str(DATA / "penguins.csv"), "species", "penguins", out)
    return out


@pytest.fixture(scope="module")
def bikeshare_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bikeshare") / "bikeshare.yaml"
    init.init(str(DATA / "bikeshare.csv"), "bikers", "bikeshare", out)
    return out


def validate(frame: pd.DataFrame, policy: Path, work: Path, name: str = "data.csv") -> Run:
    path = work / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return run_validate(path, policy, work)


def target_failures(run: Run, target: str) -> set[str]:
    return {e for c, e in failed_pairs(run) if c == target}


# --- multiclass ------------------------------------------------------------------------------------------------

def test_each_class_of_the_policy_passes(penguins_policy: Path, tmp_path: Path) -> None:
    run = run_validate(DATA / "penguins.csv", penguins_policy, tmp_path)
    assert run.code == 0, run.err
    species = [r for r in run.report["results"] if r["column"] == "species"]
    assert [r["expectation"] for r in species] == [
        "expect_column_to_exist", "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set"]
    rows = pd.read_parquet(run.dir / "data.parquet")
    assert sorted(rows["species"].unique()) == ["Adelie", "Chinstrap", "Gentoo"]


def test_an_unknown_a_missing_and_an_absent_class_are_named(penguins_policy: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(DATA / "penguins.csv")
    frame = frame[frame["species"] != "Chinstrap"].reset_index(drop=True)
    frame.loc[4, "species"] = "Emperor"
    frame.loc[7, "species"] = None
    run = validate(frame, penguins_policy, tmp_path)
    assert run.code == 1
    assert target_failures(run, "species") == {"expect_column_values_to_be_in_set",
                                               "expect_column_values_to_not_be_null",
                                               "expect_column_distinct_values_to_contain_set"}
    assert (f"{{'Adelie', 'Chinstrap', 'Gentoo'}}: 1 of {len(frame)} rows not in the set, e.g. 'Emperor'"
            in run.line("species", "expect_column_values_to_be_in_set"))
    assert f"1 of {len(frame)} rows null, e.g. row 7" in run.line("species", "expect_column_values_to_not_be_null")
    assert "no row has 'Chinstrap'" in run.line("species", "expect_column_distinct_values_to_contain_set")
    assert not (run.dir / "data.parquet").exists()


def test_without_classes_a_multiclass_target_needs_three_values(penguins_policy: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(penguins_policy.read_text())
    del document["data"]["classes"]
    policy = tmp_path / "no-classes.yaml"
    policy.write_text(yaml.safe_dump(document, sort_keys=False))
    assert load_policy(policy).data.classes is None
    frame = pd.read_csv(DATA / "penguins.csv")
    assert run_validate(DATA / "penguins.csv", policy, tmp_path).code == 0
    run = validate(frame[frame["species"] != "Gentoo"], policy, tmp_path)
    assert target_failures(run, "species") == {"expect_column_unique_value_count_to_be_between"}
    assert "[3, inf]: observed 2" in run.line("species", "expect_column_unique_value_count_to_be_between")


def test_whole_number_classes_compare_by_key_whatever_the_file_stored(tmp_path: Path) -> None:
    """A CSV with a hole reads codes as floats (2.0); Parquet may store them as text ("2"): both are the class 2."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "grade": [1, 2, 3] * 100})
    (tmp_path / "g.csv").write_text(frame.to_csv(index=False))
    policy = tmp_path / "grade.yaml"
    init.init(str(tmp_path / "g.csv"), "grade", "grade", policy)
    assert load_policy(policy).data.classes == (1, 2, 3)
    for name, values in (("floats.parquet", frame["grade"].astype(float)),
                         ("texts.parquet", frame["grade"].astype(str))):
        run = validate(frame.assign(grade=values), policy, tmp_path, name)
        assert run.code == 0, run.err


# --- regression ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rentals() -> pd.DataFrame:
    return pd.read_csv(DATA / "bikeshare.csv").iloc[:2000]


def test_a_regression_target_is_numbers_within_the_policys_range(bikeshare_policy: Path, rentals: pd.DataFrame,
                                                                 tmp_path: Path) -> None:
    run = validate(rentals, bikeshare_policy, tmp_path)
    assert run.code == 0, run.err
    bikers = [(r["expectation"], r["kwargs"]) for r in run.report["results"] if r["column"] == "bikers"]
    assert bikers == [("expect_column_to_exist", {}), ("expect_column_values_to_not_be_null", {}),
                      ("expect_column_values_to_be_numeric", {}),
                      ("expect_column_values_to_be_between", {"min_value": 0, "max_value": 1400})]
    rows = pd.read_parquet(run.dir / "data.parquet")
    assert str(rows["bikers"].dtype) == "int64" and (rows["bikers"] == rentals["bikers"]).all()


def test_a_value_out_of_range_is_named_with_the_range(bikeshare_policy: Path, rentals: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    broken = rentals.copy()
    broken.loc[[3, 10], "bikers"] = [-5, 2000]
    run = validate(broken, bikeshare_policy, tmp_path)
    assert run.code == 1
    assert target_failures(run, "bikers") == {"expect_column_values_to_be_between"}
    line = run.line("bikers", "expect_column_values_to_be_between")
    assert "bikers: expect_column_values_to_be_between [0, 1400]: 2 of 2000 rows outside, e.g." in line
    assert "-5" in line and "2000" in line


def test_text_and_missing_values_in_a_regression_target_are_named(bikeshare_policy: Path, rentals: pd.DataFrame,
                                                                  tmp_path: Path) -> None:
    broken = rentals.astype({"bikers": object})
    broken.loc[9, "bikers"] = "lots"
    broken.loc[11, "bikers"] = None
    run = validate(broken, bikeshare_policy, tmp_path)
    assert target_failures(run, "bikers") == {"expect_column_values_to_be_numeric",
                                              "expect_column_values_to_not_be_null",
                                              "expect_column_values_to_be_between"}
    assert "1 of 2000 rows not numbers, e.g. 'lots'" in run.line("bikers", "expect_column_values_to_be_numeric")
    assert "1 of 2000 rows null, e.g. row 11" in run.line("bikers", "expect_column_values_to_not_be_null")
    assert "not evaluated" in run.line("bikers", "expect_column_values_to_be_between")


def test_numbers_stored_as_text_pass_and_are_written_as_numbers(bikeshare_policy: Path, rentals: pd.DataFrame,
                                                                tmp_path: Path) -> None:
    run = validate(rentals.assign(bikers=rentals["bikers"].astype(str)), bikeshare_policy, tmp_path,
                   "texts.parquet")
    assert run.code == 0, run.err
    rows = pd.read_parquet(run.dir / "data.parquet")
    assert str(rows["bikers"].dtype) == "int64" and (rows["bikers"] == rentals["bikers"]).all()


def test_without_a_range_a_regression_target_is_only_checked_for_numbers(bikeshare_policy: Path,
                                                                          tmp_path: Path) -> None:
    document = yaml.safe_load(bikeshare_policy.read_text())
    del document["data"]["target_min"], document["data"]["target_max"]
    policy = tmp_path / "unbounded.yaml"
    policy.write_text(yaml.safe_dump(document, sort_keys=False))
    assert [c.expectation for c in target_checks(load_policy(policy).data, "regression")] == [
        "expect_column_to_exist", "expect_column_values_to_not_be_null", "expect_column_values_to_be_numeric"]
