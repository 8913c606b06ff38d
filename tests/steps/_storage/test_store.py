"""The registry's object store: create-only writes and compare-and-swap, on a local folder and a real S3 API."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from steps._core.errors import TransientError, UsageError
from steps._storage.store import (
    AlreadyExists,
    Conflict,
    LocalStore,
    NotFound,
    ObjectStore,
    S3Store,
    StoreError,
    open_store,
)
from tests.support.processes import free_port


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return f"s3://{request.getfixturevalue('s3_bucket')}/some/prefix"


@pytest.fixture
def store(location: str) -> ObjectStore:
    return open_store(location)


def test_put_new_creates_and_get_returns_bytes_and_etag(store: ObjectStore) -> None:
    etag = store.put_new("models/m/a.json", b'{"a": 1}')
    data, read_etag = store.get("models/m/a.json")
    assert data == b'{"a": 1}'
    assert read_etag == etag


def test_put_new_refuses_to_overwrite(store: ObjectStore) -> None:
    store.put_new("models/m/a.json", b"first")
    with pytest.raises(AlreadyExists, match="already exists"):
        store.put_new("models/m/a.json", b"second")
    assert store.get("models/m/a.json")[0] == b"first"


def test_put_if_match_replaces_when_etag_is_current(store: ObjectStore) -> None:
    first = store.put_new("index.json", b"1")
    second = store.put_if_match("index.json", b"2", first)
    assert store.get("index.json") == (b"2", second)
    assert second != first


def test_put_if_match_refuses_a_stale_etag(store: ObjectStore) -> None:
    stale = store.put_new("index.json", b"1")
    store.put_if_match("index.json", b"2", stale)
    with pytest.raises(Conflict, match="changed since it was read"):
        store.put_if_match("index.json", b"3", stale)
    assert store.get("index.json")[0] == b"2"


def test_put_if_match_on_a_missing_object_is_a_conflict(store: ObjectStore) -> None:
    with pytest.raises(Conflict):
        store.put_if_match("index.json", b"1", "0" * 64)
    with pytest.raises(NotFound):
        store.get("index.json")


def test_get_of_a_missing_key_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFound, match="no such object"):
        store.get("models/nothing/index.json")


def test_list_returns_keys_under_prefix_without_temp_or_lock_files(store: ObjectStore) -> None:
    store.put_new("models/a/index.json", b"{}")
    etag = store.put_new("models/a/versions/1/bundle.json", b"{}")
    store.put_if_match("models/a/versions/1/bundle.json", b"{ }", etag)  # leaves a lock file on a folder
    store.put_new("models/b/index.json", b"{}")
    assert store.list("models/a/") == ["models/a/index.json", "models/a/versions/1/bundle.json"]
    assert len(store.list()) == 3


def test_delete_removes_and_tolerates_missing(store: ObjectStore) -> None:
    store.put_new("tmp/x", b"x")
    store.delete("tmp/x")
    store.delete("tmp/x")
    with pytest.raises(NotFound):
        store.get("tmp/x")
    store.put_new("tmp/x", b"again")  # create-only works again once removed


@pytest.mark.parametrize("key", ["../escape", "a/../b", ".hidden", "a//b", "/abs", "a/b/"])
def test_keys_that_could_escape_or_hide_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(UsageError, match="object key"):
        store.put_new(key, b"x")


def test_concurrent_compare_and_swap_loses_no_update(location: str) -> None:
    open_store(location).put_new("counter", b"0")

    def bump(times: int) -> None:
        own = open_store(location)  # one client per thread, as separate pods would have
        for _ in range(times):
            while True:
                data, etag = own.get("counter")
                try:
                    own.put_if_match("counter", str(int(data) + 1).encode(), etag)
                    break
                except Conflict:
                    continue  # lost the race: read again

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(bump, 5) for _ in range(4)]
        for future in futures:
            future.result()  # re-raises anything a thread raised
    assert open_store(location).get("counter")[0] == b"20"


def test_open_store_reads_the_location_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = open_store("s3://bucket-x/team/registry/")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket-x", "team/registry")
    local = open_store(f"file://{tmp_path}/reg")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "reg"
    assert open_store("relative/reg").root == Path("relative/reg")  # type: ignore[attr-defined]
    monkeypatch.setenv("MLOPS_REGISTRY", str(tmp_path / "from-env"))
    assert open_store(None).root == tmp_path / "from-env"  # type: ignore[attr-defined]
    monkeypatch.delenv("MLOPS_REGISTRY")
    assert open_store(None).root == Path(".mlops/registry")  # type: ignore[attr-defined]


def test_open_store_refuses_an_unknown_scheme() -> None:
    with pytest.raises(UsageError, match="unsupported scheme 'gs'"):
        open_store("gs://bucket/registry")


@pytest.mark.integration
def test_unreachable_s3_is_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MLOPS_S3_ATTEMPTS", "1")
    monkeypatch.setenv("MLOPS_S3_CONNECT_TIMEOUT", "1")
    with pytest.raises(TransientError, match=f"S3 at {endpoint} unreachable") as caught:
        open_store("s3://bucket-x/registry").get("models/m/index.json")
    assert caught.value.exit_code == 3


@pytest.mark.integration
def test_missing_bucket_is_a_permanent_error_naming_it(s3_env: str) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist") as caught:
        open_store("s3://no-such-bucket/registry").put_new("x", b"x")
    assert caught.value.exit_code == 2


def test_of_many_simultaneous_writes_with_the_same_etag_exactly_one_wins(store: ObjectStore) -> None:
    """What every compare-and-swap here rests on, on each store (and on the test S3 server, as on S3)."""
    etag = store.put_new("race.json", b"0")
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def write(n: int) -> None:
        barrier.wait()
        try:
            store.put_if_match("race.json", f"writer-{n}".encode(), etag)  # unlike the original: a new etag
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 11 + ["won"]
