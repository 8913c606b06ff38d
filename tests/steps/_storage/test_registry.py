"""The model registry (steps/_storage/registry.py), on a local folder and a real S3 API: versions, idempotent
registration, lifecycle, rollback, verified fetch, crashes, concurrency. Its command line (steps/registry.py) is
tests/steps/test_registry.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from steps._model.bundle import BundleError, write_manifest
from steps._storage.registry import IllegalTransition, Registry, RegistryError, VersionNotFound
from steps._storage.store import open_store
from tests.support.bundles import FAILED, MODEL, PASSED, make_bundle, register
from tests.support.paths import ROOT


def overwrite(location: str, key: str, data: bytes) -> None:
    """Change an object behind the registry's back, as an attacker or a broken disk would."""
    if location.startswith("s3://"):
        import boto3

        bucket, _, prefix = location[len("s3://") :].partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
    else:
        (Path(location) / key).write_bytes(data)


# ---- registration -------------------------------------------------------------------------------------------


def test_versions_are_numbered_by_the_registry_from_one(reg: Registry, bundles: Path) -> None:
    assert [register(reg, bundles, fp)["version"] for fp in ("a1", "b2", "c3")] == [1, 2, 3]
    assert [r["version"] for r in reg.versions(MODEL)] == [1, 2, 3]


def test_register_is_idempotent_by_fingerprint(reg: Registry, bundles: Path) -> None:
    bundle = make_bundle(bundles, "same")
    first = reg.register(MODEL, bundle, passed=True, gate_report=PASSED)
    files_before = reg.store.list(f"models/{MODEL}/")
    again = reg.register(MODEL, bundle, passed=True, gate_report=PASSED)
    assert again == first
    assert len(reg.versions(MODEL)) == 1
    assert reg.store.list(f"models/{MODEL}/") == files_before


def test_register_stores_the_bundle_with_version_and_gate_report(reg: Registry, bundles: Path) -> None:
    record = register(reg, bundles, "fp-1")
    stored = reg.manifest(MODEL, record["version"])
    assert stored["version"] == 1
    assert stored["gate"] == PASSED
    assert stored["fingerprint"] == "fp-1"
    assert set(stored["files"]) == {"model.skops", "profile.json"}
    assert record["status"] == "staged"
    assert record["metrics"] == PASSED["candidate"]
    assert record["git_commit"] == "0123abcd"


def test_failed_gates_register_as_rejected_with_the_failed_gates_as_reason(reg: Registry, bundles: Path) -> None:
    record = register(reg, bundles, "weak", FAILED)
    assert record["status"] == "rejected"
    assert record["history"][0]["why"] == "failed gates: pr_auc"
    assert reg.production(MODEL) is None


def test_register_refuses_a_bundle_of_another_model(reg: Registry, bundles: Path) -> None:
    bundle = make_bundle(bundles, "fp", model="other-model")
    with pytest.raises(RegistryError, match="field 'model' is 'other-model', but registering as 'churn-model'"):
        reg.register(MODEL, bundle, passed=True, gate_report=PASSED)
    assert reg.versions(MODEL) == []


def test_register_refuses_a_tampered_bundle(reg: Registry, bundles: Path) -> None:
    bundle = make_bundle(bundles, "fp")
    (bundle / "model.skops").write_bytes(b"swapped")
    with pytest.raises(RegistryError, match="model.skops: sha256 .* does not match"):
        reg.register(MODEL, bundle, passed=True, gate_report=PASSED)
    assert reg.store.list() == []


def test_register_refuses_a_bundle_without_fingerprint(reg: Registry, tmp_path: Path) -> None:
    bundle = tmp_path / "no-fp"
    bundle.mkdir()
    (bundle / "model.skops").write_bytes(b"m")
    write_manifest(bundle, {"model": MODEL})
    with pytest.raises(RegistryError, match="field 'fingerprint' must be a non-empty string, got None"):
        reg.register(MODEL, bundle, passed=True, gate_report=PASSED)


# ---- references ---------------------------------------------------------------------------------------------


def test_resolve_understands_numbers_and_named_references(reg: Registry, bundles: Path) -> None:
    for fp in ("a", "b", "c"):
        register(reg, bundles, fp)
    reg.promote(MODEL, 1)
    reg.promote(MODEL, 2, "canary")
    assert reg.resolve(MODEL, 3) == 3
    assert reg.resolve(MODEL, "2") == 2
    assert reg.resolve(MODEL, "production") == 1
    assert reg.production(MODEL) == 1
    assert reg.resolve(MODEL, "canary") == 2
    assert reg.resolve(MODEL, "latest") == 3


