"""The compiled predictor (steps/_model/trees.py): HistGradientBoosting trees exported as data, compiled back into
Python at load, scoring exactly as the skops model does (missing values and unseen categories included). The gate's
parity check between the two is tests/steps/_model/test_parity.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steps import train
from steps._core.data import generate
from steps._core.policy import load_policy
from steps._model import bundle as _bundle
from steps._model import trees as _predictor
from tests.support.models import Trained
from tests.support.paths import POLICY, ROOT


@pytest.fixture(scope="module")
def compiled(trained: Trained) -> _predictor.CompiledPredictor:
    return _predictor.load(trained.bundle / _predictor.TREES_FILE)


def awkward_rows(n: int, seed: int) -> pd.DataFrame:
    """Generated rows with missing values in every column and unseen categories in every categorical one."""
    policy = load_policy(POLICY)
    frame = generate(n, seed=seed)[policy.data.feature_names].astype(object)
    rng = np.random.default_rng(seed)
    for f in policy.data.features:
        frame.loc[rng.random(n) < 0.08, f.name] = None
        if f.type == "categorical":
            frame.loc[rng.random(n) < 0.08, f.name] = "never-seen"
    return frame


def test_compiled_predictor_scores_exactly_as_the_skops_model(pipeline: Any,
                                                              compiled: _predictor.CompiledPredictor) -> None:
    frame = awkward_rows(3000, seed=5)
    expected = pipeline.predict_proba(frame)[:, 1]
    got = np.asarray(compiled.predict(pipeline[0].transform(frame).tolist()))
    assert got.shape == expected.shape
    # Same trees, same additions in the same order, the same logistic function: bit for bit.
    assert np.max(np.abs(got - expected)) == 0.0


def test_the_trees_file_is_part_of_the_hashed_bundle(trained: Trained) -> None:
    manifest = _bundle.verify(trained.bundle)
    assert _predictor.TREES_FILE in manifest["files"]
    summary = manifest["compiled_predictor"]
    assert summary["file"] == _predictor.TREES_FILE and summary["trees"] == 150  # max_iter in the policy
    assert manifest["files"][_predictor.TREES_FILE] == _bundle.sha256_file(trained.bundle / _predictor.TREES_FILE)


def test_the_compiled_predictor_loads_without_scikit_learn_or_numpy(trained: Trained) -> None:
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = sys.modules['numpy'] = sys.modules['pandas'] = None  # any import fails\n"
        "from steps._model import trees as _predictor\n"
        f"p = _predictor.load({str(trained.bundle / _predictor.TREES_FILE)!r})\n"
        "row = tuple(float('nan') for _ in p.features)\n"
        "print(p.predict([row])[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert 0.0 < float(done.stdout) < 1.0


def test_an_old_binary_file_without_a_task_loads_and_predicts_as_before(
        trained: Trained, pipeline: Any, compiled: _predictor.CompiledPredictor, tmp_path: Path) -> None:
    doc = json.loads((trained.bundle / _predictor.TREES_FILE).read_text())
    assert (doc["format_version"], doc["task"], doc["classes"], doc["link"]) == (2, "binary", 2, "logit")
    # The file as the trainer wrote it before issue 14: version 1, no task, a single baseline.
    old = {key: value for key, value in doc.items() if key not in ("task", "classes")}
    old.update(format_version=1, baseline=doc["baseline"][0])
    path = tmp_path / _predictor.TREES_FILE
    _predictor.save(old, path)
    loaded = _predictor.load(path, compiled.features, "binary", 2)
    assert loaded.task == "binary" and loaded.describe()["task"] == "binary" and loaded.format_version == 1
    frame = awkward_rows(500, seed=8)
    rows = pipeline[0].transform(frame).tolist()
    assert loaded.predict(rows) == compiled.predict(rows) == pipeline.predict_proba(frame)[:, 1].tolist()
    with pytest.raises(_predictor.TreesError, match="task: the trees predict binary, the bundle's contract says "
                                                    "regression"):
        _predictor.load(path, compiled.features, "regression")


def test_generated_source_holds_nothing_but_numbers_and_names(compiled: _predictor.CompiledPredictor) -> None:
    assert "'" not in compiled.source and '"' not in compiled.source
    assert "import" not in compiled.source and "__" not in compiled.source


def _small_doc() -> dict[str, Any]:
    """A two-feature model in version 1 (binary files before issue 14): a numeric split, then a categorical one
    (contract codes 0..2, code 2 unseen)."""
    return {
        "format": _predictor.FORMAT, "format_version": 1, "link": "logit", "baseline": -1.0,
        "features": ["amount", "channel"],
        "inputs": [{"column": 1, "codes": [0, 1]}, {"column": 0}],
        "trees": [{
            "feature": [1, 0, 0, 0, 0], "threshold": [10.0, 0.0, 0.0, 0.0, 0.0],
            "missing_left": [True, False, False, False, False], "left": [1, 3, 0, 0, 0], "right": [2, 4, 0, 0, 0],
            "leaf": [False, False, True, True, True], "value": [0.0, 0.0, 2.0, 1.0, -1.0],
            "left_codes": [None, [1], None, None, None],
        }],
    }


def test_small_document_routes_missing_and_unseen_values_as_scikit_learn_does() -> None:
    p = _predictor.compile_trees(_small_doc(), "small")
    nan = float("nan")

    def raw(amount: float, channel: float) -> float:
        score = p.predict([(amount, channel)])[0]
        return float(np.log(score / (1 - score)))

    assert raw(20.0, 0.0) == pytest.approx(-1.0 + 2.0)  # amount > 10: right leaf
    assert raw(5.0, 1.0) == pytest.approx(-1.0 + 1.0)  # amount <= 10, channel code 1 goes left
    assert raw(nan, 1.0) == pytest.approx(-1.0 + 1.0)  # missing amount goes left (missing_left)
    assert raw(5.0, 0.0) == pytest.approx(-1.0 - 1.0)  # code 0: right
    # missing and a code the model never saw (2) take the missing direction: right here
    assert raw(5.0, nan) == pytest.approx(-1.0 - 1.0)
    assert raw(5.0, 2.0) == pytest.approx(-1.0 - 1.0)


def _broken(change: str) -> dict[str, Any]:
    doc = _small_doc()
    tree = doc["trees"][0]
    if change == "code_in_a_value":
        tree["value"][2] = "__import__('os').system('touch /tmp/pwned')"
    elif change == "bool_as_index":
        tree["left"][0] = True
    elif change == "cycle":
        tree["left"][1] = 0
    elif change == "shared_child":
        tree["right"][1] = 2
    elif change == "nan_leaf":
        tree["value"][3] = float("nan")
    elif change == "unknown_key":
        doc["extra"] = 1
    elif change == "threshold_word":
        tree["threshold"][0] = "big"
    elif change == "ragged_lists":
        tree["value"].append(0.0)
    elif change == "input_out_of_range":
        tree["feature"][0] = 7
    elif change == "categorical_split_on_number":
        tree["left_codes"][0] = [1]
    elif change == "integer_leaf_beyond_a_float":
        tree["value"][2] = 10 ** 400
    elif change == "integer_threshold_beyond_a_float":
        tree["threshold"][0] = -(10 ** 400)
    elif change == "integer_baseline_beyond_a_float":
        doc["baseline"] = 10 ** 400
    return doc


@pytest.mark.parametrize(("change", "place"), [
    ("code_in_a_value", "trees[0].value[2]"), ("bool_as_index", "trees[0].left[0]"), ("cycle", "trees[0].left[1]"),
    ("shared_child", "trees[0].right[1]"), ("nan_leaf", "trees[0].value[3]"), ("unknown_key", "top level"),
    ("threshold_word", "trees[0].threshold[0]"), ("ragged_lists", "trees[0].value"),
    ("input_out_of_range", "trees[0].feature[0]"), ("categorical_split_on_number", "trees[0].left_codes[0]"),
    ("integer_leaf_beyond_a_float", "trees[0].value[2]"), ("integer_threshold_beyond_a_float", "trees[0].threshold[0]"),
    ("integer_baseline_beyond_a_float", "baseline"),
], ids=lambda v: v if "[" not in v else "")
def test_malformed_trees_files_are_refused_naming_the_place(change: str, place: str, tmp_path: Path) -> None:
    path = tmp_path / _predictor.TREES_FILE
    path.write_text(json.dumps(_broken(change)))
    with pytest.raises(_predictor.TreesError) as caught:
        _predictor.load(path)
    assert str(caught.value).startswith(f"{path}: {place}")
    assert not Path("/tmp/pwned").exists()


def test_a_tree_deeper_than_the_limit_is_refused() -> None:
    depth = _predictor.MAX_DEPTH + 1
    n = 2 * depth + 1  # a chain: node i splits into a leaf and the next split
    tree: dict[str, list[Any]] = {key: [] for key in ("feature", "threshold", "missing_left", "left", "right",
                                                      "leaf", "value", "left_codes")}
    for i in range(n):
        leaf = i % 2 == 1 or i == n - 1
        tree["leaf"].append(leaf)
        tree["value"].append(0.1 if leaf else 0.0)
        tree["feature"].append(0)
        tree["threshold"].append(float(i))
        tree["missing_left"].append(False)
        tree["left"].append(0 if leaf else i + 1)
        tree["right"].append(0 if leaf else i + 2)
        tree["left_codes"].append(None)
    doc = {"format": _predictor.FORMAT, "format_version": 1, "link": "logit", "baseline": 0.0,
           "features": ["x"], "inputs": [{"column": 0}], "trees": [tree]}
    with pytest.raises(_predictor.TreesError, match="deeper than"):
        _predictor.compile_trees(doc, "deep")


def test_other_estimators_are_served_through_skops(trained: Trained) -> None:
    policy = load_policy(trained.policy)
    frame = generate(1500, seed=2)
    from steps._model import features as _features

    lr = _features.build_pipeline(policy.data.features, "logistic_regression", {"max_iter": 200}, seed=1)
    lr.fit(_features.model_input(frame, policy.data.features), _features.target_vector(frame["is_fraud"], 1))
    with pytest.raises(_predictor.ExportError, match="only a Pipeline of the contract encoder and one estimator"):
        _predictor.export_trees(lr)
    trees, summary = train._compiled_predictor(lr, "logistic_regression", "binary")
    assert trees is None and summary["file"] is None and "skops" in summary["reason"]
