"""The drift step end to end: a registry with a production version, real current data, a real HTTP webhook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from steps import drift
from steps._bundle import write_manifest
from steps._data import generate, write_frame
from steps._policy import load_policy
from steps._profile import build_profile
from steps._registry import Registry

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fraud-detection"
TOKEN = "s3cret-token"


class Hook:
    """A real webhook on 127.0.0.1 recording every request; `statuses` answers the first requests in order."""

    def __init__(self, statuses: list[int] | None = None):
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append({"auth": self.headers.get("Authorization"), "body": json.loads(body)})
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drift"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture(scope="module")
def small_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference policy with min_samples 2000, so small datasets decide."""
    text = (ROOT / "gates" / f"{MODEL}.yaml").read_text()
    text, n = re.subn(r"min_samples: \d+", "min_samples: 2000", text)
    assert n == 1
    out = tmp_path_factory.mktemp("policy") / f"{MODEL}.yaml"
    out.write_text(text)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("drift-data")
    out = {}
    for name, rows, seed, shift in (("drifted", 4000, 11, 0.8), ("same", 4000, 12, 0.0), ("few", 500, 13, 0.8)):
        out[name] = folder / f"{name}.parquet"
        write_frame(generate(rows, seed=seed, drift=shift), out[name])
    return out


@pytest.fixture
def registry_dir(tmp_path: Path, small_policy: Path) -> Path:
    """A local registry whose production version's profile comes from 6000 undrifted rows."""
    policy = load_policy(small_policy)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    profile = build_profile(generate(6000, seed=1), policy.data.features)
    (bundle / "profile.json").write_text(json.dumps(profile))
    (bundle / "model.skops").write_bytes(b"not a model: drift never loads it")
    write_manifest(bundle, {"model": MODEL, "fingerprint": "f" * 16})
    registry = Registry.open(str(tmp_path / "registry"))
    record = registry.register(MODEL, bundle, passed=True, gate_report={"passed": True})
    registry.promote(MODEL, record["version"], "production")
    return tmp_path / "registry"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def args(registry_dir: Path, policy: Path, current: Path, hook: Hook, token_file: Path, report: Path,
         *extra: str) -> list[str]:
    return ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(policy), "--current", str(current),
            "--webhook", hook.url, "--token-file", str(token_file), "--report-dir", str(report),
            "--webhook-backoff", "0.01", *extra]


