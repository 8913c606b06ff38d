"""The model bundle (steps/_model/bundle.py): nothing in a bundle is used before every hash is checked, bundle.json's
fields every reader relies on are checked once in Bundle.open, the model loads only when asked for, and the
training fingerprint identifies a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from steps import train
from steps._core.data import generate
from steps._core.documents import SourceRecord
from steps._core.policy import load_policy
from steps._model.bundle import (
    MANIFEST,
    Bundle,
    BundleError,
    fingerprint,
    read_manifest,
    sha256_file,
    verify,
    write_manifest,
)
from steps._model.features import model_input
from steps._model.skops import ModelError
from steps._quality import validated
from tests.support.paths import POLICY

TRAINED_FILES = ["model.skops", "model.trees.json", "profile.json", "reference_ecdf.npz"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle train wrote from 3,000 generated rows with the reference policy (a few seconds)."""
    folder = tmp_path_factory.mktemp("trained")
    policy = load_policy(POLICY)
    frame = generate(3000, seed=3)
    source = SourceRecord(uri="generate:3000", sha256="0" * 64, rows=len(frame), format="parquet")
    validated.write(folder / "data", frame, policy.data, source)
    train.train(folder / "data", policy, git_commit="abc").write(folder / "bundle", folder / "holdout.parquet")
    return folder / "bundle"


