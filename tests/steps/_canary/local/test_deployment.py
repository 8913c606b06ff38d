"""steps/_canary/local/deployment.py with real `python -m steps.serve` processes: closing the deployment stops
every server it started, one still starting included (the change that was starting it is refused), so a Ctrl-C
of `mlops deploy` never leaves a model server behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from steps._canary.local.deployment import Deployment
from steps._canary.local.servers import DeployError
from steps._core.policy import load_policy
from steps._storage.registry import Registry
from tests.support.canary import PASSED
from tests.support.models import candidate, trained_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, str]:
    """Two versions of the trained model."""
    trained = trained_bundle(tmp_path_factory)
    model = load_policy(trained.policy).model_name
    root = tmp_path_factory.mktemp("deployment")
    reg = Registry.open(str(root / "registry"))
    for name in ("one", "two"):
        reg.register(model, candidate(trained, root, name), passed=True, gate_report=PASSED)
    return reg, model


def servers() -> list[int]:
    """This process' `steps.serve` children still running."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == os.getpid() and b"steps.serve" in command:
            found.append(int(entry.name))
    return found


def test_closing_while_a_server_starts_stops_it_and_refuses_the_change(registry: tuple[Registry, str]) -> None:
    reg, model = registry
    deployment = Deployment(model, reg.location)
    failed: list[BaseException] = []

    def change() -> None:
        try:
            deployment.set_stable(1)
        except DeployError as err:
            failed.append(err)

    thread = threading.Thread(target=change)
    thread.start()
    deadline = time.monotonic() + 30
    while not servers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert servers(), "the server never started"
    began = time.monotonic()
    deployment.close()
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - began < 12
    assert [str(err) for err in failed] == [f"{model} v1 (stable): the local deployment is shutting down"]
    assert servers() == []
    assert deployment.status()["stable"] is None


def test_closing_stops_the_stable_and_the_canary(registry: tuple[Registry, str]) -> None:
    reg, model = registry
    deployment = Deployment(model, reg.location)
    try:
        deployment.set_stable(1)
        status = deployment.set_canary(2, 10)
        assert status["stable"] and status["canary"] and status["weight"] == 10
        assert len(servers()) == 2
    finally:
        deployment.close()
    assert servers() == []
    with pytest.raises(DeployError, match="shutting down"):
        deployment.set_stable(1)
