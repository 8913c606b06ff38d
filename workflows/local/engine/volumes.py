"""A pod's volumes as folders of the run (docs/local-runner.md, "Volumes"): an emptyDir is a fresh folder of the
pod, shared by its containers; a configMap volume is a folder holding one file per key of the local ConfigMap; a
persistentVolumeClaim, and a volumeClaimTemplate, is one folder of the run shared by every pod that mounts it
(created when first mounted, kept for the run). Other volume kinds have no local source.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class VolumeError(Exception):
    """A volume or mount that cannot be given locally; the message names it."""


class Volumes:
    """The run's volume folders under `root`; `config_maps` by name (manifests); `claims` are the workflow's
    volumeClaimTemplates' names (a pod mounts them by that name, as Argo adds them to every pod)."""

    def __init__(self, root: Path, config_maps: dict[str, Any], claims: tuple[str, ...] = ()):
        self.root = root
        self.config_maps = config_maps
        self.claims = claims
        self._read_only: set[Path] = set()  # configMap volumes: Kubernetes mounts them read-only

    def pod_sources(self, volumes: list[dict[str, Any]], pod_dir: Path) -> dict[str, Path]:
        """Each volume's folder for one pod, by volume name."""
        sources = {name: self._claim(name) for name in self.claims}
        for volume in volumes:
            name = str(volume.get("name"))
            if "emptyDir" in volume:
                path = pod_dir / "emptyDir" / name
                path.mkdir(parents=True, exist_ok=True)
            elif "configMap" in volume:
                path = self._config_map(volume["configMap"] or {}, pod_dir / "configMap" / name, name)
                self._read_only.add(path)
            elif "persistentVolumeClaim" in volume:
                path = self._claim(str((volume["persistentVolumeClaim"] or {}).get("claimName")))
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise VolumeError(f"volume {name!r}: {', '.join(kinds) or 'no source'} has no local source "
                                  "(emptyDir, configMap and persistentVolumeClaim do)")
            sources[name] = path
        return sources

    def mounts(self, sources: dict[str, Path], volume_mounts: list[dict[str, Any]], container: str
               ) -> dict[str, Path]:
        """A container's mounts: container path -> host path (subPath applied)."""
        mounts: dict[str, Path] = {}
        for mount in volume_mounts:
            name = str(mount.get("name"))
            if name not in sources:
                raise VolumeError(f"container {container!r} mounts {name!r}, which is not a volume of the pod")
            source = sources[name]
            sub_path = str(mount.get("subPath") or "")
            if sub_path:
                if sub_path.startswith("/") or ".." in Path(sub_path).parts:
                    raise VolumeError(f"container {container!r}: subPath {sub_path!r} must be a relative path")
                source = source / sub_path
                if not source.exists():
                    source.mkdir(parents=True)  # the kubelet creates a missing subPath as a folder
            mounts[str(mount.get("mountPath"))] = source
        return mounts

    def read_only(self, sources: dict[str, Path], volume_mounts: list[dict[str, Any]]) -> list[str]:
        """The mount paths the container may not write: `readOnly: true`, and every configMap volume."""
        return [str(m.get("mountPath")) for m in volume_mounts
                if m.get("readOnly") or sources.get(str(m.get("name"))) in self._read_only]

    def _claim(self, claim: str) -> Path:
        path = self.root / "claims" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _config_map(self, ref: dict[str, Any], path: Path, volume: str) -> Path:
        name = str(ref.get("name"))
        manifest = self.config_maps.get(name)
        path.mkdir(parents=True, exist_ok=True)
        if manifest is None:
            if ref.get("optional"):
                return path
            raise VolumeError(f"volume {volume!r}: ConfigMap {name!r} not found among the local ConfigMaps")
        data = {k: str(v).encode() for k, v in (manifest.get("data") or {}).items()}
        data.update({k: base64.b64decode(str(v)) for k, v in (manifest.get("binaryData") or {}).items()})
        items = ref.get("items")
        files = {str(i["path"]): data[str(i["key"])] for i in items if str(i["key"]) in data} if items else {
            k: v for k, v in data.items() if _KEY.match(k)}
        if items and len(files) < len(items) and not ref.get("optional"):
            missing = sorted(str(i["key"]) for i in items if str(i["key"]) not in data)
            raise VolumeError(f"volume {volume!r}: ConfigMap {name!r} has no key {', '.join(missing)}")
        mode = int(ref.get("defaultMode", 0o644))
        for rel, content in files.items():
            file = path / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
            os.chmod(file, mode)
        return path
