"""Getting a model into the server (steps._serving.loader): the reference grammar with serve's own hint for an
empty version, a fetched version whose hashes are verified once (not again when it is loaded), the loaded
model's name, version, predictor and task (its classes and prediction bins), and the bundles it refuses."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from steps._model import bundle as _bundle
from steps._model import profile as _profile
from steps._serving.loader import ServeError, fetch, load_model, parse_model_reference
from steps._storage.registry import Registry, RegistryError
from tests.support import tasks
from tests.support.models import Trained

MODEL = "fraud-detection"


@pytest.fixture(scope="module")
def registry(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> str:
    location = str(tmp_path_factory.mktemp("registry"))
    Registry.open(location).register(MODEL, trained.bundle, passed=True, gate_report={"passed": True})
    return location


@pytest.mark.parametrize(("ref", "expected"), [(f"{MODEL}@3", (MODEL, 3)),
                                               (f"{MODEL}@production", (MODEL, "production"))])
def test_references_follow_the_registry_grammar(ref: str, expected: tuple[str, int | str]) -> None:
    assert parse_model_reference(ref) == expected


@pytest.mark.parametrize(("ref", "error", "message"), [
    (f"{MODEL}@", ServeError, "no version is pinned (an empty version: the pod-template annotation"),
    (f"{MODEL}@²", RegistryError, "expected a number (3) or one of"),
    (MODEL, RegistryError, "expected <model>@<version>"),
])
def test_bad_references_are_refused_naming_the_cause(ref: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_model_reference(ref)
    assert message in str(caught.value)


def _hashed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    seen: Counter[str] = Counter()
    original = _bundle.sha256_file

    def counting(path: Path) -> str:
        seen[Path(path).name] += 1
        return original(path)

    monkeypatch.setattr(_bundle, "sha256_file", counting)
    return seen


def test_a_fetched_version_is_loaded_without_hashing_it_again(registry: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dest, manifest = fetch(f"{MODEL}@latest", registry, tmp_path / "bundle")
    assert manifest == _bundle.verify(dest) and manifest["version"] == 1
    hashed = _hashed(monkeypatch)
    model = load_model(dest, verified=manifest)
    assert (model.name, model.version, model.predictor.kind) == (MODEL, "1", "compiled")
    assert not hashed
    load_model(dest)  # a folder nobody verified: every file is hashed, once
    assert hashed == Counter(dict.fromkeys(manifest["files"], 1))


def test_an_unknown_predictor_is_refused_naming_the_choices(trained: Trained) -> None:
    with pytest.raises(ServeError, match="PREDICTOR 'onnx': must be one of auto, compiled, skops"):
        load_model(trained.bundle, predictor="onnx")


def _rewritten(source: Path, folder: Path, contract: dict[str, Any] | None = None,
               profile: dict[str, Any] | None = None, drop_prediction: bool = False, drop_task: bool = False) -> Path:
    """A copy of a trained bundle with bundle.json's contract or profile.json changed, hashed again."""
    shutil.copytree(source, folder)
    manifest = json.loads((folder / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key, None)
    manifest["contract"].update(contract or {})
    if drop_task:
        manifest["contract"].pop("task", None)
    written = json.loads((folder / "profile.json").read_text())
    if drop_prediction:
        written.pop("prediction", None)
    written.update(profile or {})
    (folder / "profile.json").write_text(json.dumps(written))
    _bundle.write_manifest(folder, manifest)
    return folder


def test_a_bundle_from_before_tasks_is_served_as_binary_without_prediction_bins(trained: Trained,
                                                                                tmp_path: Path) -> None:
    model = load_model(_rewritten(trained.bundle, tmp_path / "old", drop_prediction=True, drop_task=True))
    assert (model.task, model.labels, model.prediction_bins) == ("binary", (0, 1), ())
    assert model.outputs.v1([0.9]) == [{"score": 0.9, "label": 1}]


def test_a_bundle_whose_trees_predict_another_task_is_refused(trained: Trained, tmp_path: Path) -> None:
    folder = _rewritten(trained.bundle, tmp_path / "mislabelled", {"task": "regression", "classes": None},
                        drop_prediction=True)
    with pytest.raises(ServeError, match="task: the trees predict binary, the bundle's contract says regression"):
        load_model(folder)


def test_a_malformed_prediction_profile_is_refused_naming_it(tmp_path: Path,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    trained = tasks.trained_task_bundle(tmp_path_factory, "multiclass")
    folder = _rewritten(trained.bundle, tmp_path / "bad", profile={"prediction": {"type": "categorical"}})
    with pytest.raises(ServeError, match="profile.json prediction.categories: a multiclass model's prediction "
                                         "profile must list its classes and other, got None"):
        load_model(folder)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("predictor", ["compiled", "skops"])
def test_a_bundle_of_each_task_loads_with_its_classes_and_prediction_bins(
        task: str, predictor: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    trained = tasks.trained_task_bundle(tmp_path_factory, task)
    model = load_model(trained.bundle, predictor=predictor)
    profile = json.loads((trained.bundle / "profile.json").read_text())
    assert (model.task, model.threshold, model.predictor.kind) == (task, None, predictor)
    assert model.labels == (tuple(tasks.CLASSES) if task == "multiclass" else ())
    assert list(model.prediction_bins) == _profile.bin_labels(profile["prediction"])
    assert model.description["task"] == task