def test_drifted_dataset_triggers_one_retrain_naming_the_drifted_features(
        registry_dir: Path, small_policy: Path, data: dict[str, Path], hook: Hook, token_file: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = drift.main(args(registry_dir, small_policy, data["drifted"], hook, token_file, tmp_path / "r"))
    assert code == 0
    assert len(hook.requests) == 1
    request = hook.requests[0]
    assert request["auth"] == f"Bearer {TOKEN}"
    body = request["body"]
    assert body["model"] == MODEL and body["reason"] == "automated_drift_detection"
    assert body["production_version"] == 1 and body["samples"] == 4000 and body["window"] == "1h"
    assert body["drift_share"] > 0.3
    # generate(drift=0.8) shifts 12 features, amount, channel and entry_mode among them (0.5 shifts only 6
    # past PSI 0.15: 6 of 23 is under drift_share 0.3); it leaves region alone.
    assert {"amount", "channel", "entry_mode"} <= set(body["drifted_features"])
    assert "region" not in body["drifted_features"]
    assert re.fullmatch(r"[0-9a-f]{12}", body["idempotency_key"])
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["decision"] == "retrain" and report["trigger"]["status"] == "sent"
    assert report["drifted_features"] == body["drifted_features"]
    page = (tmp_path / "r" / "drift.html").read_text()
    assert "data:image/png;base64," in page and "amount" in page
    assert "trigger sent" in capsys.readouterr().out


def test_undrifted_data_posts_nothing(registry_dir: Path, small_policy: Path, data: dict[str, Path], hook: Hook,
                                      token_file: Path, tmp_path: Path) -> None:
    assert drift.main(args(registry_dir, small_policy, data["same"], hook, token_file, tmp_path / "r")) == 0
    assert hook.requests == []
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["decision"] == "no_retrain" and report["trigger"]["status"] == "none"


def test_too_few_samples_is_waiting_for_more_data(registry_dir: Path, small_policy: Path, data: dict[str, Path],
                                                  hook: Hook, token_file: Path, tmp_path: Path) -> None:
    assert drift.main(args(registry_dir, small_policy, data["few"], hook, token_file, tmp_path / "r")) == 0
    assert hook.requests == []
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["decision"] == "waiting_for_more_data"
    assert "waiting for more data: 500 samples < min_samples 2000" in report["reason"]


def test_second_check_inside_the_cooldown_posts_nothing(registry_dir: Path, small_policy: Path,
                                                        data: dict[str, Path], hook: Hook, token_file: Path,
                                                        tmp_path: Path) -> None:
    for i in range(2):
        assert drift.main(args(registry_dir, small_policy, data["drifted"], hook, token_file, tmp_path / f"r{i}")) == 0
    assert len(hook.requests) == 1
    second = json.loads((tmp_path / "r1" / "drift.json").read_text())
    assert second["trigger"]["status"] == "cooldown"
    assert second["trigger"]["idempotency_key"] == hook.requests[0]["body"]["idempotency_key"]


def test_concurrent_checks_post_once(registry_dir: Path, small_policy: Path, data: dict[str, Path], hook: Hook,
                                     token_file: Path, tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "steps.drift",
                               *args(registry_dir, small_policy, data["drifted"], hook, token_file, tmp_path / f"r{i}")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, results
    assert len(hook.requests) == 1
    statuses = sorted(json.loads((tmp_path / f"r{i}" / "drift.json").read_text())["trigger"]["status"]
                      for i in range(3))
    assert statuses == ["cooldown", "cooldown", "sent"]


def test_failing_webhook_is_retried_then_exit_3_and_the_next_check_resends_the_same_key(
        registry_dir: Path, small_policy: Path, data: dict[str, Path], token_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    failing = Hook(statuses=[503, 503, 503])
    try:
        argv = args(registry_dir, small_policy, data["drifted"], failing, token_file, tmp_path / "r",
                    "--webhook-attempts", "3")
        assert drift.main(argv) == 3
        assert len(failing.requests) == 3
        err = capsys.readouterr().err
        assert "attempt 1/3 failed: HTTP 503" in err and "not delivered after 3 attempts" in err
        report = json.loads((tmp_path / "r" / "drift.json").read_text())
        assert report["trigger"]["status"] == "error"
        state, _ = Registry.open(str(registry_dir)).read_state(MODEL, drift.COOLDOWN_STATE)
        assert state is not None and state["status"] == "failed"
        # The webhook is back: the same episode is re-sent with the same key, once.
        assert drift.main(argv) == 0
        assert len(failing.requests) == 4
        keys = {r["body"]["idempotency_key"] for r in failing.requests}
        assert len(keys) == 1
    finally:
        failing.close()


def test_a_refused_token_is_not_retried(registry_dir: Path, small_policy: Path, data: dict[str, Path],
                                        token_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refusing = Hook(statuses=[401])
    try:
        argv = args(registry_dir, small_policy, data["drifted"], refusing, token_file, tmp_path / "r")
        assert drift.main(argv) == 2
        assert len(refusing.requests) == 1
        assert "HTTP 401" in capsys.readouterr().err
    finally:
        refusing.close()


def test_token_comes_from_the_environment_without_a_file(registry_dir: Path, small_policy: Path,
                                                         data: dict[str, Path], hook: Hook, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_WEBHOOK_TOKEN", "from-env")
    argv = ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
            "--current", str(data["drifted"]), "--webhook", hook.url, "--report-dir", str(tmp_path / "r")]
    assert drift.main(argv) == 0
    assert hook.requests[0]["auth"] == "Bearer from-env"


@pytest.mark.parametrize("case", ["no-production", "missing-column", "no-source"])
def test_bad_input_exits_2_naming_the_problem(case: str, registry_dir: Path, small_policy: Path,
                                              data: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "empty") if case == "no-production" else str(registry_dir)
    current = data["same"]
    if case == "missing-column":
        frame = generate(100, seed=3).drop(columns=["amount"])
        current = tmp_path / "broken.csv"
        write_frame(frame, current)
    argv = ["--model", MODEL, "--registry", registry, "--policy", str(small_policy),
            "--report-dir", str(tmp_path / "r")]
    if case != "no-source":
        argv += ["--current", str(current)]
    env = os.environ.pop("MLOPS_PROMETHEUS_URL", None)
    try:
        assert drift.main(argv) == 2
    finally:
        if env is not None:
            os.environ["MLOPS_PROMETHEUS_URL"] = env
    err = capsys.readouterr().err
    expected = {"no-production": "no production version", "missing-column": "'amount'", "no-source": "--current"}[case]
    assert expected in err
    assert not (tmp_path / "r" / "drift.json").exists()


PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")


@pytest.mark.integration
def test_drift_scores_are_pushed_to_a_real_pushgateway(registry_dir: Path, small_policy: Path,
                                                       data: dict[str, Path], tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request

    if not PUSHGATEWAY.is_file():
        pytest.skip(f"no Pushgateway at {PUSHGATEWAY} (Debian package prometheus-pushgateway)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        argv = ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
                "--current", str(data["drifted"]), "--report-dir", str(tmp_path / "r"), "--pushgateway", url]
        assert drift.main(argv) == 0  # no --webhook: reported, nothing sent
        report = json.loads((tmp_path / "r" / "drift.json").read_text())
        assert report["trigger"]["status"] == "not_configured"
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        amount = next(f["score"] for f in report["features"] if f["name"] == "amount")
        line = next(x for x in metrics.splitlines()
                    if x.startswith("mlops_drift_score{") and 'feature="amount"' in x)
        assert f'model="{MODEL}"' in line and abs(float(line.split()[-1]) - amount) < 1e-9
        assert any(x.startswith("mlops_drift_retrain{") and x.endswith(" 1") for x in metrics.splitlines())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
