"""Test-only (tests/support/faults): faults in a canary model server's predictions. Python runs this at start-up
when this folder is on PYTHONPATH; it does something only in a server started as the canary of the local
deployment (MLOPS_DEPLOY_ROLE=canary) with MLOPS_DEPLOY_CANARY_FAULT="latency_ms=300", "error_rate=0.5" or both
(comma-separated): after the server's warm-up, each prediction of its model waits that long, and fails with that
probability, inside the real server (its metrics and answers show it as a bad model's would)."""

from __future__ import annotations

import os
from typing import Any


def _install(spec: str) -> None:
    import dataclasses
    import random
    import threading
    import time

    from steps._serving import app, loader

    faults = dict(part.split("=", 1) for part in spec.split(",") if part)
    latency = float(faults.get("latency_ms", 0)) / 1000
    error_rate = float(faults.get("error_rate", 0))
    original_load, original_warm_up = loader.load_model, app.warm_up
    armed = threading.Event()  # the warm-up prediction must pass: a server that never gets ready is another fault

    def warm_up(model: Any) -> Any:
        result = original_warm_up(model)
        armed.set()
        return result

    def load_model(*args: Any, **kwargs: Any) -> Any:
        model = original_load(*args, **kwargs)
        inner = model.predictor

        class Faulty:
            kind = inner.kind

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def predict(self, rows: Any) -> Any:
                if armed.is_set():
                    time.sleep(latency)
                    if random.random() < error_rate:
                        raise RuntimeError("injected fault (MLOPS_DEPLOY_CANARY_FAULT)")
                return inner.predict(rows)

        return dataclasses.replace(model, predictor=Faulty())

    app.warm_up = warm_up
    loader.load_model = load_model


if os.environ.get("MLOPS_DEPLOY_ROLE") == "canary" and os.environ.get("MLOPS_DEPLOY_CANARY_FAULT"):
    _install(os.environ["MLOPS_DEPLOY_CANARY_FAULT"])
