"""A container's environment as the kubelet and Argo give it: Argo's variables, `envFrom` (ConfigMaps), then `env` in
order, its `valueFrom` read locally: `configMapKeyRef` from the run's ConfigMaps, `secretKeyRef` (no Secret exists
here) from the same-named variable of this machine's environment (docs/local-runner.md, "Container").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from workflows.local.engine import sandbox
from workflows.local.engine.pods import PodRefused, PodSpec

NO_DEADLINE = "0001-01-01T00:00:00Z"  # Go's zero time, what ARGO_DEADLINE holds without a deadline
HOST_ONLY = ("TMPDIR", "TMP", "TEMP")  # they name the runner's temporary folder, which a container does not see


def container_env(spec: PodSpec, name: str, ctr: Mapping[str, Any], config_maps: Mapping[str, Any],
                  extra: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The process's environment (this machine's with `extra`, then the container's), and the container's own
    variables, which `$(VAR)` may name (Kubernetes: envFrom, then env in order). A variable whose optional source
    is absent is not set at all, not even from this machine's environment."""
    own: dict[str, str] = {}
    deadline = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(spec.deadline)) if spec.deadline else NO_DEADLINE
    own.update({"ARGO_POD_NAME": spec.pod_name, "ARGO_NODE_ID": spec.node_id, "ARGO_CONTAINER_NAME": name,
                "ARGO_WORKFLOW_NAME": spec.workflow,
                "ARGO_TEMPLATE": json.dumps(spec.template, separators=(",", ":")),
                "ARGO_INCLUDE_SCRIPT_OUTPUT": str(spec.capture_result).lower(), "ARGO_DEADLINE": deadline})
    own.update(spec.env)
    for source in ctr.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref is None:
            raise PodRefused(f"{spec.node_name}: container {name!r}: envFrom {sorted(source)} has no local source")
        data = (config_maps.get(str(ref.get("name"))) or {}).get("data")
        if data is None and not ref.get("optional"):
            raise PodRefused(f"{spec.node_name}: container {name!r}: ConfigMap {ref.get('name')!r} not found")
        own.update({f"{source.get('prefix', '')}{k}": str(v) for k, v in (data or {}).items()})
    unset: set[str] = set()
    for item in ctr.get("env") or []:
        key = str(item["name"])
        value = (value_from(spec, name, key, item["valueFrom"] or {}, config_maps) if "valueFrom" in item
                 else sandbox.expand(str(item.get("value", "")), own))
        if value is None:
            own.pop(key, None)
            unset.add(key)
        else:
            own[key] = value
            unset.discard(key)
    host = {k: v for k, v in {**os.environ, **extra}.items() if k not in HOST_ONLY and k not in unset}
    return host | own, own


def value_from(spec: PodSpec, name: str, key: str, source: Mapping[str, Any],
               config_maps: Mapping[str, Any]) -> str | None:
    """An env value from `configMapKeyRef` or `secretKeyRef`; None: optional and absent. A required one that is
    absent fails the pod as the kubelet does (CreateContainerConfigError); refusals.py refuses it up front."""
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"] or {}
        data = (config_maps.get(str(ref.get("name"))) or {}).get("data") or {}
        if str(ref.get("key")) in data:
            return str(data[str(ref.get("key"))])
        if ref.get("optional"):
            return None
        raise PodRefused(f"{spec.node_name}: container {name!r}: env {key!r}: ConfigMap {ref.get('name')!r} has no "
                         f"key {ref.get('key')!r} (CreateContainerConfigError)")
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"] or {}
        if key in os.environ:
            return os.environ[key]
        if ref.get("optional"):
            return None
        raise PodRefused(f"{spec.node_name}: container {name!r}: env {key!r}: Secret {ref.get('name')!r} key "
                         f"{ref.get('key')!r} has no local source: set ${key} on this machine")
    raise PodRefused(f"{spec.node_name}: container {name!r}: env {key!r}: valueFrom {sorted(source)} has no local "
                     "source")
