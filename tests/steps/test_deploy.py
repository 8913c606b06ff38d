"""The deploy step, `mlops deploy` (steps/deploy.py), as a real process: it serves the registry's production
version behind the router and answers the control endpoint on the port it was given, to a caller with the token it
keeps in ~/.mlops/deploy/<port>.token (where DeployClient finds it) and says so."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from steps._canary.local.client import DeployClient
from steps._core.data import generate, write_frame
from steps._core.policy import Policy
from steps._storage.registry import Registry
from tests.support.canary import short_canary_policy, v1_production_v2_staged
from tests.support.models import Trained
from tests.support.paths import ROOT
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return short_canary_policy(trained, tmp_path_factory)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "rows.parquet"
    write_frame(generate(300, seed=5), out)
    return out


@pytest.fixture
def registry(tmp_path: Path, trained: Trained, policy: Policy) -> Registry:
    return v1_production_v2_staged(tmp_path, trained, policy)


def test_mlops_deploy_serves_the_production_version_and_answers_the_control_endpoint(
        registry: Registry, policy: Policy, dataset: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "deploy", "--model", policy.model_name,
                             "--registry", registry.location, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = DeployClient(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        status: Any = {}  # a Status once it answers
        while time.monotonic() < deadline and not status.get("stable"):
            try:
                status = client.status()
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.2)
        assert status.get("stable", {}).get("version") == 1, status
        assert "model_requests_total" in client.metrics("stable")
        with pytest.raises(Exception, match="HTTP 409.*weight: must be 0-100"):
            client.set_canary(2, 150)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/control/abort", data=b"{}"),
                                   timeout=10)
        assert refused.value.code == 401
        assert DeployClient(f"http://127.0.0.1:{port}").status()["stable"] is not None, "nothing was aborted"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    token_file = Path.home() / ".mlops" / "deploy" / f"{port}.token"
    assert f"bearer token in {token_file}" in out, out
    assert not token_file.exists()
