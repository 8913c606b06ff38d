"""Fixtures shared across the suite: the reference policy, small generated datasets, the official schemas,
a real S3 API server (moto in server mode) on 127.0.0.1, and Prometheus and the Pushgateway as plain processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"
POLICY = ROOT / "gates" / "fraud-detection.yaml"
# Debian's packages (`.ci/run` installs them); tests that need one skip, saying so, where it is absent.
PROMETHEUS = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
PUSHGATEWAY = Path(shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway")


@pytest.fixture(scope="session")
def policy_file() -> Path:
    return POLICY


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    if not (SCHEMAS / "argo-workflows.schema.json").is_file():
        pytest.skip(f"the official Argo schemas are not at {SCHEMAS} (../shared/schemas beside the repo)")
    return SCHEMAS


@pytest.fixture(scope="session")
def dataset_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20k generated rows as CSV (session-wide: generating is cheap, training on it is the slow part)."""
    from steps._core.data import generate, write_frame

    out = tmp_path_factory.mktemp("data") / "transactions.csv"
    write_frame(generate(20000, seed=7), out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AtomicWrites:
    """S3 evaluates a conditional write (If-Match, If-None-Match) and the write as one step. moto's server checks,
    then writes, so two concurrent requests can both pass the check and one update is lost (seen in CI: the
    registry's concurrent-writers test lost a version). One lock around writing requests restores S3's guarantee;
    reads stay concurrent."""

    WRITES = frozenset({"PUT", "POST", "DELETE"})

    def __init__(self, app: Any):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") not in self.WRITES:
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API (moto's server mode, writes made atomic as S3's are) on 127.0.0.1; yields its endpoint URL."""
    werkzeug_app = pytest.importorskip("moto.moto_server.werkzeug_app")
    from werkzeug.serving import make_server

    port = free_port()
    app = AtomicWrites(werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=werkzeug_app.MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="s3-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (in this process and in subprocesses) at the test S3 server; yields the endpoint."""
    for key, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the test S3 server; yields its name."""
    import uuid

    import boto3

    name = f"mlops-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")


@contextmanager
def running(binary: Path, args: list[str], folder: Path, port: int | None = None,
            timeout: float = 30) -> Iterator[str]:
    """Prometheus or the Pushgateway as a plain process on 127.0.0.1 (`port`, else a free one), once its
    /-/ready answers; yields its URL and stops it on exit. Skips the test when the binary is not installed."""
    if not binary.is_file():
        pytest.skip(f"{binary.name} is not installed at {binary} (Debian package {binary.name}; CI installs it)")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / f"{binary.name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), *args, f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"{binary.name} exited with {process.returncode}: "
                                         f"{log_path.read_text(errors='replace')[-2000:]}")
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                    break
                except OSError as err:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{binary.name} at {url} not ready after {timeout:.0f}s: {err}") from err
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@contextmanager
def prometheus(config: Path, folder: Path, port: int | None = None) -> Iterator[str]:
    """A real Prometheus scraping as `config` says, its data in `folder`; yields its URL."""
    with running(PROMETHEUS, [f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}"], folder,
                 port) as url:
        yield url

