"""The run's artifact repository: what a later step finds at its input path, from files, folders, raw text and S3."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import boto3
import pytest

from workflows.local.engine.artifacts import ArtifactError, Repository, archive_of
from workflows.local.engine.pods import InputArtifact


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "made" / "out"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("A")
    (source / "sub" / "b.txt").write_text("B")
    return source


@pytest.mark.parametrize("archive", ["tar", "none"])
def test_a_stored_folder_is_placed_as_the_same_folder(repo: Repository, folder: Path, tmp_path: Path,
                                                      archive: str) -> None:
    ref = repo.store(folder, "out", archive)
    target = tmp_path / "pod" / "inputs" / "here"
    repo.place(InputArtifact(name="in", path="/inputs/here", key=ref.key, archive=archive), target)
    assert (target / "a.txt").read_text() == "A" and (target / "sub" / "b.txt").read_text() == "B"


@pytest.mark.parametrize("archive", ["tar", "none"])
def test_a_stored_file_stays_a_file_under_the_inputs_name(repo: Repository, tmp_path: Path, archive: str) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello")
    ref = repo.store(source, "hello", archive)
    target = tmp_path / "pod" / "tmp" / "message"
    repo.place(InputArtifact(name="m", path="/tmp/message", key=ref.key, archive=archive, mode=0o640), target)
    assert target.read_text() == "hello" and target.stat().st_mode & 0o777 == 0o640


def test_tar_is_the_default_archive_and_keeps_one_entry(repo: Repository, folder: Path) -> None:
    ref = repo.save_output({"name": "out", "path": "/tmp/out"}, folder)
    assert ref is not None and (ref.archive, ref.path) == ("tar", "/tmp/out")
    with tarfile.open(repo.root / str(ref.key)) as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"out"}
    assert archive_of({"archive": {"none": {}}}) == "none"
    with pytest.raises(ArtifactError, match="zip"):
        archive_of({"name": "z", "archive": {"zip": {}}})


def test_sub_path_selects_inside_an_unarchived_source_only(repo: Repository, folder: Path, tmp_path: Path) -> None:
    ref = repo.store(folder, "out", "none")
    target = tmp_path / "b"
    repo.place(InputArtifact(name="b", path="/b", key=ref.key, archive="none", sub_path="sub/b.txt"), target)
    assert target.read_text() == "B"
    archived = repo.store(folder, "out", "tar")
    with pytest.raises(ArtifactError, match="unarchived"):
        repo.place(InputArtifact(name="b", path="/b", key=archived.key, sub_path="sub/b.txt"), tmp_path / "c")


def test_a_missing_output_is_an_error_unless_optional(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="/tmp/none does not exist"):
        repo.save_output({"name": "x", "path": "/tmp/none"}, tmp_path / "none")
    assert repo.save_output({"name": "x", "path": "/tmp/none", "optional": True}, tmp_path / "none") is None


def test_raw_inputs_are_written_as_text_and_empty_optional_inputs_left_out(repo: Repository, tmp_path: Path) -> None:
    repo.place(InputArtifact(name="r", path="/r", raw="raw text"), tmp_path / "r")
    repo.place(InputArtifact(name="o", path="/o"), tmp_path / "o")
    assert (tmp_path / "r").read_text() == "raw text" and not (tmp_path / "o").exists()


@pytest.mark.integration
def test_s3_artifacts_go_through_the_object_store(repo: Repository, folder: Path, tmp_path: Path,
                                                  s3_bucket: str) -> None:
    art = {"name": "out", "path": "/tmp/out", "s3": {"bucket": s3_bucket, "key": "runs/out.tgz"}}
    repo.save_output(art, folder)
    repo.save_output(art, folder)  # written again: replaced, as Argo overwrites
    target = tmp_path / "fetched"
    repo.place(InputArtifact(name="in", path="/in", s3_uri=f"s3://{s3_bucket}/runs/out.tgz"), target)
    assert (target / "sub" / "b.txt").read_text() == "B"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"plain")
    repo.place(InputArtifact(name="in", path="/in", s3_uri=f"s3://{s3_bucket}/plain.txt"), tmp_path / "plain")
    assert (tmp_path / "plain").read_bytes() == b"plain"  # not a tarball: placed as it is
    with pytest.raises(ArtifactError, match="no such object"):
        repo.place(InputArtifact(name="in", path="/in", s3_uri=f"s3://{s3_bucket}/missing"), tmp_path / "x")


def test_an_output_that_cannot_be_read_is_an_artifact_error(repo: Repository, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # the node is Error with the reason, the run goes on
    with pytest.raises(ArtifactError, match="cannot save"):
        repo.store(tmp_path / "pipe", "pipe", "none")


def test_a_tar_artifact_is_gzipped_at_argo_s_default_level_unless_its_compression_level_says(
        repo: Repository, tmp_path: Path) -> None:
    source = tmp_path / "made" / "big.txt"
    source.parent.mkdir(parents=True)
    source.write_text("the same line\n" * 20000)  # 280 kB that gzip shrinks to a few kB
    sizes = {}
    for level in (None, 0, -1):
        art = {"name": "big", "path": "/tmp/big.txt"} if level is None else \
            {"name": "big", "path": "/tmp/big.txt", "archive": {"tar": {"compressionLevel": level}}}
        ref = repo.save_output(art, source)
        assert ref is not None
        path = repo.root / str(ref.key)
        with tarfile.open(path, "r:gz") as tar:
            assert tar.extractfile("big.txt").read() == source.read_bytes()  # type: ignore[union-attr]
        sizes[level] = path.stat().st_size
    assert sizes[None] == sizes[-1] < 20_000 < 280_000 < sizes[0]  # compressionLevel 0: stored, not compressed
    with pytest.raises(ArtifactError, match="compressionLevel 12 is not -1 to 9"):
        repo.save_output({"name": "big", "path": "/tmp/big.txt", "archive": {"tar": {"compressionLevel": 12}}}, source)
