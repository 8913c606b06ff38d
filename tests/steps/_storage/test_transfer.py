"""A version's files on the store (steps/_storage/transfer.py): create-only upload into a free number, and a
download that refuses a stored manifest naming anything but plain files, before writing a byte here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from steps._core.errors import UsageError
from steps._model.bundle import BundleError, write_manifest
from steps._storage import transfer
from steps._storage.store import LocalStore

PASSED: Any = {"passed": True}  # a gate report as the registry accepts it: gate.json or a part of it


def key(version: int, name: str) -> str:
    return f"models/m/versions/{version}/{name}"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def bundle(tmp_path: Path, fingerprint: str) -> tuple[Path, Any]:
    folder = tmp_path / fingerprint
    folder.mkdir()
    (folder / "model.skops").write_bytes(fingerprint.encode() * 20)
    return folder, write_manifest(folder, {"model": "m", "fingerprint": fingerprint})


def test_upload_takes_the_next_number_past_one_another_registration_claimed(store: LocalStore, tmp_path: Path) -> None:
    store.put_new(key(1, "bundle.json"), b"someone else's claim")
    folder, manifest = bundle(tmp_path, "mine")
    version, stored = transfer.upload(store, key, folder, manifest, PASSED, taken=set()) or (0, b"")
    assert version == 2
    assert json.loads(stored)["version"] == 2 and json.loads(stored)["gate"] == {"passed": True}
    assert store.get(key(2, "model.skops"))[0] == (folder / "model.skops").read_bytes()
    assert store.get(key(1, "bundle.json"))[0] == b"someone else's claim"


def test_upload_fills_a_gap_in_the_index_first_and_reuses_its_own_earlier_attempt(
    store: LocalStore, tmp_path: Path
) -> None:
    folder, manifest = bundle(tmp_path, "mine")
    first = transfer.upload(store, key, folder, manifest, PASSED, taken={2})
    assert first is not None and first[0] == 1
    assert transfer.upload(store, key, folder, manifest, PASSED, taken={2}) == first


@pytest.mark.parametrize("name", ["../escape", ".hidden", "bundle.json"])
def test_download_refuses_a_manifest_listing_a_name_that_is_not_a_plain_file(
    store: LocalStore, tmp_path: Path, name: str
) -> None:
    raw = transfer.dumps({"version": 1, "files": {name: "0" * 64}})
    with pytest.raises(BundleError, match=f"m v1: bundle.json lists '{name}', which is not a plain file name"):
        transfer.download(store, key, 1, raw, tmp_path / "out", where="m v1")
    assert not (tmp_path / "out").exists()


def test_download_refuses_a_manifest_of_another_version(store: LocalStore, tmp_path: Path) -> None:
    raw = transfer.dumps({"version": 2, "files": {}})
    with pytest.raises(BundleError, match="stored bundle.json says version 2"):
        transfer.download(store, key, 1, raw, tmp_path / "out", where="m v1")


def test_download_into_a_file_is_a_usage_error(store: LocalStore, tmp_path: Path) -> None:
    folder, manifest = bundle(tmp_path, "mine")
    version, stored = transfer.upload(store, key, folder, manifest, PASSED, taken=set()) or (0, b"")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        transfer.download(store, key, version, stored, tmp_path / "a-file", where="m v1")
    out = transfer.download(store, key, version, stored, tmp_path / "out", where="m v1")
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "model.skops"]
