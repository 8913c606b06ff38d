"""The compiled predictor (steps/_model/trees.py) for multiclass and regression models: real scikit-learn fits with
categorical features, missing values and unseen categories predict the same through model.trees.json as through
scikit-learn; a loss whose link does not compile is refused naming it; version 2's task fields are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from steps._core.policy import Feature
from steps._model import trees as _predictor
from steps._model.contract import feature_to_dict
from steps._model.features import ContractEncoder, code_count
from tests.support.paths import ROOT

FEATURES = (
    Feature(name="amount", type="numeric", nullable=True),
    Feature(name="age", type="integer", nullable=True),
    Feature(name="channel", type="categorical", categories=("web", "app", "shop", "phone"), unknown="other",
            nullable=True),
    Feature(name="region", type="categorical", categories=tuple(f"r{i}" for i in range(12)), nullable=True),
)


def frame(n: int, seed: int, awkward: bool = False) -> pd.DataFrame:
    """Rows under FEATURES with missing values in every column; `awkward` adds values no contract lists."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({
        "amount": rng.lognormal(3.0, 1.0, n),
        "age": rng.integers(18, 90, n).astype(float),
        "channel": rng.choice(["web", "app", "shop", "phone"], n),
        "region": rng.choice([f"r{i}" for i in range(12)], n),
    }).astype(object)
    for name in rows.columns:
        rows.loc[rng.random(n) < 0.08, name] = None
        if awkward and name in ("channel", "region"):
            rows.loc[rng.random(n) < 0.08, name] = "never-seen"
    return rows


def signal(rows: pd.DataFrame, seed: int) -> np.ndarray:
    """A target-like number that every feature moves, noise included."""
    rng = np.random.default_rng(seed)
    amount = np.log(pd.to_numeric(rows["amount"]).fillna(20.0).to_numpy(dtype=float))
    age = pd.to_numeric(rows["age"]).fillna(50.0).to_numpy(dtype=float)
    channel = rows["channel"].map({"web": 0.0, "app": 1.0, "shop": -1.0, "phone": 0.5}).fillna(0.2).to_numpy(float)
    region = rows["region"].map(lambda r: int(r[1:]) / 6.0 if isinstance(r, str) else 1.0).to_numpy(dtype=float)
    return amount + age / 30.0 + channel + region + rng.normal(0.0, 0.5, len(rows))


def fit(model: Any, y: np.ndarray, seed: int = 3) -> Pipeline:
    """The Pipeline steps.train builds for hist_gradient_boosting (contract encoder, native categoricals)."""
    mask = [code_count(f) > 0 for f in FEATURES]
    model.set_params(categorical_features=mask, random_state=0)
    pipeline = Pipeline([("contract", ContractEncoder([feature_to_dict(f) for f in FEATURES])), ("model", model)])
    return pipeline.fit(frame(len(y), seed), y)


def classes_of(n: int, k: int, seed: int = 3) -> np.ndarray:
    """Codes 0..k-1 from the signal's quantiles (as steps._model.task.encode_target gives them)."""
    z = signal(frame(n, seed), seed)
    codes: np.ndarray = np.digitize(z, np.quantile(z, np.linspace(0, 1, k + 1)[1:-1]))
    return codes


def compiled_and_expected(pipeline: Pipeline, rows: pd.DataFrame) -> tuple[_predictor.CompiledPredictor,
                                                                           np.ndarray, np.ndarray]:
    doc = json.loads(json.dumps(_predictor.export_trees(pipeline)))  # through JSON, as the file is read
    compiled = _predictor.compile_trees(doc, "test")
    got = np.asarray(compiled.predict(pipeline[0].transform(rows).tolist()), dtype=np.float64)
    model = pipeline[-1]
    if isinstance(model, HistGradientBoostingRegressor):
        return compiled, got, pipeline.predict(rows)
    return compiled, got, pipeline.predict_proba(rows)


