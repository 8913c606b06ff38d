"""Object storage for the model registry: a local folder or S3, with create-only writes and compare-and-swap.

Both backends give the same guarantees, which is all the registry relies on: `put_new` never overwrites,
`put_if_match` replaces an object only when nobody changed it since it was read (its etag), and readers see
a whole object or none of it. S3 does this with conditional writes (`If-None-Match: *`, `If-Match`); the
local folder with hard links and a lock file plus an atomic rename (a local disk only: not NFS).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import unquote, urlparse

from steps._core.errors import TransientError, UsageError
from steps._storage import s3 as _s3

DEFAULT_LOCATION = ".mlops/registry"
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class StoreError(UsageError):
    """The store refused an operation for a reason that retrying will not fix (no bucket, no access)."""


class NotFound(StoreError):
    """No object under that key."""


class AlreadyExists(StoreError):
    """A create-only write found an object already there."""


class Conflict(StoreError):
    """A compare-and-swap lost: the object changed (or vanished) since its etag was read."""


class ObjectStore(Protocol):
    location: str

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and etag. Raises NotFound."""
        ...

    def put_new(self, key: str, data: bytes) -> str:
        """Create the object; never overwrite. Returns its etag. Raises AlreadyExists."""
        ...

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the object only if its etag is still `etag`. Returns the new etag. Raises Conflict."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (a plain string prefix), sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object if present (for cleaning up; the registry never deletes a version)."""
        ...


def default_location() -> str:
    return os.environ.get("MLOPS_REGISTRY") or DEFAULT_LOCATION


def open_store(location: str | None = None) -> ObjectStore:
    """`s3://bucket[/prefix]`, `file:///path`, or a folder path; None means $MLOPS_REGISTRY or .mlops/registry."""
    location = location or default_location()
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"registry location {location!r}: an S3 location needs a bucket (s3://bucket/prefix)")
        return S3Store(parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.netloc + parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise UsageError(
            f"registry location {location!r}: unsupported scheme {parsed.scheme!r} (use a folder, file:// or s3://)"
        )
    return LocalStore(Path(location))


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise UsageError(f"object key {key!r}: must be slash-separated plain names (no '..', no leading dot)")
    return key


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """A folder. Etags are the sha256 of the content; hidden files (temp files, locks) are not objects."""

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            # An open file keeps the inode it opened: a concurrent rename cannot mix two versions.
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError) as err:
            raise NotFound(f"{path}: no such object") from err
        except IsADirectoryError as err:
            raise NotFound(f"{path}: is a folder, not an object") from err
        except OSError as err:
            raise StoreError(f"{path}: cannot read: {err}") from err
        return data, sha256_bytes(data)

    def put_new(self, key: str, data: bytes) -> str:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            # link() fails if the name exists, atomically: the create-only primitive of a POSIX folder.
            os.link(tmp, path)
        except FileExistsError as err:
            raise AlreadyExists(f"{path}: already exists (objects here are written once)") from err
        except OSError as err:
            raise StoreError(f"{path}: cannot create: {err}") from err
        finally:
            tmp.unlink(missing_ok=True)
        return sha256_bytes(data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        path = self._path(key)
        with self._locked(path):
            try:
                current = sha256_bytes(path.read_bytes())
            except FileNotFoundError as err:
                raise Conflict(f"{path}: vanished since it was read") from err
            if current != etag:
                raise Conflict(f"{path}: changed since it was read (etag {current[:12]}…, expected {etag[:12]}…)")
            tmp = self._write_temp(path, data)
            try:
                os.replace(tmp, path)
            except OSError as err:
                tmp.unlink(missing_ok=True)
                raise StoreError(f"{path}: cannot replace: {err}") from err
        return sha256_bytes(data)

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith("."):
                    key = (rel / name).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        """A complete, synced temp file beside `path`. Not steps._core.files.replacing: put_new publishes with
        link(), which never overwrites, and put_if_match renames only under the lock, after an fsync."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as err:
            raise StoreError(f"{path.parent}: cannot write into the registry folder: {err}") from err
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def _locked(self, path: Path) -> _FileLock:
        return _FileLock(path.with_name(f".{path.name}.lock"))


class _FileLock:
    """An exclusive fcntl lock held for a `with` block. The lock file stays: deleting it would race."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class S3Store:
    """A bucket and a key prefix, through boto3; any S3-compatible endpoint via AWS_ENDPOINT_URL."""

    # A concurrent conditional write may answer 409 ConditionalRequestConflict instead of 412: same meaning.
    _CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")

    def __init__(self, bucket: str, prefix: str = ""):
        self.bucket = bucket
        self.prefix = prefix
        self.location = f"s3://{bucket}/{prefix}".rstrip("/")
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _s3.client()
        return self._client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), str(response["ETag"])
        except Exception as err:
            if _s3.error_code(err) in ("NoSuchKey", "404"):
                raise NotFound(f"{self._uri(key)}: no such object") from err
            raise self._failure("read", key, err) from err

    def put_new(self, key: str, data: bytes) -> str:
        for attempt in range(5):
            try:
                response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return str(response["ETag"])
            except Exception as err:
                code = _s3.error_code(err)
                if code == "PreconditionFailed":
                    raise AlreadyExists(f"{self._uri(key)}: already exists (objects here are written once)") from err
                if code != "ConditionalRequestConflict":
                    raise self._failure("create", key, err) from err
                # Another create of the same key was in flight; asking again tells whether it won.
                time.sleep(0.05 * (attempt + 1))
        raise TransientError(f"{self._uri(key)}: create kept conflicting with concurrent writes")

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=etag)
            return str(response["ETag"])
        except Exception as err:
            if _s3.error_code(err) in self._CONFLICT_CODES:
                raise Conflict(f"{self._uri(key)}: changed since it was read (etag {etag})") from err
            raise self._failure("update", key, err) from err

    def list(self, prefix: str = "") -> list[str]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as err:
            raise self._failure("list", prefix, err) from err
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as err:
            raise self._failure("delete", key, err) from err

    def _failure(self, action: str, key: str, err: Exception) -> Exception:
        where = f"{self._uri(key)}: cannot {action}"
        if _s3.is_transient(err):
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            return TransientError(f"{where}: S3 at {endpoint} unreachable or failing: {err}")
        if type(err).__name__ == "NoCredentialsError":
            return StoreError(f"{where}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        code = _s3.error_code(err)
        if code == "NoSuchBucket":
            return StoreError(f"{where}: bucket {self.bucket!r} does not exist")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(f"{where}: access denied ({code}); check the S3 credentials")
        return StoreError(f"{where}: {err}")
