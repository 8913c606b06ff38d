"""workflows/demo/workspace.py: the demo empties only its own folder, and finishes a clean-up a Ctrl-C cut short;
its policy is the given one with only the demo profile's keys changed; each task has its reference policy and data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from steps._core.policy import load_policy
from steps._core.synthetic import generate_named
from workflows.demo import workspace
from workflows.demo.workspace import DEMO_PROFILE, DemoError, demo_policy, prepare_dir


def test_a_clean_up_cut_short_by_ctrl_c_is_finished_by_the_next_run(tmp_path: Path) -> None:
    folder = tmp_path / "mlops-demo"
    folder.mkdir()
    (folder / workspace.MARKER).write_text("")
    (folder / "registry").mkdir()
    half_deleted = tmp_path / ".mlops-demo.old-1a2b3c4d"  # what an interrupted previous clean-up leaves
    (half_deleted / "registry").mkdir(parents=True)
    workspace.prepare_dir(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlops-demo"]
    assert sorted(p.name for p in folder.iterdir()) == [workspace.MARKER]


def test_a_folder_that_is_not_a_demo_folder_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match="not empty and not a demo folder"):
        prepare_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_demo_policy_changes_only_the_profiles_keys(policy_file: Path, tmp_path: Path) -> None:
    policy = demo_policy(policy_file, tmp_path / "gates" / policy_file.name)
    original = yaml.safe_load(policy_file.read_text())
    written = yaml.safe_load(policy.path.read_text())
    assert policy.canary.analysis.interval == "3s" and policy.drift.min_samples == 4000
    for key, value, _ in DEMO_PROFILE:
        *parents, last = key.split(".")
        node = written
        for part in parents:
            node = node[part]
        assert node[last] == value, key
        workspace.set_key(original, key, value)
    assert written == original  # nothing else changed


@pytest.mark.parametrize(("task", "model"), [("binary", "fraud-detection"), ("regression", "demand-forecast"),
                                             ("multiclass", "ticket-triage")])
def test_each_task_has_a_packaged_reference_policy(task: str, model: str) -> None:
    path = workspace.builtin_policy(task)
    assert path.name == f"{model}.yaml"
    assert load_policy(path).model.task == task


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_the_demo_data_of_a_task_is_its_generator_s_with_its_known_drift(task: str, tmp_path: Path) -> None:
    source = workspace.builtin_policy(task)
    policy = demo_policy(source, tmp_path / "gates" / source.name)
    data = workspace.make_datasets(policy, tmp_path / "data", 2000, None, None)
    reference, current, shuffled = (pd.read_parquet(p) for p in (data.reference, data.current, data.shuffled))
    model = workspace.TASK_MODELS[task]
    pd.testing.assert_frame_equal(reference, generate_named(model, 2000, seed=1), check_dtype=False)
    pd.testing.assert_frame_equal(current, generate_named(model, 2000, seed=2, drift=0.8), check_dtype=False)
    target = policy.data.target
    assert sorted(shuffled[target]) == sorted(reference[target]) and not shuffled[target].equals(reference[target])
    assert shuffled.drop(columns=target).equals(reference.drop(columns=target))