@pytest.mark.parametrize("k", [3, 5], ids=["3-classes", "5-classes"])
def test_multiclass_trees_predict_every_probability_as_scikit_learn(k: int) -> None:
    pipeline = fit(HistGradientBoostingClassifier(max_iter=40), classes_of(3000, k))
    rows = frame(2000, seed=9, awkward=True)
    compiled, got, expected = compiled_and_expected(pipeline, rows)
    assert compiled.task == "multiclass" and compiled.classes == k and compiled.trees == 40 * k
    assert got.shape == expected.shape == (2000, k)
    # The same sums of the same leaves; only exp may differ by an ulp between libm and numpy.
    assert np.max(np.abs(got - expected)) <= 1e-12
    assert np.allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (np.argmax(got, axis=1) == np.argmax(expected, axis=1)).all()


def test_squared_error_regression_trees_predict_exactly_as_scikit_learn() -> None:
    y = signal(frame(3000, 3), 3) * 100.0
    pipeline = fit(HistGradientBoostingRegressor(max_iter=60), y)
    compiled, got, expected = compiled_and_expected(pipeline, frame(2000, seed=9, awkward=True))
    assert compiled.task == "regression" and compiled.link == "identity" and compiled.classes is None
    assert got.shape == expected.shape == (2000,)
    assert np.max(np.abs(got - expected)) == 0.0  # identity link: bit for bit


@pytest.mark.parametrize(("loss", "link"), [
    ("poisson", "log"), ("gamma", "log"), ("absolute_error", "identity"), ("quantile", "identity"),
])
def test_other_regression_losses_compile_by_their_link(loss: str, link: str) -> None:
    y = np.exp(signal(frame(3000, 3), 3) / 4.0)  # positive, for poisson and gamma
    params = {"quantile": 0.8} if loss == "quantile" else {}
    pipeline = fit(HistGradientBoostingRegressor(max_iter=30, loss=loss, **params), y)
    compiled, got, expected = compiled_and_expected(pipeline, frame(1000, seed=9, awkward=True))
    assert compiled.link == link
    assert np.max(np.abs(got - expected) / np.abs(expected)) <= 1e-12


def test_a_loss_whose_link_does_not_compile_is_refused_naming_the_loss() -> None:
    from sklearn._loss.loss import HalfBinomialLoss

    y = (signal(frame(1000, 3), 3) > 3.0).astype(float)
    pipeline = fit(HistGradientBoostingRegressor(max_iter=5, loss=HalfBinomialLoss()), y)
    with pytest.raises(_predictor.ExportError, match="loss 'HalfBinomialLoss': its link LogitLink does not compile"):
        _predictor.export_trees(pipeline)


def test_a_classifier_of_other_labels_than_the_class_codes_is_refused() -> None:
    labels = np.array(["low", "mid", "high"])[classes_of(1000, 3)]
    pipeline = fit(HistGradientBoostingClassifier(max_iter=5), labels)
    with pytest.raises(_predictor.ExportError, match="only a classifier of the class codes 0..k-1 exports"):
        _predictor.export_trees(pipeline)


def test_export_refuses_a_model_of_another_task_than_the_bundle_says() -> None:
    pipeline = fit(HistGradientBoostingRegressor(max_iter=5), signal(frame(500, 3), 3))
    with pytest.raises(_predictor.ExportError, match="the model's task is multiclass, but its estimator is a "
                                                     "regression HistGradientBoostingRegressor"):
        _predictor.export_trees(pipeline, task="multiclass")
    assert _predictor.export_trees(pipeline, task="regression")["task"] == "regression"


@pytest.fixture(scope="module")
def multiclass_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline = fit(HistGradientBoostingClassifier(max_iter=10), classes_of(1500, 4))
    path = tmp_path_factory.mktemp("multiclass") / _predictor.TREES_FILE
    _predictor.save(_predictor.export_trees(pipeline), path)
    return path


