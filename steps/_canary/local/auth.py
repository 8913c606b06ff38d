"""The local deployment's control token: a bearer token each router makes when it starts, kept while it runs in a
file only its user can read (~/.mlops/deploy/<port>.token), and found there by its clients from the URL's port, as
a Jupyter server's token is found in its runtime file. A browser page or another user on the machine can reach the
port, but cannot read the file."""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
import urllib.parse
from contextlib import suppress
from pathlib import Path

from steps._core.errors import UsageError

TOKEN_FILE_ENV = "MLOPS_DEPLOY_TOKEN_FILE"  # a client's token file for any URL (a copy from another machine)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def token_path(port: int) -> Path:
    """Where the router listening on `port` keeps its token."""
    return Path.home() / ".mlops" / "deploy" / f"{port}.token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def publish(port: int, token: str) -> Path:
    """Write `token` to token_path(port), readable by this user only, replacing any file left there (by a router
    that did not stop cleanly) whole: a client reads the old token or the new one, never half of one."""
    path = token_path(port)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp's file is the user's alone from its creation (steps._core.files makes shared files, 0644).
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise UsageError(f"control token: cannot write {path.parent}: {err}") from err
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        os.replace(name, path)
    except BaseException as err:
        Path(name).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UsageError(f"control token: cannot write {path}: {err}") from err
        raise
    return path


def withdraw(path: Path, token: str) -> None:
    """Remove the token file if it still holds `token` (a router started on the port since keeps its own)."""
    with suppress(OSError, UsageError):
        if read_token(path) == token:
            path.unlink()


def read_token(path: Path) -> str | None:
    """The token in `path`; None when there is no such file."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"control token {path}: cannot read: {err}") from err
    if not token:
        raise UsageError(f"control token {path}: is empty")
    return token


def token_file_for(url: str) -> Path | None:
    """The token file for a deployment at `url`: $MLOPS_DEPLOY_TOKEN_FILE, else the file of the router on the URL's
    port when the URL is this machine's (a local token is never sent to another host), else none."""
    if os.environ.get(TOKEN_FILE_ENV):
        return Path(os.environ[TOKEN_FILE_ENV])
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        return None
    return token_path(port) if parts.hostname in _LOOPBACK else None


def authorized(values: list[str], token: str) -> bool:
    """Whether the request's Authorization header values are exactly one `Bearer <token>` (the scheme in any case,
    RFC 6750), compared in constant time."""
    if len(values) != 1:
        return False
    scheme, _, given = values[0].partition(" ")
    if scheme.lower() != "bearer" or not given.isascii():
        return False
    return hmac.compare_digest(given.encode(), token.encode())
