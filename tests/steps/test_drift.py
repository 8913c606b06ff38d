"""The drift step end to end: a registry with a production version, real current data, a real HTTP webhook; the
raw-data methods against the ECDFs a real training stored; Prometheus through prometheus-api-client; and real model
servers' /metrics pages read directly."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import drift
from steps._canary.local.servers import ServerProcess
from steps._core.data import DRIFTED_FEATURES, generate, write_frame
from steps._core.policy import load_policy
from steps._drift import cooldown, sources
from steps._drift.ecdf import ECDF_FILE
from steps._drift.methods import CATEGORICAL_METHOD
from steps._model import bundle as _bundle
from steps._model.bundle import write_manifest
from steps._model.profile import build_profile
from steps._storage.registry import Registry
from tests.support.models import Trained
from tests.support.paths import ROOT
from tests.support.processes import PUSHGATEWAY, free_port, prometheus, running
from tests.support.webhooks import Hook

MODEL = "fraud-detection"
TOKEN = "s3cret-token"


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
    # `check` first, as `mlops drift check` passes it along (the README's command line).
    return ["check", "--model", MODEL, "--registry", str(registry_dir), "--policy", str(policy), "--current",
            str(current), "--webhook", hook.url, "--token-file", str(token_file), "--report-dir", str(report),
            "--webhook-backoff", "0.01", *extra]


def test_drifted_dataset_triggers_one_retrain_naming_the_drifted_features(
        registry_dir: Path, small_policy: Path, data: dict[str, Path], hook: Hook, token_file: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = drift.main(args(registry_dir, small_policy, data["drifted"], hook, token_file, tmp_path / "r",
                           "--verdict-out", str(tmp_path / "verdict")))
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
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<svg role='img'" in page and "data:" not in page and "amount" in page
    assert "Drifted: " in page and "webhook called, retraining requested (HTTP 200" in page
    assert "trigger sent" in capsys.readouterr().out
    # The CronWorkflow's `verdict` output: the page's verdict line, naming what was done.
    verdict = (tmp_path / "verdict").read_text()
    assert verdict.startswith("Drifted: ") and "webhook called, retraining requested (HTTP 200" in verdict
    assert verdict in html.unescape(page) and "\n" not in verdict


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
    argvs = [args(registry_dir, small_policy, data["drifted"], hook, token_file, tmp_path / f"r{i}") for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "steps.drift", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for argv in argvs]
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
        state, _ = Registry.open(str(registry_dir)).read_state(MODEL, cooldown.COOLDOWN_STATE)
        assert state is not None and state["status"] == "failed"
        # The webhook is back: the same episode is re-sent with the same key, once.
        assert drift.main(argv) == 0
        assert len(failing.requests) == 4
        keys = {r["body"]["idempotency_key"] for r in failing.requests}
        assert len(keys) == 1
    finally:
        failing.close()


def test_a_redirecting_webhook_is_not_a_delivery_exit_3_and_the_next_check_resends_the_same_key(
        registry_dir: Path, small_policy: Path, data: dict[str, Path], token_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A 302 used to be followed and counted as delivered, starting the cooldown though no POST reached the
    EventSource: now it is a failed delivery (retried, then exit 3) and the episode is left for the next check."""
    redirecting = Hook(statuses=[302, 302])
    try:
        argv = args(registry_dir, small_policy, data["drifted"], redirecting, token_file, tmp_path / "r",
                    "--webhook-attempts", "2")
        assert drift.main(argv) == 3
        assert "not delivered after 2 attempts; last error: HTTP 302 Found" in capsys.readouterr().err
        assert json.loads((tmp_path / "r" / "drift.json").read_text())["trigger"]["status"] == "error"
        state, _ = Registry.open(str(registry_dir)).read_state(MODEL, cooldown.COOLDOWN_STATE)
        assert state is not None and state["status"] == "failed"
        assert drift.main(argv) == 0  # the webhook answers 200 now: the same episode, the same key, delivered
        assert len(redirecting.requests) == 3
        assert len({r["body"]["idempotency_key"] for r in redirecting.requests}) == 1
        assert json.loads((tmp_path / "r" / "drift.json").read_text())["trigger"]["status"] == "sent"
    finally:
        redirecting.close()


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
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
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
    for name in drift.PROMETHEUS_ENV:
        monkeypatch.delenv(name, raising=False)
    assert drift.main(argv) == 2
    err = capsys.readouterr().err
    expected = {"no-production": "no production version", "missing-column": "'amount'", "no-source": "--current"}[case]
    assert expected in err
    assert not (tmp_path / "r" / "drift.json").exists()


