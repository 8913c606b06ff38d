"""Getting a model into the server (steps._serving.loader): the reference grammar with serve's own hint for an
empty version, a fetched version whose hashes are verified once (not again when it is loaded), and the
loaded model's name, version and predictor."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from steps._model import bundle as _bundle
from steps._serving.loader import ServeError, fetch, load_model, parse_model_reference
from steps._storage.registry import Registry, RegistryError
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