@pytest.mark.parametrize(
    ("ref", "message"),
    [(7, "no version 7 .*v1 staged"), ("production", "no production version"), ("v1", "expected a number")],
)
def test_resolve_names_what_is_missing(reg: Registry, bundles: Path, ref: Any, message: str) -> None:
    register(reg, bundles, "a")
    with pytest.raises(VersionNotFound, match=message):
        reg.resolve(MODEL, ref)


def test_an_unknown_model_has_no_versions(reg: Registry) -> None:
    assert reg.versions("nobody") == []
    assert reg.production("nobody") is None
    with pytest.raises(VersionNotFound, match="model 'nobody' has no versions in the registry at"):
        reg.resolve("nobody", "latest")


def test_registry_location_defaults_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: Path
) -> None:
    monkeypatch.setenv("MLOPS_REGISTRY", str(tmp_path / "env-registry"))
    register(Registry.open(None), bundles, "a")
    assert Registry.open(str(tmp_path / "env-registry")).resolve(MODEL, "latest") == 1


# ---- lifecycle ----------------------------------------------------------------------------------------------


def test_lifecycle_records_who_when_and_why(reg: Registry, bundles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ACTOR", "argo:train-abc12")
    register(reg, bundles, "a")
    reg.transition(MODEL, 1, "canary", reason="canary started")
    record = reg.promote(MODEL, 1, reason="analysis passed", details={"steps": 4})
    assert record["status"] == "production"
    history = record["history"]
    assert [(h["from"], h["to"]) for h in history] == [(None, "staged"), ("staged", "canary"), ("canary", "production")]
    assert {h["by"] for h in history} == {"argo:train-abc12"}
    assert [h["why"] for h in history[1:]] == ["canary started", "analysis passed"]
    assert history[2]["details"] == {"steps": 4}
    assert all(h["at"].endswith("+00:00") for h in history)


def test_promoting_to_production_archives_the_previous_one(reg: Registry, bundles: Path) -> None:
    register(reg, bundles, "a")
    register(reg, bundles, "b")
    reg.promote(MODEL, 1)
    reg.promote(MODEL, 2, actor="alice")
    old = reg.get(MODEL, 1)
    assert old["status"] == "archived"
    assert old["history"][-1] == {**old["history"][-1], "from": "production", "by": "alice", "why": "replaced by v2"}
    assert [r["status"] for r in reg.versions(MODEL)] == ["archived", "production"]


def test_a_new_canary_supersedes_the_previous_canary(reg: Registry, bundles: Path) -> None:
    register(reg, bundles, "a")
    register(reg, bundles, "b")
    reg.promote(MODEL, 1, "canary")
    reg.promote(MODEL, 2, "canary")
    assert reg.get(MODEL, 1)["status"] == "rejected"
    assert reg.get(MODEL, 1)["history"][-1]["why"] == "superseded by canary v2"
    assert reg.canary(MODEL) == 2


def test_promoting_to_the_current_status_changes_nothing(reg: Registry, bundles: Path) -> None:
    register(reg, bundles, "a")
    first = reg.promote(MODEL, 1)
    assert reg.promote(MODEL, 1) == first


@pytest.mark.parametrize(
    ("setup", "version", "to", "message"),
    [
        ([], 1, "archived", "churn-model v1: cannot move from staged to archived"),
        ([("reject", 1)], 1, "production", "churn-model v1: cannot move from rejected to production"),
        ([("production", 1), ("production", 2)], 1, "canary", "churn-model v1: cannot move from archived to canary"),
        ([("production", 1)], 1, "canary", "churn-model v1: cannot move from production to canary"),
        ([], 1, "deleted", "status 'deleted': not one of"),
    ],
    ids=["staged-to-archived", "rejected-is-final", "archived-needs-rollback", "no-demotion", "unknown-status"],
)
def test_illegal_transitions_are_refused_with_a_clear_message(
    reg: Registry, bundles: Path, setup: list[tuple[str, int]], version: int, to: str, message: str
) -> None:
    register(reg, bundles, "a")
    register(reg, bundles, "b")
    for action, v in setup:
        reg.transition(MODEL, v, "rejected" if action == "reject" else action)
    before = reg.versions(MODEL)
    with pytest.raises(RegistryError, match=message):
        reg.transition(MODEL, version, to)
    assert reg.versions(MODEL) == before


def test_illegal_transition_is_its_own_error_type(reg: Registry, bundles: Path) -> None:
    register(reg, bundles, "a", FAILED)
    with pytest.raises(IllegalTransition, match="may move to: nothing"):
        reg.promote(MODEL, 1)


def test_rollback_restores_the_previous_production_step_by_step(reg: Registry, bundles: Path) -> None:
    for fp in ("a", "b", "c"):
        register(reg, bundles, fp)
    for version in (1, 2, 3):
        reg.promote(MODEL, version)
    moved = reg.rollback(MODEL, reason="p95 latency regression")
    assert (moved["archived"]["version"], moved["production"]["version"]) == (3, 2)
    assert moved["archived"]["history"][-1]["why"] == "p95 latency regression"
    assert reg.production(MODEL) == 2
    # A second rollback goes further back, not to the version just rolled away from.
    assert reg.rollback(MODEL)["production"]["version"] == 1
    with pytest.raises(RegistryError, match="no earlier production version to roll back to"):
        reg.rollback(MODEL)
    assert reg.production(MODEL) == 1


def test_rollback_without_production_is_refused(reg: Registry, bundles: Path) -> None:
    register(reg, bundles, "a")
    with pytest.raises(VersionNotFound, match="no production version"):
        reg.rollback(MODEL)


# ---- fetch --------------------------------------------------------------------------------------------------


def test_fetch_downloads_a_verified_copy(reg: Registry, bundles: Path, tmp_path: Path) -> None:
    register(reg, bundles, "a")
    reg.promote(MODEL, 1)
    dest = reg.fetch(MODEL, "production", tmp_path / "out" / "model")
    assert (dest / "model.skops").read_bytes() == (bundles / "bundle-a" / "model.skops").read_bytes()
    assert json.loads((dest / "bundle.json").read_text())["version"] == 1
    # Into an existing (e.g. mounted) folder: filled in, no temporary folder left behind.
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    reg.fetch(MODEL, 1, mounted)
    assert sorted(p.name for p in mounted.iterdir()) == ["bundle.json", "model.skops", "profile.json"]


def test_fetch_detects_a_tampered_file(reg: Registry, location: str, bundles: Path, tmp_path: Path) -> None:
    register(reg, bundles, "a")
    overwrite(location, f"models/{MODEL}/versions/1/model.skops", b"malicious pickle")
    with pytest.raises(BundleError, match="churn-model v1 in .*model.skops: sha256 .* does not match"):
        reg.fetch(MODEL, 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fetch_detects_a_tampered_manifest(reg: Registry, location: str, bundles: Path, tmp_path: Path) -> None:
    register(reg, bundles, "a")
    key = f"models/{MODEL}/versions/1/bundle.json"
    manifest = json.loads(reg.store.get(key)[0])
    manifest["files"]["model.skops"] = "0" * 64
    overwrite(location, key, json.dumps(manifest).encode())
    with pytest.raises(BundleError, match="does not match the registry index"):
        reg.fetch(MODEL, 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- state records ------------------------------------------------------------------------------------------


def test_state_records_change_only_by_compare_and_swap(reg: Registry) -> None:
    assert reg.read_state(MODEL, "drift-cooldown") == (None, None)
    assert reg.cas_state(MODEL, "drift-cooldown", {"until": "t1"}, None)
    assert not reg.cas_state(MODEL, "drift-cooldown", {"until": "t0"}, None)  # someone created it already
    value, etag = reg.read_state(MODEL, "drift-cooldown")
    assert value == {"until": "t1"}
    assert reg.cas_state(MODEL, "drift-cooldown", {"until": "t2"}, etag)
    assert not reg.cas_state(MODEL, "drift-cooldown", {"until": "t3"}, etag)  # stale etag
    assert reg.read_state(MODEL, "drift-cooldown")[0] == {"until": "t2"}


# ---- crashes and concurrency --------------------------------------------------------------------------------

_CRASH = """
import json, os, sys
from pathlib import Path
from steps._storage.registry import Registry

reg = Registry.open(sys.argv[1])
put_new, put_if_match = reg.store.put_new, reg.store.put_if_match

def crash_on_index(write):
    def wrapped(key, *args):
        if key.endswith("/index.json"):
            os._exit(137)  # dies like a killed pod: no cleanup, no exception handlers
        return write(key, *args)
    return wrapped

reg.store.put_new = crash_on_index(put_new)
reg.store.put_if_match = crash_on_index(put_if_match)
reg.register(sys.argv[2], Path(sys.argv[3]), passed=True, gate_report=json.loads(sys.argv[4]))
"""


def crash_while_registering(location: str, bundle: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", _CRASH, location, MODEL, str(bundle), json.dumps(PASSED)]
    assert subprocess.run(args, check=False, env=env, cwd=ROOT, timeout=60).returncode == 137


def test_a_crash_before_the_index_update_leaves_no_version_and_a_rerun_completes(
    reg: Registry, location: str, bundles: Path
) -> None:
    register(reg, bundles, "first")
    crashed = make_bundle(bundles, "crashed")
    crash_while_registering(location, crashed)
    assert [r["fingerprint"] for r in reg.versions(MODEL)] == ["first"]
    assert reg.store.list(f"models/{MODEL}/versions/2/")  # the files did land before the crash

    record = reg.register(MODEL, crashed, passed=True, gate_report=PASSED)
    assert record["version"] == 2  # the earlier attempt's files are reused, not skipped
    assert reg.register(MODEL, crashed, passed=True, gate_report=PASSED) == record
    assert [r["version"] for r in reg.versions(MODEL)] == [1, 2]
    assert not reg.store.list(f"models/{MODEL}/versions/3/")


def test_files_left_by_another_crashed_registration_are_never_overwritten(
    reg: Registry, location: str, bundles: Path, tmp_path: Path
) -> None:
    abandoned = make_bundle(bundles, "abandoned")
    crash_while_registering(location, abandoned)
    record = register(reg, bundles, "next")
    assert record["version"] == 2  # v1's files belong to the crashed attempt
    reg.fetch(MODEL, 2, tmp_path / "v2")  # verifies: nothing of v1 leaked into v2
    assert reg.register(MODEL, abandoned, passed=True, gate_report=PASSED)["version"] == 1
    assert [(r["version"], r["fingerprint"]) for r in reg.versions(MODEL)] == [(1, "abandoned"), (2, "next")]


def _register_and_promote(location: str, bundle: str, start: Any) -> None:
    """One of the concurrent writers: register, promote to production, bump a shared state counter."""
    start.wait()
    reg = Registry.open(location)
    record = reg.register(MODEL, Path(bundle), passed=True, gate_report=PASSED, actor=f"writer-{Path(bundle).name}")
    reg.promote(MODEL, record["version"], actor=f"writer-{Path(bundle).name}")
    while True:
        value, etag = reg.read_state(MODEL, "counter")
        if reg.cas_state(MODEL, "counter", {"count": (value or {"count": 0})["count"] + 1}, etag):
            return


@pytest.mark.slow
def test_concurrent_writers_lose_no_update_and_number_versions_contiguously(location: str, bundles: Path) -> None:
    writers = 8
    paths = [str(make_bundle(bundles, f"writer-{i}")) for i in range(writers)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    processes = [ctx.Process(target=_register_and_promote, args=(location, path, start)) for path in paths]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * writers

    reg = Registry.open(location)
    records = reg.versions(MODEL)
    assert [r["version"] for r in records] == list(range(1, writers + 1))
    assert sorted(r["fingerprint"] for r in records) == sorted(f"writer-{i}" for i in range(writers))
    assert sorted(r["status"] for r in records) == ["archived"] * (writers - 1) + ["production"]
    # Every update is there: registered (8), promoted (8), archived by the next promotion (7).
    moves = [(h["from"], h["to"]) for r in records for h in r["history"]]
    assert moves.count((None, "staged")) == writers
    assert moves.count(("staged", "production")) == writers
    assert moves.count(("production", "archived")) == writers - 1
    assert reg.read_state(MODEL, "counter")[0] == {"count": writers}
    for record in records:  # each version's files are its own bundle's
        assert reg.manifest(MODEL, record["version"])["fingerprint"] == record["fingerprint"]


def test_open_store_and_registry_agree_on_the_location(tmp_path: Path, bundles: Path) -> None:
    location = f"file://{tmp_path}/reg"
    register(Registry.open(location), bundles, "a")
    assert open_store(str(tmp_path / "reg")).list(f"models/{MODEL}/index.json") == [f"models/{MODEL}/index.json"]
