"""A pod's volumes as folders of the run: who shares what, and what a configMap volume shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflows.local.engine.volumes import VolumeError, Volumes

CONFIG = {"settings": {"metadata": {"name": "settings"}, "data": {"a.conf": "x=1", "b.conf": "y=2"},
                       "binaryData": {"bin": "AAE="}}}


@pytest.fixture
def volumes(tmp_path: Path) -> Volumes:
    return Volumes(tmp_path / "volumes", CONFIG, claims=("workdir",))


def test_an_empty_dir_belongs_to_one_pod_and_a_claim_to_the_whole_run(volumes: Volumes, tmp_path: Path) -> None:
    spec = [{"name": "scratch", "emptyDir": {}}, {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    first = volumes.pod_sources(spec, tmp_path / "pod1")
    second = volumes.pod_sources(spec, tmp_path / "pod2")
    assert first["scratch"] != second["scratch"]
    assert first["data"] == second["data"] and first["workdir"] == second["workdir"]
    (first["data"] / "f").write_text("kept")
    assert (second["data"] / "f").read_text() == "kept"


def test_a_config_map_volume_shows_each_key_as_a_file(volumes: Volumes, tmp_path: Path) -> None:
    folder = volumes.pod_sources([{"name": "c", "configMap": {"name": "settings"}}], tmp_path / "pod")["c"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.conf", "b.conf", "bin"]
    assert (folder / "a.conf").read_text() == "x=1" and (folder / "bin").read_bytes() == b"\x00\x01"
    items = {"name": "settings", "items": [{"key": "b.conf", "path": "conf/b"}]}
    folder = volumes.pod_sources([{"name": "d", "configMap": items}], tmp_path / "pod")["d"]
    assert [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()] == ["conf/b"]


def test_mounts_map_container_paths_to_folders_with_sub_paths(volumes: Volumes, tmp_path: Path) -> None:
    sources = volumes.pod_sources([{"name": "scratch", "emptyDir": {}}], tmp_path / "pod")
    mounts = volumes.mounts(sources, [{"name": "scratch", "mountPath": "/work"},
                                      {"name": "scratch", "mountPath": "/logs", "subPath": "logs"}], "main")
    assert mounts == {"/work": sources["scratch"], "/logs": sources["scratch"] / "logs"}
    assert (sources["scratch"] / "logs").is_dir()


@pytest.mark.parametrize("volume, mount, reason", [
    ({"name": "s", "secret": {"secretName": "x"}}, None, "secret has no local source"),
    ({"name": "h", "hostPath": {"path": "/etc"}}, None, "hostPath has no local source"),
    ({"name": "c", "configMap": {"name": "absent"}}, None, "ConfigMap 'absent' not found"),
    ({"name": "e", "emptyDir": {}}, {"name": "other", "mountPath": "/x"}, "not a volume of the pod"),
    ({"name": "e", "emptyDir": {}}, {"name": "e", "mountPath": "/x", "subPath": "../up"}, "relative path"),
], ids=["secret", "host-path", "missing-config-map", "unknown-volume", "escaping-sub-path"])
def test_what_has_no_local_source_is_named(volumes: Volumes, tmp_path: Path, volume: dict[str, object],
                                          mount: dict[str, object] | None, reason: str) -> None:
    with pytest.raises(VolumeError, match=reason):
        sources = volumes.pod_sources([volume], tmp_path / "pod")
        volumes.mounts(sources, [mount] if mount else [], "main")


def test_an_optional_config_map_that_is_absent_is_an_empty_folder(volumes: Volumes, tmp_path: Path) -> None:
    sources = volumes.pod_sources([{"name": "c", "configMap": {"name": "absent", "optional": True}}], tmp_path / "p")
    assert list(sources["c"].iterdir()) == []


def test_config_map_and_read_only_mounts_are_marked_read_only(volumes: Volumes, tmp_path: Path) -> None:
    sources = volumes.pod_sources([{"name": "c", "configMap": {"name": "settings"}}, {"name": "e", "emptyDir": {}}],
                                  tmp_path / "pod")
    mounts: list[dict[str, Any]] = [{"name": "c", "mountPath": "/etc/app"},
                                    {"name": "e", "mountPath": "/ro", "readOnly": True},
                                    {"name": "e", "mountPath": "/rw"}]
    assert volumes.read_only(sources, mounts) == ["/etc/app", "/ro"]
