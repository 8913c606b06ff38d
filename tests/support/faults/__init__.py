"""Faults in the real model server, for tests only: a canary whose model is slow or fails, so the server's own
metrics show it as a bad model's would, and the canary analysis must catch it.

`inject(monkeypatch, "latency_ms=150")` (or "error_rate=1", or both comma-separated) sets
MLOPS_DEPLOY_CANARY_FAULT and puts this folder on PYTHONPATH: every `python -m steps.serve` started afterwards
(by the local deployment, or steps._canary.local.servers.ServerProcess) runs this folder's sitecustomize.py,
which arms the faults only in a server started as the canary (MLOPS_DEPLOY_ROLE=canary).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAULT_ENV = "MLOPS_DEPLOY_CANARY_FAULT"
FOLDER = Path(__file__).resolve().parent


def inject(monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    """Canary servers started from now on (until `monkeypatch` undoes it) have `fault`."""
    monkeypatch.setenv(FAULT_ENV, fault)
    paths = [str(FOLDER), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
