"""A local deployment for the tests of the local canary: the trained model's policy with a short canary, a
registry with v1 in production and v2 staged, and the router `mlops deploy` runs with v1 as its stable server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._canary.local.client import DeployClient
from steps._canary.local.deployment import Deployment
from steps._canary.local.router import Router
from steps._core.policy import Policy, load_policy
from steps._storage.registry import Registry
from tests.support.models import Trained, candidate

PASSED: Any = {"passed": True}  # a part of gate.json, as the registry accepts it


def short_canary_policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The trained model's policy with a short canary: 50% for 1m with an analysis of 2 x 1m, then 100%."""
    raw = yaml.safe_load(trained.policy.read_text())
    raw["canary"]["steps"] = [{"set_weight": 50, "pause": "1m", "analysis": True}, {"set_weight": 100}]
    raw["canary"]["analysis"].update(interval="1m", count=2, failure_limit=0, inconclusive_limit=1,
                                     latency_p95_ms=100, error_ratio=0.05, min_requests=20)
    out = tmp_path_factory.mktemp("gates") / trained.policy.name
    out.write_text(yaml.safe_dump(raw))
    return load_policy(out)


def v1_production_v2_staged(tmp_path: Path, trained: Trained, policy: Policy) -> Registry:
    """A registry with two versions of the trained model: v1 in production, v2 staged."""
    reg = Registry.open(str(tmp_path / "registry"))
    for name in ("one", "two"):
        reg.register(policy.model_name, candidate(trained, tmp_path, name), passed=True, gate_report=PASSED)
    reg.promote(policy.model_name, 1, "production")
    return reg


@contextmanager
def stable_deployment(registry: Registry, policy: Policy, port: int = 0) -> Iterator[Router]:
    """What `mlops deploy` runs: the router (on `port`, else a free one) with v1 as the stable server."""
    router = Router(Deployment(policy.model_name, registry.location), port=port).start()
    try:
        DeployClient(router.url).set_stable(1)
        yield router
    finally:
        router.close()
