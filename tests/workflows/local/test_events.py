"""`mlops events serve` (workflows/local/events.py, its Sensors in workflows/local/sensors.py), the local stand-in
for the EventSource and the Sensors, over real HTTP on 127.0.0.1 running a real (tiny) template locally: the token,
the Sensors' filters and mapping (read from the rendered or the committed Sensor), the trigger's `rateLimit` as Argo
Events runs it (a trigger beyond the rate is delayed, never dropped), the registry and the policy file passed on to
the runs, the command line, and a retrain started by drift that a real Prometheus saw in served bin counters."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.paths import ROOT
from tests.support.processes import PROMETHEUS, free_port
from tests.support.processes import prometheus as start_prometheus
from tests.support.workflows import container, workflow
from workflows import events
from workflows.local import events as events_serve
from workflows.local import sensors as local_sensors

MODEL = "fraud-detection"
TOKEN = "local-token"
POLICY = ROOT / "gates" / f"{MODEL}.yaml"
# Records the parameters it was given as its output parameter `args` (run.json keeps it).
TINY_CODE = "import json, sys; open('/tmp/args', 'w').write(json.dumps(sys.argv[1:]))"
TINY_OUTPUTS = {"parameters": [{"name": "args", "valueFrom": {"path": "/tmp/args"}}]}
PARAMS = ["model", "reason", "drifted-features", "idempotency-key", "baseline-version"]


class Served:
    def __init__(self, url: str, runs: events_serve.Runs, log: list[str], folder: Path):
        self.url, self.runs, self.log, self.folder = url, runs, log, folder

    def post(self, body: Any, token: str | None = TOKEN, path: str = "/drift") -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def wait_idle(self, timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(self.url + "/runs", timeout=5) as response:
                runs = json.load(response)["runs"]
            if runs and all(s not in ("Pending", "Running") for s in runs.values()):
                return dict(runs)
            time.sleep(0.2)
        raise AssertionError(f"runs still going after {timeout}s: {runs}")

    def recorded(self) -> list[list[str]]:
        """The parameters each finished run of the stand-in template was given, in the order the runs started."""
        found = []
        for run_json in sorted(self.folder.glob(".mlops/runs/*/run.json")):
            task = json.loads(run_json.read_text()).get("tasks", {}).get("train") or {}
            args = task.get("outputs", {}).get("parameters", {}).get("args")
            if args is not None:
                found.append(json.loads(args))
        return found


@pytest.fixture
def served(tmp_path: Path, other_policy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """`events serve` for fraud-detection and churn on a free port; runs go to a tiny stand-in template that
    records its parameters, named as the Sensor's workflowTemplateRef."""
    monkeypatch.chdir(tmp_path)  # the local runner's .mlops/runs go here
    args = [f"{{{{workflow.parameters.{p}}}}}" for p in PARAMS]
    doc = workflow([{"name": "train", "template": "record"}],
                   [container("record", TINY_CODE, args=args, outputs=TINY_OUTPUTS)],
                   arguments={"parameters": [{"name": p, "value": ""} for p in PARAMS]})
    doc["metadata"]["name"] = f"{MODEL}-training"
    template = tmp_path / "tiny-training.yaml"
    template.write_text(yaml.safe_dump(doc, sort_keys=False))
    log: list[str] = []
    sensors = local_sensors.Sensors.from_policies([ROOT / "gates" / f"{MODEL}.yaml", other_policy])
    runs = events_serve.Runs(tmp_path / "state", template_file=template, log=log.append)
    (tmp_path / "state").mkdir()
    runs.start()
    server = events_serve.make_server("127.0.0.1", 0, TOKEN, sensors, runs, log=log.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", runs, log, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
        runs.stop()


def alert(**overrides: Any) -> dict[str, Any]:
    body = {"model": MODEL, "reason": "automated_drift_detection", "drifted_features": ["amount", "channel"],
            "idempotency_key": "0123456789ab", "production_version": 3, "drift_share": 0.52, "samples": 12000,
            "window": "1h"}
    body.update(overrides)
    return body


@pytest.mark.integration
def test_events_serve_refuses_a_missing_or_wrong_token_with_401(served: Served):
    assert served.post(alert(), token=None)[0] == 401
    assert served.post(alert(), token="wrong")[0] == 401
    assert served.runs.status == {} and served.recorded() == []


@pytest.mark.integration
@pytest.mark.parametrize("change", [{"model": "unknown-model"}, {"reason": "manual"},
                                    {"model": f"{MODEL}-eu"}], ids=["unknown-model", "other-reason", "model-prefix"])
def test_events_serve_ignores_alerts_no_sensor_takes_with_a_log_line(served: Served, change: dict[str, str]):
    code, answer = served.post(alert(**change))
    assert code == 200 and answer["status"] == "ignored"
    assert any(line.startswith("events: ignored:") for line in served.log)
    assert served.runs.status == {}


@pytest.mark.integration
def test_a_valid_alert_runs_training_once_with_the_mapped_parameters_and_a_duplicate_is_refused(served: Served):
    code, answer = served.post(alert())
    assert code == 200 and answer["status"] == "submitted"
    assert answer["workflow"] == f"{MODEL}-retrain-0123456789ab"
    code, again = served.post(alert())
    assert code == 200 and again["status"] == "duplicate"
    assert "AlreadyExists" in again["detail"]
    runs = served.wait_idle()
    assert runs == {f"{MODEL}-retrain-0123456789ab": "Succeeded"}
    assert served.recorded() == [[MODEL, "automated_drift_detection", '["amount", "channel"]', "0123456789ab", "3"]]


def test_the_local_sensor_reads_the_committed_sensor_file_the_same_way():
    """events serve and the cluster use one mapping: the committed YAML gives the same Workflow as the builder."""
    committed = yaml.safe_load((ROOT / "manifests" / "generated" / MODEL / "retrain-sensor.yaml").read_text())
    event = {"body": alert(), "header": {}}
    from_file = local_sensors.Sensors([committed]).handle(event)
    built = local_sensors.Sensors.from_policies([ROOT / "gates" / f"{MODEL}.yaml"]).handle(event)
    assert from_file.status == built.status == "submitted"
    assert from_file.workflow is not None and built.workflow is not None
    # Argo Events labels what it submits: the sensor, the trigger, the time (milliseconds, so it differs here)
    stamps = [w["metadata"]["labels"].pop("events.argoproj.io/action-timestamp") for w in (from_file.workflow,
                                                                                           built.workflow)]
    assert all(stamp.isdigit() for stamp in stamps)
    assert from_file.workflow == built.workflow
    wf = built.workflow
    assert wf["metadata"]["labels"]["events.argoproj.io/sensor"] == committed["metadata"]["name"]
    trigger = committed["spec"]["triggers"][0]["template"]["name"]
    assert wf["metadata"]["labels"]["events.argoproj.io/trigger"] == trigger
    assert wf["metadata"]["annotations"]["argo-mlops.io/drift-share"] == "0.52"
    assert wf["metadata"]["annotations"]["argo-mlops.io/drift-window"] == "1h"


def test_an_alert_missing_the_idempotency_key_submits_nothing(policy):
    body = alert()
    del body["idempotency_key"]
    decision = local_sensors.Sensors([events.build_sensor(policy)]).handle({"body": body, "header": {}})
    assert decision.status == "error" and "idempotency_key" in decision.detail


# --- the Sensor's trigger: rate limit and runs ----------------------------------------------------------------

def rendered_sensor(rate_limit: dict[str, Any] | None) -> dict[str, Any]:
    """The model's Sensor as `mlops compile` renders it, with the trigger's rateLimit replaced (None: removed)."""
    sensor = copy.deepcopy(events.build_sensor(load_policy(POLICY)))
    trigger = sensor["spec"]["triggers"][0]
    trigger.pop("rateLimit", None)
    if rate_limit is not None:
        trigger["rateLimit"] = rate_limit
    return sensor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rendered_rate_limit_spaces_triggers_and_forgives_idle_time_up_to_its_slack() -> None:
    """go.uber.org/ratelimit as Argo Events builds it from the Sensor: one trigger per unit / requestsPerUnit;
    after a quiet spell up to `slack` waits are forgiven, then the spacing is back."""
    trigger = events.build_sensor(load_policy(POLICY))["spec"]["triggers"][0]
    limit = trigger["rateLimit"]
    spacing = local_sensors.RATE_UNITS[limit["unit"]] / limit["requestsPerUnit"]
    limiter = local_sensors.RateLimiter.from_trigger(trigger, "the Sensor")
    assert limiter is not None
    clock = Clock()
    limiter.clock = clock
    # Three at once: the first now, the others each one spacing after the one before (delayed, not dropped).
    assert [limiter.take() for _ in range(3)] == [0.0, spacing, 2 * spacing]
    # Half a spacing later the next one still waits for its turn.
    clock.now += spacing / 2
    assert limiter.take() == pytest.approx(2.5 * spacing)
    # After a long quiet spell, a burst of slack + 1 goes at once; the next waits a spacing again.
    clock.now += 1000 * spacing
    burst = [limiter.take() for _ in range(local_sensors.RATE_LIMIT_SLACK + 1)]
    assert burst == [0.0] * (local_sensors.RATE_LIMIT_SLACK + 1)
    assert limiter.take() == pytest.approx(spacing)


@pytest.mark.parametrize(("rate_limit", "message"), [
    ({"unit": "Day", "requestsPerUnit": 1}, "rateLimit.unit 'Day': must be one of Second, Minute, Hour"),
    ({"unit": "Second", "requestsPerUnit": 0}, "rateLimit.requestsPerUnit 0: must be an integer of at least 1"),
], ids=["unit", "zero-requests"])
def test_a_rate_limit_argo_events_cannot_run_is_refused_naming_it(rate_limit: dict[str, Any], message: str) -> None:
    with pytest.raises(local_sensors.SensorError, match=message) as error:
        local_sensors.Sensors([rendered_sensor(rate_limit)])
    assert f"Sensor {MODEL}-retrain, trigger submit-training" in str(error.value)


def test_a_trigger_without_a_rate_limit_is_not_limited() -> None:
    sensors = local_sensors.Sensors([rendered_sensor(None)])
    decisions = [sensors.handle({"body": alert(idempotency_key=f"{i:012x}"), "header": {}}) for i in range(20)]
    assert {d.status for d in decisions} == {"submitted"} and {d.delay for d in decisions} == {0.0}


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, Any]], Served]]:
    """Start `events serve` for one rendered Sensor; runs go to a tiny template that records its parameters."""
    monkeypatch.chdir(tmp_path)
    args = [f"{{{{workflow.parameters.{p}}}}}" for p in PARAMS]
    doc = workflow([{"name": "train", "template": "record"}],
                   [container("record", TINY_CODE, args=args, outputs=TINY_OUTPUTS)],
                   arguments={"parameters": [{"name": p, "value": ""} for p in PARAMS]})
    doc["metadata"]["name"] = f"{MODEL}-training"
    template = tmp_path / "tiny-training.yaml"
    template.write_text(yaml.safe_dump(doc, sort_keys=False))
    stops: list[Callable[[], None]] = []

    def start(sensor: dict[str, Any]) -> Served:
        log: list[str] = []
        state = tmp_path / f"state-{len(stops)}"
        state.mkdir()
        runs = events_serve.Runs(state, template_file=template, log=log.append)
        runs.start()
        server = events_serve.make_server("127.0.0.1", 0, TOKEN, local_sensors.Sensors([sensor]), runs, log=log.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            runs.stop()

        stops.append(stop)
        return Served(f"http://127.0.0.1:{server.server_address[1]}", runs, log, tmp_path)

    yield start
    for stop in stops:
        stop()


@pytest.mark.integration
def test_two_alerts_inside_one_rate_unit_start_their_workflows_a_unit_apart_and_both_run(
        serve: Callable[[dict[str, Any]], Served]) -> None:
    # The shortest unit Argo Events has, so the test takes seconds, not the rendered Sensor's hour.
    served = serve(rendered_sensor({"unit": "Second", "requestsPerUnit": 1}))
    asked = time.monotonic()
    answers = [served.post(alert(idempotency_key=key)) for key in ("aaaaaaaaaaaa", "bbbbbbbbbbbb")]
    # The webhook answers at once (the event is accepted); the second trigger waits for its turn.
    assert time.monotonic() - asked < 0.9
    assert [(code, a["status"]) for code, a in answers] == [(200, "submitted")] * 2
    assert answers[0][1]["delay_seconds"] == 0.0 and answers[1][1]["delay_seconds"] > 0.9
    first, second = (f"{MODEL}-retrain-{key}" for key in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"))
    assert served.wait_idle() == {first: "Succeeded", second: "Succeeded"}
    assert served.runs.triggered[second] - served.runs.triggered[first] >= 1.0 - 0.01
    assert served.runs.started[second] - served.runs.started[first] >= 1.0 - 0.01
    assert [run[3] for run in served.recorded()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]


@pytest.mark.integration
def test_without_the_rate_limit_the_same_two_alerts_start_back_to_back(
        serve: Callable[[dict[str, Any]], Served]) -> None:
    """The control for the test above: what makes the second workflow wait is the Sensor's rateLimit."""
    served = serve(rendered_sensor(None))
    answers = [served.post(alert(idempotency_key=key)) for key in ("cccccccccccc", "dddddddddddd")]
    assert [a["delay_seconds"] for _, a in answers] == [0.0, 0.0]
    served.wait_idle()
    first, second = (f"{MODEL}-retrain-{key}" for key in ("cccccccccccc", "dddddddddddd"))
    assert served.runs.triggered[second] - served.runs.triggered[first] < 0.5


def test_runs_pass_the_registry_and_the_served_policy_file_on_to_mlops_run(tmp_path: Path) -> None:
    """A policy kept outside gates/ (as `mlops demo` keeps one) reaches the training run, and so does --registry."""
    text = POLICY.read_text().replace(f"model_name: {MODEL}", "model_name: churn")
    elsewhere = tmp_path / "elsewhere" / "churn.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(text)
    decision = local_sensors.Sensors.from_policies([elsewhere]).handle(
        {"body": alert(model="churn", idempotency_key="0123456789ab"), "header": {}})
    assert decision.status == "submitted" and decision.workflow is not None
    runs = events_serve.Runs(tmp_path, registry="s3://models/registry", policies={"churn": elsewhere},
                             dataset="s3://data/churn.parquet")
    command = runs.command(decision.workflow)
    assert command[:5] == [sys.executable, "-m", "workflows", "run", "training"]
    after = command[5:]
    assert after[:4] == ["--model", "churn", "--policy", str(elsewhere)]
    pairs = list(zip(after[4::2], after[5::2], strict=True))
    assert ("--registry", "s3://models/registry") in pairs
    assert ("-p", "dataset=s3://data/churn.parquet") in pairs
    assert ("-p", "idempotency-key=0123456789ab") in pairs and ("-p", "model=churn") in pairs


@pytest.mark.integration
def test_the_command_serves_a_policy_from_another_folder(tmp_path: Path) -> None:
    import os

    policy = tmp_path / "elsewhere" / "churn.yaml"
    policy.parent.mkdir()
    policy.write_text(POLICY.read_text().replace(f"model_name: {MODEL}", "model_name: churn"))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows", "events", "serve", "--port", str(port), "--token-file", str(token),
         "--policy", str(policy), "--registry", str(tmp_path / "registry"), "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"POST http://127.0.0.1:{port}/drift (sensors: churn-retrain)" in first
        client = Served(f"http://127.0.0.1:{port}", None, [], tmp_path / "none")  # type: ignore[arg-type]
        body = alert(model="churn")
        del body["idempotency_key"]  # answered, but nothing runs: the Sensor cannot name the Workflow
        code, answer = client.post(body)
        assert code == 200 and answer["status"] == "error" and "churn-retrain" in answer["detail"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert answer["workflow"] is None and list((tmp_path / "state").iterdir()) == []


# --- the whole loop with a real Prometheus --------------------------------------------------------------------

class Counters:
    """A tiny /metrics server: model_feature_bin_total of a dataset binned against the profile, 0 at the first
    scrape and the full counts from the second on (so Prometheus' increase() sees them all)."""

    def __init__(self, counts: dict[str, dict[str, float]], version: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.scrapes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                factor = 1 if outer.scrapes else 0
                outer.scrapes += 1
                lines = ["# TYPE model_feature_bin_total counter"]
                for feature, bins in counts.items():
                    for label, value in bins.items():
                        lines.append(f'model_feature_bin_total{{model="{MODEL}",model_version="{version}",'
                                     f'feature="{feature}",bin="{label}"}} {value * factor}')
                data = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A real Prometheus on 127.0.0.1 (1 s scrapes); yields its URL and a function starting the scrape target."""
    if not PROMETHEUS.is_file():
        pytest.skip(f"prometheus is not installed at {PROMETHEUS} (Debian package prometheus)")
    port = free_port()
    with ExitStack() as running:

        def start(target: int) -> None:
            config = tmp_path / "prometheus.yml"
            config.write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "model-servers",
                                    "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
            }))
            running.enter_context(start_prometheus(config, tmp_path, port))

        yield f"http://127.0.0.1:{port}", start


def _production_registry(folder: Path, policy_path: Path) -> tuple[Path, dict[str, Any]]:
    from steps._core.data import generate
    from steps._model.bundle import write_manifest
    from steps._model.profile import build_profile
    from steps._storage.registry import Registry

    bundle = folder / "bundle"
    bundle.mkdir()
    profile = build_profile(generate(6000, seed=1), load_policy(policy_path).data.features)
    (bundle / "profile.json").write_text(json.dumps(profile))
    (bundle / "model.skops").write_bytes(b"never loaded by drift")
    write_manifest(bundle, {"model": MODEL, "fingerprint": "e" * 16})
    registry = Registry.open(str(folder / "registry"))
    passed: Any = {"passed": True}  # a part of gate.json, as the registry accepts it
    record = registry.register(MODEL, bundle, passed=True, gate_report=passed)
    registry.promote(MODEL, record["version"], "production")
    return folder / "registry", profile


@pytest.mark.integration
def test_drift_from_prometheus_counters_triggers_one_retrain_through_events_serve(
        served: Served, prometheus: tuple[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Served drifted traffic's bin counters -> scraped by Prometheus -> the drift step reads them, detects the
    drifted features, calls `events serve`, and one (stand-in) training runs; a second check starts none."""
    import re

    from steps import drift
    from steps._core.data import generate
    from steps._drift import binned as _drift

    policy_path = tmp_path / f"{MODEL}.yaml"
    policy_path.write_text(re.sub(r"min_samples: \d+", "min_samples: 2000",
                                  (ROOT / "gates" / f"{MODEL}.yaml").read_text()))
    registry, profile = _production_registry(tmp_path, policy_path)
    vectors = _drift.current_counts(profile, generate(4000, seed=21, drift=0.8))
    counts = {name: {label: float(v) for label, v in zip(_drift.labels(profile["features"][name]), vector,
                                                         strict=True) if v}
              for name, vector in vectors.items()}
    target = Counters(counts, version=1)
    url, start = prometheus
    try:
        start(target.port)
        query = f"{url}/api/v1/query?query=" + urllib.parse.quote(
            f'sum(increase(model_feature_bin_total{{model="{MODEL}",feature="amount"}}[1h]))')
        deadline, total = time.monotonic() + 30, 0.0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(query, timeout=2) as response:
                    result = json.load(response)["data"]["result"]
                total = float(result[0]["value"][1]) if result else 0.0
            except (urllib.error.URLError, ConnectionError):
                total = 0.0
            if total >= 4000:
                break
            time.sleep(0.5)
        assert total >= 4000, f"Prometheus never saw the counters (last total {total}; scrapes {target.scrapes})"

        token = tmp_path / "token"
        token.write_text(TOKEN)
        argv = ["check", "--model", MODEL, "--registry", str(registry), "--policy", str(policy_path),
                "--prometheus", url, "--webhook", served.url + "/drift", "--token-file", str(token)]
        assert drift.main([*argv, "--report-dir", str(tmp_path / "r1")]) == 0
        report = json.loads((tmp_path / "r1" / "drift.json").read_text())
        assert report["decision"] == "retrain" and report["trigger"]["status"] == "sent"
        assert report["samples"] >= 4000
        assert {"amount", "channel", "entry_mode"} <= set(report["drifted_features"])
        assert "region" not in report["drifted_features"]
        runs = served.wait_idle()
        key = report["trigger"]["idempotency_key"]
        assert runs == {f"{MODEL}-retrain-{key}": "Succeeded"}
        ran = served.recorded()
        assert len(ran) == 1 and ran[0][0] == MODEL and json.loads(ran[0][2]) == report["drifted_features"]

        # A second check inside the cooldown starts nothing.
        assert drift.main([*argv, "--report-dir", str(tmp_path / "r2")]) == 0
        second = json.loads((tmp_path / "r2" / "drift.json").read_text())
        assert second["trigger"]["status"] == "cooldown"
        assert len(served.recorded()) == 1 and len(served.runs.status) == 1
    finally:
        target.close()


@pytest.mark.integration
def test_mlops_events_serve_command_answers_401_and_logs_ignored_alerts(tmp_path: Path):
    import subprocess
    import sys

    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows", "events", "serve", "--port", str(port), "--token-file", str(token),
         "--policy", str(ROOT / "gates" / f"{MODEL}.yaml"), "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"POST http://127.0.0.1:{port}/drift" in first and f"{MODEL}-retrain" in first
        client = Served(f"http://127.0.0.1:{port}", None, [], tmp_path / "none")  # type: ignore[arg-type]
        assert client.post(alert(), token=None)[0] == 401
        code, answer = client.post(alert(reason="manual"))
        assert code == 200 and answer["status"] == "ignored"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "events: 401" in out and "events: ignored:" in out and "body.reason is 'manual'" in out
