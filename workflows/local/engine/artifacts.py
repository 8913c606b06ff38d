"""The run's local artifact repository (a folder): output artifacts stored as Argo's executor stores them (a tar.gz
by default, or as is with `archive: {none: {}}`), and input artifacts placed at their container path before the
command starts (unpacked, `subPath`, `mode`), from the repository, from `raw.data`, or from S3 through the
project's object store (steps/_storage) (docs/local-runner.md, "Artifacts").

A tar.gz holds one entry, the file or folder under its own name; placing it extracts that one entry to the path,
as Argo's untar does (a file stays a file, a folder a folder).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workflows.local.engine.nodes import ArtifactRef
from workflows.local.engine.pods import InputArtifact


class ArtifactError(Exception):
    """An artifact cannot be saved or placed; the message names it and why."""


def archive_of(art: dict[str, Any]) -> str:
    """"tar" (Argo's default, also `archive: {tar: {...}}`) or "none"; zip is an output format Argo cannot read
    back as an input, and is refused."""
    archive = art.get("archive") or {}
    if "none" in archive:
        return "none"
    if set(archive) - {"tar"}:
        raise ArtifactError(f"artifact {art.get('name')!r}: archive {sorted(archive)} is not supported locally")
    return "tar"


def key_only(location: Any) -> str | None:
    """The key of a key-only `s3` location (only `key`: no bucket, endpoint or credentials), else None. Argo keeps
    such an artifact in the default artifact repository under that key (docs/key-only-artifacts.md; the executor's
    newDriverArt relocates it, executor.go:877-881); locally that is the run's own repository."""
    if not isinstance(location, Mapping) or set(location) != {"key"} or not location.get("key"):
        return None
    return str(location["key"])


def check_key(name: str, key: str) -> str:
    """A key-only artifact's key as a place in the run's repository: relative, no `.` or `..` segment."""
    parts = key.rstrip("/").split("/")
    if key.startswith("/") or "{{" in key or any(part in ("", ".", "..") for part in parts):
        raise ArtifactError(f"artifact {name!r}: s3.key {key!r} is not a key this run's artifact repository can hold "
                            "(relative, no empty, '.' or '..' segment, every variable substituted)")
    return key


def compression_level(art: dict[str, Any]) -> int:
    """archive.tar.compressionLevel (Go's -1 is its default, 6), else 6."""
    level = ((art.get("archive") or {}).get("tar") or {}).get("compressionLevel")
    if level is None or int(level) == -1:
        return 6
    if not 0 <= int(level) <= 9:
        raise ArtifactError(f"artifact {art.get('name')!r}: archive.tar.compressionLevel {level} is not -1 to 9")
    return int(level)


class Repository:
    """The folder `root`; keys are paths relative to it."""

    def __init__(self, root: Path):
        self.root = root

    def store(self, source: Path, name: str, archive: str = "tar", level: int = 6) -> ArtifactRef:
        """Copy a file or folder into the repository (a tar.gz of it, or itself with archive "none"). `level`: the
        gzip level, Argo's default gzip.DefaultCompression (6) unless `archive.tar.compressionLevel` says
        (workflow/executor/executor.go:582-588)."""
        if not source.exists():
            raise ArtifactError(f"artifact {name!r}: {source} does not exist")
        folder = self.root / uuid.uuid4().hex[:16]
        folder.mkdir(parents=True)
        try:
            if archive == "none":
                target = folder / source.name
                if source.is_dir():
                    shutil.copytree(source, target, symlinks=True)
                else:
                    shutil.copy2(source, target)
            else:
                target = folder / f"{name}.tgz"
                with tarfile.open(target, "w:gz", compresslevel=level) as tar:
                    tar.add(source, arcname=source.name)
        except (OSError, shutil.Error, tarfile.TarError) as err:
            raise ArtifactError(f"artifact {name!r}: cannot save {source.name}: {err}") from err
        return ArtifactRef(name=name, key=str(target.relative_to(self.root)), archive=archive)

    def store_at(self, source: Path, name: str, key: str, archive: str = "tar", level: int = 6) -> ArtifactRef:
        """A key-only artifact: stored at `key` in the repository as the S3 driver stores it: a file or a tar.gz at
        the key, or with archive "none" a folder's files under it (a key ending in `/` names that folder). What was
        at the key is overwritten, as S3 overwrites."""
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            merge = archive == "none" and source.is_dir()  # S3 puts a folder's files under the key, one by one
            if target.is_dir() and not target.is_symlink() and not merge:
                shutil.rmtree(target)
            elif merge and (target.is_file() or target.is_symlink()):
                target.unlink()
            if archive == "none":
                _copy(source, target)
            else:
                with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".store-", delete=False) as tmp, \
                        tarfile.open(fileobj=tmp, mode="w:gz", compresslevel=level) as tar:
                    tar.add(source, arcname=source.name)
                os.replace(tmp.name, target)
        except (OSError, shutil.Error, tarfile.TarError) as err:
            raise ArtifactError(f"artifact {name!r}: cannot save {source.name} at s3.key {key!r}: {err}") from err
        return ArtifactRef(name=name, key=key, archive=archive, s3_key=key)

    def save_output(self, art: dict[str, Any], source: Path) -> ArtifactRef | None:
        """An output artifact once the main command exited: stored, and uploaded to S3 when it names a bucket
        location. Missing: None when optional, else ArtifactError (the wait container's failure)."""
        name = str(art.get("name"))
        if not source.exists():
            if art.get("optional"):
                return None
            raise ArtifactError(f"artifact {name!r}: path {art.get('path')} does not exist")
        key = key_only(art.get("s3"))
        if key is not None:
            ref = self.store_at(source, name, check_key(name, key), archive_of(art), compression_level(art))
        else:
            ref = self.store(source, name, archive_of(art), compression_level(art))
        ref.path = str(art.get("path"))
        ref.optional = bool(art.get("optional"))
        if key is None and art.get("s3"):
            self._upload(art["s3"], name, self.root / str(ref.key))
        return ref

    def place_all(self, inputs: list[InputArtifact], where: Callable[[str], Path]) -> None:
        """Place every input artifact; `where` maps a container path to the host path the container sees."""
        for art in inputs:
            try:
                self.place(art, where(art.path))
            except (OSError, shutil.Error) as err:
                raise ArtifactError(f"input artifact {art.name!r}: cannot place it at {art.path}: {err}") from err

    def place(self, art: InputArtifact, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if art.raw is not None:
            target.write_text(art.raw)
        elif art.s3_uri is not None:
            self._download(art, target)
        elif art.key is not None:
            source = self.root / art.key
            if art.sub_path:
                if art.archive != "none":
                    raise ArtifactError(f"input artifact {art.name!r}: subPath {art.sub_path!r} needs its source "
                                        "stored unarchived (archive: none)")
                source = source / art.sub_path
            if not source.exists():
                raise ArtifactError(f"input artifact {art.name!r}: {art.key}"
                                    f"{'/' + art.sub_path if art.sub_path else ''} does not exist")
            if art.archive == "none" or (art.archive == "auto" and (source.is_dir() or not _is_tarfile(source))):
                _copy(source, target)
            else:
                unpack(source, target)
        else:
            return  # an optional input with nothing to load is left out
        if art.mode is not None:
            target.chmod(art.mode)

    def _upload(self, location: dict[str, Any], name: str, path: Path) -> None:
        from steps._storage.store import AlreadyExists, S3Store, StoreError

        bucket, key = location.get("bucket"), location.get("key")
        if not bucket or not key:
            raise ArtifactError(f"artifact {name!r}: its s3 location needs a bucket and a key locally")
        store = S3Store(str(bucket))
        files = [(str(key), path)] if path.is_file() else [
            (f"{key}/{p.relative_to(path)}", p) for p in sorted(path.rglob("*")) if p.is_file()]
        try:
            for object_key, file in files:
                data = file.read_bytes()
                try:
                    store.put_new(object_key, data)
                except AlreadyExists:  # Argo overwrites
                    store.put_if_match(object_key, data, store.get(object_key)[1])
        except StoreError as err:
            raise ArtifactError(f"artifact {name!r}: {err}") from err

    def _download(self, art: InputArtifact, target: Path) -> None:
        from steps._storage import s3
        from steps._storage.store import S3Store, StoreError

        bucket, key = s3.split(str(art.s3_uri))
        try:
            data, _ = S3Store(bucket).get(key)
        except StoreError as err:
            raise ArtifactError(f"input artifact {art.name!r}: {err}") from err
        if art.archive == "none" or not _is_tarball(data):  # unarchiveArtifact's auto-detection
            target.write_bytes(data)
            return
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tgz") as tmp:
            tmp.write(data)
            tmp.flush()
            unpack(Path(tmp.name), target)


def unpack(archive: Path, target: Path) -> None:
    """Extract a tar.gz's single top entry to `target` (several top entries: a folder holding them)."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as tmp:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="tar")
        except (tarfile.TarError, OSError) as err:
            raise ArtifactError(f"{archive.name}: not a tar archive: {err}") from err
        entries = os.listdir(tmp)
        source = Path(tmp) / entries[0] if len(entries) == 1 else Path(tmp)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source == Path(tmp):
            shutil.copytree(source, target, symlinks=True)
        else:
            os.replace(source, target)


def _is_tarball(data: bytes) -> bool:
    """isTarball (executor.go:1094-1120): a gzip stream whose content starts with a tar header."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _is_tarfile(path: Path) -> bool:
    """_is_tarball for a file in the repository."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
