"""Atomic writes (steps/_core/files.py): a reader sees the old content or the new one, never half of one; what is
written is readable by the next pod or a server running as another user; write_json's stable format."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from steps._core.files import replacing, write_bytes, write_json, write_text


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """An owner-only umask, as in a hardened pod: the files must still come out readable by others."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_target_keeps_its_old_content_while_the_new_one_is_written(tmp_path: Path) -> None:
    target = tmp_path / "gate.json"
    target.write_text("old")
    with replacing(target) as tmp:
        tmp.write_text("new, half")
        assert target.read_text() == "old"
        # Beside the target (the rename never crosses a file system), hidden from readers that glob the folder.
        assert tmp.parent == tmp_path and tmp.name.startswith(".gate.json.")
    assert target.read_text() == "new, half"
    assert [p.name for p in tmp_path.iterdir()] == ["gate.json"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "interrupted"])
def test_a_writer_that_fails_midway_leaves_the_old_content_and_no_temporary_file(
        tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "bundle.json"
    target.write_text('{"version": 1}\n')
    with pytest.raises(type(error)), replacing(target) as tmp:
        tmp.write_text('{"vers')
        raise error
    assert target.read_text() == '{"version": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.json"]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    target = tmp_path / "passed"
    with pytest.raises(OSError, match="no space"), replacing(target) as tmp:
        tmp.write_text("tr")
        raise OSError("no space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "write",
    [lambda p: write_bytes(p, b"\x00\x01"), lambda p: write_text(p, "true"), lambda p: write_json(p, {"a": 1})],
    ids=["bytes", "text", "json"],
)
@pytest.mark.usefixtures("strict_umask")
def test_written_files_are_readable_by_others(tmp_path: Path, write: Callable[[Path], None]) -> None:
    target = tmp_path / "out"
    write(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.usefixtures("strict_umask")
def test_a_file_named_by_replacing_is_readable_by_others_too(tmp_path: Path) -> None:
    with replacing(tmp_path / "holdout.parquet") as tmp:
        tmp.write_bytes(b"PAR1")
    assert stat.S_IMODE((tmp_path / "holdout.parquet").stat().st_mode) == 0o644


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "report" / "nested" / "gate.json"
    write_json(target, {"passed": True})
    assert json.loads(target.read_text()) == {"passed": True}


def test_replacing_overwrites_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "version"
    write_text(target, "a much longer first content\n")
    write_text(target, "3")
    assert target.read_text() == "3"


def test_write_text_is_utf8(tmp_path: Path) -> None:
    write_text(tmp_path / "note", "µ drift — ok")
    assert (tmp_path / "note").read_bytes() == "µ drift — ok".encode()


def test_write_json_is_indented_sorted_with_a_trailing_newline_and_dates_as_strings(tmp_path: Path) -> None:
    at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    write_json(tmp_path / "doc.json", {"zeta": [1, 2], "alpha": {"b": at, "a": tmp_path / "x"}})
    text = (tmp_path / "doc.json").read_text()
    assert text == (
        "{\n"
        '  "alpha": {\n'
        f'    "a": "{tmp_path / "x"}",\n'
        '    "b": "2024-05-06 07:08:09+00:00"\n'
        "  },\n"
        '  "zeta": [\n'
        "    1,\n"
        "    2\n"
        "  ]\n"
        "}\n"
    )


def test_write_json_of_the_same_document_is_byte_identical(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"b": 1, "a": 2})
    write_json(tmp_path / "b.json", {"a": 2, "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