@pytest.mark.integration
def test_drift_scores_are_pushed_to_a_real_pushgateway(registry_dir: Path, small_policy: Path,
                                                       data: dict[str, Path], tmp_path: Path) -> None:
    import urllib.request

    with running(PUSHGATEWAY, [], tmp_path) as url:
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


# --- the raw-data methods (wasserstein, ks) against the ECDFs a real training stored ----------------------------

def policy_with(source: Path, folder: Path, **drift_settings: Any) -> Path:
    """`source` with its drift section changed (written under `folder` with the model's file name)."""
    raw = yaml.safe_load(source.read_text())
    raw["drift"].update(drift_settings)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / source.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def copy_of(bundle: Path, folder: Path, name: str, drop: str | None = None) -> Path:
    """The bundle under another training fingerprint (a new registry version), optionally without one file."""
    import shutil

    out = folder / name
    shutil.copytree(bundle, out)
    if drop:
        (out / drop).unlink()
    manifest = json.loads((out / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key)
    manifest["fingerprint"] = f"{manifest['fingerprint']}-{name}"
    _bundle.write_manifest(out, manifest)
    return out


@pytest.fixture(scope="module")
def trained_registry(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real trained bundle as the production version (v1)."""
    root = tmp_path_factory.mktemp("trained-registry")
    registry = Registry.open(str(root / "registry"))
    registry.register(MODEL, copy_of(trained.bundle, root, "current"), passed=True, gate_report={"passed": True})
    registry.promote(MODEL, 1, "production")
    return root / "registry"


def run_step(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "steps.drift", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


SHIFTED_NUMBERS = ("amount", "account_age_days", "customer_age", "hour", "utilization", "txn_count_1h")
UNSHIFTED_NUMBERS = ("day_of_week", "avg_amount_7d", "days_since_last_txn", "credit_limit", "failed_logins_24h",
                     "distance_from_last_txn_km", "device_age_days")


@pytest.mark.parametrize(("method", "threshold"), [("wasserstein", 0.1), ("ks", 0.001)])
def test_raw_methods_flag_the_shifted_features_and_not_the_unshifted_ones_through_the_step(
        method: str, threshold: float, trained: Trained, trained_registry: Path, data: dict[str, Path],
        tmp_path: Path) -> None:
    assert set(SHIFTED_NUMBERS) <= set(DRIFTED_FEATURES) and not set(UNSHIFTED_NUMBERS) & set(DRIFTED_FEATURES)
    policy = policy_with(trained.policy, tmp_path / "gates", method=method, threshold=threshold, min_samples=2000)
    argv = ["--model", MODEL, "--registry", str(trained_registry), "--policy", str(policy)]
    done = run_step(*argv, "--current", str(data["drifted"]), "--report-dir", str(tmp_path / "drifted"))
    assert done.returncode == 0, done.stderr
    # The control, in this process (the command line is the same code): undrifted data flags nothing.
    assert drift.main([*argv, "--current", str(data["same"]), "--report-dir", str(tmp_path / "same")]) == 0
    reports = {name: json.loads((tmp_path / name / "drift.json").read_text()) for name in ("drifted", "same")}
    features = {name: {f["name"]: f for f in r["features"]} for name, r in reports.items()}
    for name in (*SHIFTED_NUMBERS, *UNSHIFTED_NUMBERS):
        assert features["drifted"][name]["method"] == method
        assert features["drifted"][name]["count"] == 4000
    assert {n for n in SHIFTED_NUMBERS if features["drifted"][n]["drifted"]} == set(SHIFTED_NUMBERS)
    assert {n for n in UNSHIFTED_NUMBERS if features["drifted"][n]["drifted"]} == set()
    assert not any(features["same"][n]["drifted"] for n in (*SHIFTED_NUMBERS, *UNSHIFTED_NUMBERS))
    assert reports["drifted"]["decision"] == "retrain" and reports["same"]["decision"] == "no_retrain"
    # A categorical feature takes the method's binned companion, so one threshold keeps one meaning.
    assert features["drifted"]["channel"]["method"] == CATEGORICAL_METHOD[method]


def test_a_version_trained_without_reference_ecdfs_refuses_a_raw_method_and_says_to_retrain(
        trained: Trained, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry.open(str(tmp_path / "registry"))
    legacy = copy_of(trained.bundle, tmp_path, "legacy", drop=ECDF_FILE)
    registry.register(MODEL, legacy, passed=True, gate_report={"passed": True})
    registry.promote(MODEL, 1, "production")
    for method in ("ks", "wasserstein"):
        policy = policy_with(trained.policy, tmp_path / method, method=method, threshold=0.01, min_samples=2000)
        code = drift.main(["--model", MODEL, "--registry", registry.location, "--policy", str(policy),
                           "--current", str(data["drifted"]), "--report-dir", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"drift.method {method!r}" in err and "retrain the model" in err
        assert ECDF_FILE in err and f"{MODEL} v1" in err
        assert not (tmp_path / "r").exists()
    # The binned methods need only profile.json: the same version still checks.
    policy = policy_with(trained.policy, tmp_path / "psi", method="psi", min_samples=2000)
    assert drift.main(["--model", MODEL, "--registry", registry.location, "--policy", str(policy),
                       "--current", str(data["drifted"]), "--report-dir", str(tmp_path / "r")]) == 0


def test_a_tampered_reference_ecdf_file_is_refused(trained: Trained, data: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry.open(str(tmp_path / "registry"))
    registry.register(MODEL, copy_of(trained.bundle, tmp_path, "v1"), passed=True, gate_report={"passed": True})
    registry.promote(MODEL, 1, "production")
    stored = tmp_path / "registry" / "models" / MODEL / "versions" / "1" / ECDF_FILE
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    policy = policy_with(trained.policy, tmp_path / "gates", method="ks", threshold=0.01, min_samples=2000)
    argv = ["--model", MODEL, "--registry", registry.location, "--policy", str(policy), "--current",
            str(data["drifted"]), "--report-dir", str(tmp_path / "r")]
    assert drift.main(argv) == 2
    assert f"{ECDF_FILE} does not match its sha256 in bundle.json" in capsys.readouterr().err


# --- Prometheus through prometheus-api-client --------------------------------------------------------------

class Answering:
    """A real HTTP server on 127.0.0.1 answering every GET with `status` and `body`; counts the requests."""

    def __init__(self, status: int, body: bytes):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_unreachable_prometheus_is_exit_3_naming_it_and_prometheus_url_is_the_default_source(
        registry_dir: Path, small_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.delenv("MLOPS_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("PROMETHEUS_URL", down)
    argv = ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
            "--report-dir", str(tmp_path / "r")]
    assert drift.main(argv) == 3
    err = capsys.readouterr().err
    assert f"prometheus {down}: unreachable" in err
    # MLOPS_PROMETHEUS_URL comes first.
    other = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLOPS_PROMETHEUS_URL", other)
    assert drift.main(argv) == 3
    assert f"prometheus {other}: unreachable" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_prometheus_answering_5xx_is_transient_exit_3_after_a_short_retry(
        registry_dir: Path, small_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = Answering(503, b'{"status":"error","errorType":"unavailable","error":"too many queries"}')
    try:
        argv = ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
                "--prometheus", failing.url, "--report-dir", str(tmp_path / "r")]
        assert drift.main(argv) == 3
        assert failing.requests == 1 + sources.PROMETHEUS_RETRIES
    finally:
        failing.close()
    err = capsys.readouterr().err
    assert f"prometheus {failing.url}: HTTP 503: unavailable: too many queries" in err


def test_an_answer_that_is_not_prometheus_json_is_exit_2(registry_dir: Path, small_policy: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    page = Answering(200, b"<html>a login page</html>")
    try:
        argv = ["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
                "--prometheus", page.url, "--report-dir", str(tmp_path / "r")]
        assert drift.main(argv) == 2
    finally:
        page.close()
    assert f"prometheus {page.url}: the answer is not JSON" in capsys.readouterr().err


@pytest.mark.integration
def test_a_query_a_real_prometheus_refuses_is_exit_2_with_its_error(registry_dir: Path, small_policy: Path,
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A window Prometheus cannot use (the policy loader allows 0s; PromQL does not) is the user's to fix."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    with prometheus(config, tmp_path) as url:
        policy = policy_with(small_policy, tmp_path / "gates", window="0s")
        code = drift.main(["--model", MODEL, "--registry", str(registry_dir), "--policy", str(policy),
                           "--prometheus", url, "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"prometheus {url}: the query was refused (HTTP 400: bad_data:" in err
    assert "duration must be greater than 0" in err and "[0s]" in err


# --- the servers' own /metrics pages, read directly ---------------------------------------------------------

@dataclass
class Servers:
    registry: str
    policy: Path
    production: list[ServerProcess]  # two servers of v2, the production version
    other: ServerProcess  # a server of v1
    rows: int  # drifted rows each production server scored


@pytest.fixture(scope="module")
def servers(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Real `python -m steps.serve` processes (as `mlops deploy` starts them) for the production version (two of
    them, like two pods) and for another version, each having scored drifted traffic."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("metrics-url")
    registry = Registry.open(str(root / "registry"))
    for name in ("one", "two"):
        registry.register(MODEL, copy_of(trained.bundle, root, name), passed=True, gate_report={"passed": True})
    registry.promote(MODEL, 2, "production")
    policy = policy_with(trained.policy, root / "gates", min_samples=2000)
    started: list[ServerProcess] = []
    try:
        for version in (2, 2, 1):
            started.append(ServerProcess(MODEL, version, registry.location, "stable"))
        for server in started:
            server.wait_ready()
        features = load_policy(policy).data.feature_names
        rows = 1200
        with ThreadPoolExecutor(max_workers=3) as pool:
            codes = list(pool.map(lambda pair: _score(pair[0], generate(rows, seed=pair[1], drift=0.8)[features]),
                                  zip(started, (31, 32, 33), strict=True)))
        assert codes == [{200}] * 3
        yield Servers(registry.location, policy, started[:2], started[2], rows)
    finally:
        for server in started:
            server.stop()


def _score(server: ServerProcess, frame: Any) -> set[int]:
    import urllib.error
    import urllib.request

    instances = json.loads(frame.to_json(orient="records"))
    codes = set()
    for i in range(0, len(instances), 100):
        request = urllib.request.Request(f"{server.url}/v1/models/{MODEL}:predict",
                                         data=json.dumps({"instances": instances[i:i + 100]}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                codes.add(answer.status)
        except urllib.error.HTTPError as err:
            codes.add(err.code)
    return codes


@pytest.mark.integration
def test_metrics_urls_sum_the_production_version_over_real_servers_and_trigger_a_retrain(
        servers: Servers, hook: Hook, token_file: Path, tmp_path: Path) -> None:
    urls = [f"{s.url}/metrics" for s in (*servers.production, servers.other)]
    done = run_step("check", "--model", MODEL, "--registry", servers.registry, "--policy", str(servers.policy),
                    *(flag for url in urls for flag in ("--metrics-url", url)), "--webhook", hook.url,
                    "--token-file", str(token_file), "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    # Both production servers' rows, exactly (counters, not a sample), and none of the other version's.
    assert report["production_version"] == 2
    assert report["samples"] == 2 * servers.rows
    assert {f["count"] for f in report["features"]} == {2 * servers.rows}
    assert report["decision"] == "retrain" and report["trigger"]["status"] == "sent"
    assert {"amount", "channel", "entry_mode"} <= set(report["drifted_features"])
    assert "region" not in report["drifted_features"]
    assert urls[0] in report["source"] and "since each server started" in report["source"]
    assert len(hook.requests) == 1 and hook.requests[0]["body"]["samples"] == 2 * servers.rows


@pytest.mark.integration
@pytest.mark.parametrize("case", ["other-version-only", "not-found", "unreachable", "raw-method"])
def test_metrics_url_problems_exit_with_a_clear_error(case: str, servers: Servers, trained: Trained,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = servers.policy
    url = f"{servers.production[0].url}/metrics"
    if case == "other-version-only":
        url = f"{servers.other.url}/metrics"
    elif case == "not-found":
        url = f"{servers.production[0].url}/metrics/canary"
    elif case == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/metrics"
    else:
        policy = policy_with(trained.policy, tmp_path / "gates", method="ks", threshold=0.01, min_samples=10)
    argv = ["--model", MODEL, "--registry", servers.registry, "--policy", str(policy), "--metrics-url", url,
            "--report-dir", str(tmp_path / "r")]
    code = drift.main(argv)
    err = capsys.readouterr().err
    expected = {
        "other-version-only": (2, f"no model_feature_bin_total for {MODEL} v2 (the production version) there: the "
                                  + "pages have only versions ['1']"),
        "not-found": (2, f"metrics {url}: HTTP 404"),
        "unreachable": (3, f"metrics {url}: unreachable"),
        "raw-method": (2, "drift.method 'ks' compares raw values"),
    }[case]
    assert (code, expected[1] in err) == (expected[0], True), err
    assert not (tmp_path / "r").exists()


def test_only_one_source_at_a_time(registry_dir: Path, small_policy: Path, data: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        drift.main(["--model", MODEL, "--registry", str(registry_dir), "--policy", str(small_policy),
                    "--current", str(data["same"]), "--metrics-url", "http://127.0.0.1:1/metrics"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
