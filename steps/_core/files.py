"""Writing files so that a reader sees the old content or the new one, never half of one.

Every report, manifest, marker and dataset a step writes goes through here: a temporary file in the same folder
(so the rename never crosses a file system), readable by others (a server or the next pod may run as another
user), renamed over the target only once it is complete, and removed if anything fails before that.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_MODE = 0o644  # mkstemp makes owner-only files; these are shared reports, manifests and data


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to (for writers that want a file name, such as pandas);
    renamed over `path` when the block ends without an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Indented, keys sorted (stable diffs), anything JSON lacks (a datetime, a Path) as its string."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def publish_folder(new: Path, target: Path, last: str) -> None:
    """Rename the finished folder `new` to `target`, replacing a previous one there whole (a re-run). A mount point
    (a volume at an artifact's path) cannot be renamed: it is emptied and filled, the file named `last` (the one
    readers look for first: a bundle's manifest, a page's index.html) moved in last."""
    import shutil

    if not target.exists():
        new.rename(target)
        return
    aside = target.with_name(f".{target.name}.old-{new.name.rsplit('-', 1)[-1]}")
    try:
        target.rename(aside)
    except OSError:
        for old in target.iterdir():
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        for path in sorted(new.iterdir(), key=lambda p: p.name == last):
            os.replace(path, target / path.name)
        new.rmdir()
        return
    new.rename(target)
    shutil.rmtree(aside, ignore_errors=True)
