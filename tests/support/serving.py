"""The model server for tests. Real `python -m steps.serve` processes on 127.0.0.1 (`start`, `Server.call`,
`metric` reads the exposition). Small models served in-process for the tests of the App and the HTTP transport:
a two-feature contract and pure-Python predictors, no bundle, no scikit-learn. Binary: the score is amount / 100;
multiclass: three classes whose probabilities follow the amount; regression: a value from the amount and the
channel."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from steps._core.documents import ContractRecord
from steps._serving.app import ServedModel
from steps._serving.contract import RequestContract
from steps._serving.outputs import Label, prediction_bins
from tests.support.paths import ROOT
from tests.support.processes import free_port

# Any JSON value, nested a little: what a careless or hostile client may put where the server expects a field.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)

MODEL = "fraud-detection"
CONTRACT: ContractRecord = {
    "target": "is_fraud", "positive_label": 1, "segment": None,
    "features": [
        {"name": "amount", "type": "numeric", "nullable": False, "min": 0.0, "max": 100.0},
        {"name": "channel", "type": "categorical", "nullable": False, "categories": ["web", "app"],
         "unknown": "reject"},
    ],
}
ROW = {"amount": 40.0, "channel": "app"}
CLASSES: tuple[Label, ...] = ("low", "mid", "high")
# profile.json `prediction` entries as steps._model.profile writes them (edges, or the classes and `other`).
SCORE_PROFILE = {"type": "numeric", "edges": [-math.inf, 0.25, 0.5, 0.75, math.inf],
                 "proportions": [0.25] * 4, "missing": 0.0, "count": 100}
VALUE_PROFILE = {"type": "numeric", "edges": [-math.inf, 50.0, 100.0, math.inf],
                 "proportions": [0.4, 0.4, 0.2], "missing": 0.0, "count": 100}


def class_profile(classes: Sequence[Label]) -> dict[str, Any]:
    return {"type": "categorical", "categories": [*classes, "other"], "proportions": [0.25] * (len(classes) + 1),
            "missing": 0.0, "count": 100}


class Amount:
    """A pure-Python model: the score is amount / 100 (or a fixed, broken score)."""

    kind = "compiled"

    def __init__(self, broken: float | None = None):
        self.broken = broken

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return [self.broken if self.broken is not None else row[0] / 100 for row in rows]


class Levels:
    """A pure-Python multiclass model: with x = amount / 100, P = [1 - x, x / 2, x / 2] (at 100 the tie of the
    last two goes to the first of them); `broken` replaces every row's probabilities."""

    kind = "compiled"

    def __init__(self, broken: list[float] | None = None):
        self.broken = broken

    def predict(self, rows: Sequence[Sequence[float]]) -> list[list[float]]:
        if self.broken is not None:
            return [list(self.broken) for _ in rows]
        return [[1 - row[0] / 100, row[0] / 200, row[0] / 200] for row in rows]


class Doubled:
    """A pure-Python regression model: the value is 2 * amount + the channel's code (web 0, app 1)."""

    kind = "compiled"

    def __init__(self, broken: float | None = None):
        self.broken = broken

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return [self.broken if self.broken is not None else 2 * row[0] + row[1] for row in rows]


def served(predictor: Any = None, profile: dict[str, Any] | None = None) -> ServedModel:
    """The binary model (a `prediction` profile of scores with `profile`)."""
    return ServedModel(MODEL, "3", 0.5, RequestContract(CONTRACT), predictor or Amount(), True, {},
                       bins=prediction_bins("binary", (0, 1), {"prediction": profile}))


def served_multiclass(predictor: Any = None, classes: Sequence[Label] = CLASSES,
                      profile: dict[str, Any] | None = None) -> ServedModel:
    return ServedModel(MODEL, "3", None, RequestContract(CONTRACT), predictor or Levels(), True, {},
                       labels=tuple(classes), task="multiclass",
                       bins=prediction_bins("multiclass", classes, {"prediction": profile}))


def served_regression(predictor: Any = None, profile: dict[str, Any] | None = None) -> ServedModel:
    return ServedModel(MODEL, "3", None, RequestContract(CONTRACT), predictor or Doubled(), True, {}, labels=(),
                       task="regression", bins=prediction_bins("regression", (), {"prediction": profile}))


# --- real servers --------------------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, Any]:
        return call(self.port, method, path, body, headers, raw)

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def call(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None, conn: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers={**sent, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
    finally:
        if own:
            conn.close()
    ctype = response.getheader("content-type") or ""
    return response.status, json.loads(payload) if ctype.startswith("application/json") else payload.decode()


def start(bundle: Path, tmp: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True,
          pythonpath: str | None = None) -> Server:
    port = free_port()
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, str(ROOT)) if p),
                **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "steps.serve", "--model-dir", str(bundle), "--host",
                                 "127.0.0.1", "--port", str(port), *args], cwd=ROOT, env=full_env, stdout=out,
                                stderr=subprocess.STDOUT)
    server = Server(proc, port, log, full_env)
    if wait:
        wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited {server.proc.returncode}: {server.log.read_text()[-3000:]}")
        try:
            if server.call("GET", "/v1/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server not ready in {timeout} s: {server.log.read_text()[-3000:]}")



def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in the exposition")


def post_predictions(url: str, model: str, bodies: Sequence[bytes], clients: int = 8) -> list[int]:
    """POST each body to `url`'s V1 predict route of `model`, from `clients` clients at once; the HTTP status
    codes, in the bodies' order."""
    def post(body: bytes) -> int:
        request = urllib.request.Request(f"{url}/v1/models/{model}:predict", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return err.code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(post, bodies))