@pytest.fixture
def bundle(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained bundle, free to tamper with."""
    return Path(shutil.copytree(trained, tmp_path / "bundle"))


def edit_manifest(folder: Path, **changes: Any) -> None:
    """Change bundle.json's fields (a value of ... removes the field); the files' hashes stay valid."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for key, value in changes.items():
        if value is ...:
            manifest.pop(key)
        else:
            manifest[key] = value
    (folder / MANIFEST).write_text(json.dumps(manifest))


# --- opening a bundle --------------------------------------------------------------------------------------------


def test_a_trained_bundle_opens_with_its_contract_threshold_and_files(bundle: Path) -> None:
    opened = Bundle.open(bundle)
    assert opened.model == "fraud-detection"
    assert [f.name for f in opened.features] == load_policy(POLICY).data.feature_names
    assert opened.threshold == 0.5
    assert sorted(opened.files) == TRAINED_FILES
    assert opened.files["model.skops"] == sha256_file(bundle / "model.skops")
    # Never registered: no version, and the bundle is called by its folder.
    assert (opened.version, opened.label) == (None, str(bundle))


def test_a_registered_bundle_is_labelled_by_its_version(bundle: Path) -> None:
    edit_manifest(bundle, version=7)
    opened = Bundle.open(bundle)
    assert (opened.version, opened.label) == (7, "v7")


@pytest.mark.parametrize("name", TRAINED_FILES)
def test_a_tampered_file_is_refused_naming_it(bundle: Path, name: str) -> None:
    with open(bundle / name, "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(BundleError, match=rf"^{bundle / name}: sha256 [0-9a-f]{{12}}… does not match bundle.json"):
        Bundle.open(bundle)


def test_a_listed_file_that_is_missing_is_refused_naming_it(bundle: Path) -> None:
    (bundle / "profile.json").unlink()
    with pytest.raises(BundleError, match=rf"^{bundle / 'profile.json'}: listed in bundle.json but missing$"):
        Bundle.open(bundle)


@pytest.mark.parametrize("name", ["../model.skops", ".hidden", "sub/model.skops"])
def test_a_listed_name_that_is_not_a_plain_file_name_is_refused(bundle: Path, name: str) -> None:
    files = json.loads((bundle / MANIFEST).read_text())["files"]
    edit_manifest(bundle, files={**files, name: "0" * 64})
    with pytest.raises(BundleError, match=rf"file name {name!r} is not a plain file name"):
        Bundle.open(bundle)


def test_a_folder_without_bundle_json_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=rf"^{tmp_path / MANIFEST}: missing: not a model bundle$"):
        Bundle.open(tmp_path)


def test_a_path_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"x")
    with pytest.raises(BundleError, match=r": not a folder$"):
        Bundle.open(tmp_path / "model.skops")
    with pytest.raises(BundleError, match=r": not a folder$"):
        Bundle.open(tmp_path / "absent")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "has no 'files' table of hashes"),
    ('{"files": ["model.skops"]}', "has no 'files' table of hashes"),
], ids=["not-json", "not-an-object", "files-not-a-table"])
def test_an_unreadable_manifest_is_refused_saying_why(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(BundleError, match=rf"^{tmp_path / MANIFEST}: {message}"):
        Bundle.open(tmp_path)


@pytest.mark.parametrize("model", [..., "", None, 3], ids=["absent", "empty", "null", "number"])
def test_a_bundle_without_a_model_name_is_refused(bundle: Path, model: Any) -> None:
    edit_manifest(bundle, model=model)
    shown = repr(None if model is ... else model)
    with pytest.raises(BundleError, match=rf"^{bundle / MANIFEST}: 'model' must name the model, got {shown}$"):
        Bundle.open(bundle)


@pytest.mark.parametrize("contract", [..., None, {"target": "is_fraud"}, {"features": "amount"}],
                         ids=["absent", "null", "no-features", "features-not-a-list"])
def test_a_bundle_without_a_contract_is_refused(bundle: Path, contract: Any) -> None:
    edit_manifest(bundle, contract=contract)
    with pytest.raises(BundleError, match=rf"^{bundle / MANIFEST}: has no 'contract' with a 'features' list"):
        Bundle.open(bundle)


@pytest.mark.parametrize("threshold", [1.5, -0.1, "0.5", True, None], ids=str)
def test_a_threshold_outside_0_1_is_refused_naming_the_value(bundle: Path, threshold: Any) -> None:
    edit_manifest(bundle, threshold=threshold)
    with pytest.raises(BundleError) as caught:
        Bundle.open(bundle)
    assert str(caught.value) == f"{bundle / MANIFEST}: 'threshold' must be a number in [0, 1], got {threshold!r}"


@pytest.mark.parametrize("threshold", [0, 1, 0.25])
def test_a_threshold_at_or_inside_the_bounds_is_kept(bundle: Path, threshold: float) -> None:
    edit_manifest(bundle, threshold=threshold)
    assert Bundle.open(bundle).threshold == threshold


def test_a_malformed_contract_entry_fails_when_the_features_are_read_naming_the_manifest(bundle: Path) -> None:
    edit_manifest(bundle, contract={"target": "is_fraud", "features": [{"name": "amount"}]})
    opened = Bundle.open(bundle)
    with pytest.raises(BundleError, match=rf"^{bundle / MANIFEST}: contract.features: malformed .*'type'"):
        _ = opened.features


# --- hashing once ------------------------------------------------------------------------------------------------


def test_a_verified_manifest_skips_hashing_again(bundle: Path) -> None:
    manifest = verify(bundle)
    with open(bundle / "model.skops", "ab") as fh:
        fh.write(b"changed after verification")
    # Passed the manifest a verification just returned, open does not hash again: the change goes unseen ...
    assert Bundle.open(bundle, verified=manifest).files == manifest["files"]
    # ... which it does see when it hashes itself.
    with pytest.raises(BundleError, match=r"model.skops: sha256 .* does not match"):
        Bundle.open(bundle)


def test_a_verified_manifest_still_has_its_fields_checked(bundle: Path) -> None:
    manifest = verify(bundle)
    manifest["threshold"] = 2.0
    with pytest.raises(BundleError, match=r"'threshold' must be a number in \[0, 1\], got 2.0"):
        Bundle.open(bundle, verified=manifest)


# --- the model, loaded lazily ------------------------------------------------------------------------------------


def test_the_pipeline_loads_on_first_use_and_scores(bundle: Path) -> None:
    opened = Bundle.open(bundle)
    assert "pipeline" not in vars(opened)  # nothing deserialised by open
    rows = model_input(generate(5, seed=11), opened.features)
    scores = opened.pipeline.predict_proba(rows)[:, 1]
    assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
    assert opened.pipeline is opened.pipeline  # loaded once


def test_an_unreadable_model_file_fails_only_when_the_pipeline_is_asked_for(bundle: Path) -> None:
    (bundle / "model.skops").write_bytes(b"not a zip file")
    manifest = json.loads((bundle / MANIFEST).read_text())
    write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format_version")})
    opened = Bundle.open(bundle)  # the hashes match: the bundle is intact, the model file is bad
    assert opened.model == "fraud-detection" and opened.read_json("profile.json") is not None
    with pytest.raises(ModelError, match=r"model.skops"):
        _ = opened.pipeline


# --- the bundle's JSON files -------------------------------------------------------------------------------------


def test_read_json_returns_a_listed_json_file(bundle: Path) -> None:
    assert Bundle.open(bundle).read_json("profile.json") == json.loads((bundle / "profile.json").read_text())


def test_read_json_of_a_file_the_bundle_does_not_list_is_none(bundle: Path) -> None:
    (bundle / "extra.json").write_text("{}")  # present, but not part of the verified bundle
    opened = Bundle.open(bundle)
    assert opened.read_json("missing.json") is None
    assert opened.read_json("extra.json") is None


def test_read_json_of_a_listed_file_that_is_not_json_names_it(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text("{broken")
    write_manifest(tmp_path, {"model": "m", "contract": {"features": []}})
    with pytest.raises(BundleError, match=rf"^{tmp_path / 'notes.json'}: not readable JSON"):
        Bundle.open(tmp_path).read_json("notes.json")


# --- writing and verifying a manifest ---------------------------------------------------------------------------


def test_write_manifest_then_verify_round_trips(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"model bytes")
    (tmp_path / "profile.json").write_text('{"features": []}')
    (tmp_path / ".model.skops.123.tmp").write_bytes(b"a writer's temporary file")
    written = write_manifest(tmp_path, {"model": "m", "threshold": 0.4})
    assert written == {
        "format_version": 1, "model": "m", "threshold": 0.4,
        "files": {"model.skops": sha256_file(tmp_path / "model.skops"),
                  "profile.json": sha256_file(tmp_path / "profile.json")},
    }
    assert verify(tmp_path) == written == read_manifest(tmp_path)
    # Rewriting hashes the files again, never bundle.json itself.
    (tmp_path / "model.skops").write_bytes(b"retrained")
    assert MANIFEST not in write_manifest(tmp_path, {"model": "m"})["files"]
    assert verify(tmp_path)["files"]["model.skops"] == sha256_file(tmp_path / "model.skops")


def test_sha256_file_is_the_files_sha256(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- the training fingerprint -------------------------------------------------------------------------------------

BASE: dict[str, Any] = {"data_sha256": "d" * 64, "params": {"max_iter": 150, "learning_rate": 0.1}, "seed": 42,
                        "git_commit": "abc123", "policy_sha256": "p" * 64}


def test_the_fingerprint_is_stable_and_ignores_the_order_of_params() -> None:
    first = fingerprint(**BASE)
    assert fingerprint(**BASE) == first
    assert fingerprint(**{**BASE, "params": {"learning_rate": 0.1, "max_iter": 150}}) == first
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(("field", "value"), [
    ("data_sha256", "e" * 64),
    ("params", {"max_iter": 151, "learning_rate": 0.1}),
    ("seed", 43),
    ("git_commit", "abc124"),
    ("policy_sha256", "q" * 64),
])
def test_the_fingerprint_changes_with_each_input(field: str, value: Any) -> None:
    assert fingerprint(**{**BASE, field: value}) != fingerprint(**BASE)
