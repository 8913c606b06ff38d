"""steps/_canary/local/auth.py: the control endpoint's bearer token. A router's token file is its user's alone and
replaced whole; a client finds it from a loopback URL's port (never sends a local token to another host), or where
$MLOPS_DEPLOY_TOKEN_FILE says; only `Authorization: Bearer <token>` is let through."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps._canary.local import auth
from steps._core.errors import UsageError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(auth.TOKEN_FILE_ENV, raising=False)
    return tmp_path


@pytest.mark.parametrize("url", ["http://127.0.0.1:8711", "http://localhost:8711/", "http://[::1]:8711"])
def test_a_loopback_url_finds_the_token_of_the_router_on_its_port(home: Path, url: str) -> None:
    assert auth.token_file_for(url) == home / ".mlops" / "deploy" / "8711.token"


def test_a_url_of_another_host_finds_no_local_token(home: Path) -> None:
    # A local router's token must never be sent to another machine that happens to use the same port.
    assert auth.token_file_for("http://10.1.2.3:8711") is None
    assert auth.token_file_for("http://deploy.example:8711") is None


def test_the_environment_names_the_token_file_for_any_host(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(auth.TOKEN_FILE_ENV, str(home / "copied.token"))
    assert auth.token_file_for("http://10.1.2.3:8711") == home / "copied.token"
    assert auth.token_file_for("http://127.0.0.1:8711") == home / "copied.token"


def test_a_published_token_is_readable_by_its_user_only_and_withdrawn_only_by_its_router(home: Path) -> None:
    path = auth.publish(8711, "first-token")
    assert path == home / ".mlops" / "deploy" / "8711.token"
    assert auth.read_token(path) == "first-token"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o077 == 0
    auth.publish(8711, "second-token")  # a router that took the port after one that crashed
    auth.withdraw(path, "first-token")
    assert auth.read_token(path) == "second-token", "a router must not remove the token of the one after it"
    auth.withdraw(path, "second-token")
    assert not path.exists() and auth.read_token(path) is None
    assert not [p for p in path.parent.iterdir()], "no temporary file left beside it"


def test_a_token_file_that_cannot_be_used_is_a_usage_error_naming_it(home: Path) -> None:
    empty = home / "empty.token"
    empty.write_text("\n")
    with pytest.raises(UsageError, match=f"{empty}: is empty"):
        auth.read_token(empty)
    with pytest.raises(UsageError, match=f"{home}: cannot read"):
        auth.read_token(home)


def test_a_token_that_cannot_be_written_is_refused_naming_where(home: Path) -> None:
    (home / ".mlops").write_text("a file where the folder would be")
    with pytest.raises(UsageError, match=f"control token: cannot write {home / '.mlops' / 'deploy'}"):
        auth.publish(8711, "token")


HEADERS = {
    "bearer": (["Bearer s3cret"], True),
    "scheme-any-case": (["bearer s3cret"], True),
    "missing": ([], False),
    "wrong": (["Bearer s3cre"], False),
    "longer": (["Bearer s3cret2"], False),
    "basic": (["Basic s3cret"], False),
    "no-scheme": (["s3cret"], False),
    "two-headers": (["Bearer s3cret", "Bearer s3cret"], False),
    "non-ascii": (["Bearer s3crét"], False),
}


@pytest.mark.parametrize(("values", "allowed"), HEADERS.values(), ids=HEADERS.keys())
def test_only_the_bearer_token_is_authorized(values: list[str], allowed: bool) -> None:
    assert auth.authorized(values, "s3cret") is allowed


def test_new_tokens_are_long_and_never_repeat() -> None:
    tokens = {auth.new_token() for _ in range(100)}
    assert len(tokens) == 100 and min(len(t) for t in tokens) >= 32
    assert all(t.isascii() and t.isprintable() and " " not in t for t in tokens)