def test_the_file_records_its_task_and_loading_checks_it_against_the_bundle(multiclass_file: Path) -> None:
    doc = json.loads(multiclass_file.read_text())
    assert (doc["format_version"], doc["task"], doc["classes"], doc["link"]) == (2, "multiclass", 4, "softmax")
    assert len(doc["baseline"]) == 4 and len(doc["trees"]) == 40
    names = [f.name for f in FEATURES]
    loaded = _predictor.load(multiclass_file, names, "multiclass", 4)
    assert loaded.describe() | {"compile_seconds": 0} == {
        "predictor": "compiled", "task": "multiclass", "classes": 4, "link": "softmax", "trees": 40,
        "nodes": loaded.nodes, "compile_seconds": 0}
    with pytest.raises(_predictor.TreesError, match=r"task: the trees predict multiclass, the bundle's contract "
                                                    r"says binary"):
        _predictor.load(multiclass_file, names, "binary")
    with pytest.raises(_predictor.TreesError, match=r"classes: the trees predict 4 classes, the bundle's contract "
                                                    r"lists 3"):
        _predictor.load(multiclass_file, names, "multiclass", 3)


def test_a_multiclass_predictor_loads_without_scikit_learn_or_numpy(multiclass_file: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = sys.modules['numpy'] = sys.modules['pandas'] = None  # any import fails\n"
        "from steps._model import trees as _predictor\n"
        f"p = _predictor.load({str(multiclass_file)!r})\n"
        "row = tuple(float('nan') for _ in p.features)\n"
        "print(repr(p.predict([row])[0]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    probabilities = [float(p) for p in done.stdout.strip().strip("[]").split(",")]
    assert len(probabilities) == 4 and abs(sum(probabilities) - 1.0) < 1e-12


def _v2_doc() -> dict[str, Any]:
    """A 3-class model of one iteration: three one-split trees on x, one per class."""
    tree = {"feature": [0, 0, 0], "threshold": [1.0, 0.0, 0.0], "missing_left": [True, False, False],
            "left": [1, 0, 0], "right": [2, 0, 0], "leaf": [False, True, True], "value": [0.0, 1.0, -1.0],
            "left_codes": [None, None, None]}
    return {"format": _predictor.FORMAT, "format_version": 2, "task": "multiclass", "classes": 3, "link": "softmax",
            "baseline": [0.1, 0.2, 0.3], "features": ["x"], "inputs": [{"column": 0}],
            "trees": [json.loads(json.dumps(tree)) for _ in range(3)]}


def test_small_multiclass_document_adds_tree_t_to_class_t_mod_k() -> None:
    doc = _v2_doc()
    doc["trees"][1]["value"] = [0.0, 2.0, -2.0]  # class 1's tree
    p = _predictor.compile_trees(doc, "small")
    raw = np.array([0.1 + 1.0, 0.2 + 2.0, 0.3 + 1.0])  # x = 0 goes left in every tree
    assert p.predict([(0.0,)])[0] == pytest.approx(list(np.exp(raw) / np.exp(raw).sum()), abs=1e-15)


@pytest.mark.parametrize(("change", "place"), [
    ("task", "task"), ("classes_of_binary", "classes"), ("classes_of_regression", "classes"),
    ("classes_as_bool", "classes"), ("link_of_another_task", "link"), ("short_baseline", "baseline"),
    ("broken_iteration", "trees"), ("version_3", "format"), ("v1_keys_at_v2", "top level"),
])
def test_malformed_version_2_files_are_refused_naming_the_place(change: str, place: str, tmp_path: Path) -> None:
    doc = _v2_doc()
    if change == "task":
        doc["task"] = "ranking"
    elif change == "classes_of_binary":
        doc.update(task="binary", link="logit", classes=3)
    elif change == "classes_of_regression":
        doc.update(task="regression", link="identity", classes=1)
    elif change == "classes_as_bool":
        doc["classes"] = True
    elif change == "link_of_another_task":
        doc["link"] = "logit"
    elif change == "short_baseline":
        doc["baseline"] = [0.1, 0.2]
    elif change == "broken_iteration":
        doc["trees"].pop()
    elif change == "version_3":
        doc["format_version"] = 3
    elif change == "v1_keys_at_v2":
        del doc["task"], doc["classes"]
    path = tmp_path / _predictor.TREES_FILE
    path.write_text(json.dumps(doc))
    with pytest.raises(_predictor.TreesError) as caught:
        _predictor.load(path)
    assert str(caught.value).startswith(f"{path}: {place}: ")
