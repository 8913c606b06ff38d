"""README's "Calling the model server", as a new user runs it: its `mlops serve --grpc-port` command on a registry
whose production version is the reference model, then its two Python examples, tritonclient over HTTP with binary
tensors and over gRPC, each run as written (only the ports changed). Both print the same scores, which are the
scores of the V1 JSON route and of the trained model itself."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steps._core.data import generate
from steps._model import task as _task
from steps._model.bundle import Bundle
from steps._storage.registry import Registry
from tests.support.models import Trained
from tests.support.processes import free_port
from tests.support.serving import Server, wait_ready

pytest.importorskip("tritonclient.grpc", reason="tritonclient[http,grpc] (a dev extra) is not installed")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MODEL = "fraud-detection"


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    return README[start:README.index("\n## ", start + 1)]


def python_examples() -> dict[str, str]:
    """The section's Python blocks by the client they import: http or grpc."""
    blocks = re.findall(r"```python\n(.*?)```", section("Calling the model server"), flags=re.DOTALL)
    return {re.search(r"import tritonclient\.(\w+)", b).group(1): b for b in blocks}  # type: ignore[union-attr]


def serve_command() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", section("Calling the model server"), flags=re.DOTALL)
    assert block, "the section shows no command"
    words = shlex.split(block.group(1).strip())
    assert words[:2] == [".venv/bin/mlops", "serve"], words
    return words[2:]


@pytest.fixture(scope="module")
def served(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, int]]:
    """The README's `mlops serve --model fraud-detection@production --port 8080 --grpc-port 8081`, on free ports."""
    folder = tmp_path_factory.mktemp("readme-serve")
    registry = Registry.open(str(folder / "registry"))
    record = registry.register(MODEL, trained.bundle, passed=True, gate_report={"passed": True})
    registry.promote(MODEL, record["version"], "canary")
    registry.promote(MODEL, record["version"], "production")
    args = serve_command()
    http_port, grpc_port = free_port(), free_port()
    ports = {"--port": str(http_port), "--grpc-port": str(grpc_port)}
    args = [ports.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
    assert f"{MODEL}@production" in args and set(ports.values()) <= set(args), args
    log = folder / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", *args, "--host", "127.0.0.1",
                                 "--registry", str(folder / "registry")], cwd=folder, stdout=subprocess.DEVNULL,
                                stderr=out)
    server = Server(proc, http_port, log)
    try:
        wait_ready(server)
        yield server, http_port, grpc_port
    finally:
        assert server.stop() == 0


def run_example(code: str, port: int, default_port: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    assert f'url="127.0.0.1:{default_port}"' in code, "the example calls another address than the command serves"
    monkeypatch.chdir(folder)
    scope: dict[str, Any] = {}
    exec(compile(code.replace(f"127.0.0.1:{default_port}", f"127.0.0.1:{port}"), "README", "exec"), scope)  # noqa: S102
    result = scope["result"]
    scope["client"].close()
    return result


def test_the_readme_clients_get_the_same_scores_over_binary_http_and_grpc(
        served: tuple[Server, int, int], trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, http_port, grpc_port = served
    frame = generate(5, seed=31)  # `mlops data generate`'s transactions: the examples read data.csv
    frame.to_csv(tmp_path / "data.csv", index=False)
    examples = python_examples()
    assert set(examples) == {"http", "grpc"}
    over_http = run_example(examples["http"], http_port, "8080", tmp_path, monkeypatch)
    over_grpc = run_example(examples["grpc"], grpc_port, "8081", tmp_path, monkeypatch)
    printed = capsys.readouterr().out
    assert printed.count("[") >= 4, printed  # each example prints its scores and labels

    http_scores, grpc_scores = over_http.as_numpy("score"), over_grpc.as_numpy("score")
    assert http_scores.shape == (5,) and np.array_equal(http_scores, grpc_scores)
    assert list(over_http.as_numpy("label")) == list(over_grpc.as_numpy("label"))
    # the V1 JSON route, and the trained model in this process, score the same rows the same
    instances = [{k: (None if v != v else v) for k, v in row.items()}
                 for row in frame.drop(columns=["is_fraud"], errors="ignore").to_dict("records")]
    status, answer = server.call("POST", f"/v1/models/{MODEL}:predict", {"instances": instances})
    assert status == 200, answer
    assert [p["score"] for p in answer["predictions"]] == list(http_scores)
    bundle = Bundle.open(trained.bundle)
    expected = _task.predict(bundle.pipeline, frame[[f.name for f in bundle.features]], "binary")
    np.testing.assert_allclose(http_scores, expected, rtol=0, atol=1e-9)
