"""The retraining loop's resources (CronWorkflow, EventSource, Sensor) and `mlops events serve`, the local stand-in
for the EventSource and the Sensors, over real HTTP on 127.0.0.1 running a real (tiny) template locally."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.processes import PROMETHEUS, free_port
from tests.support.processes import prometheus as start_prometheus
from tests.support.workflows import container, workflow
from workflows import events, render
from workflows._schemas import Schemas
from workflows.local import events as events_serve

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fraud-detection"
TOKEN = "local-token"


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    return load_policy(ROOT / "gates" / f"{MODEL}.yaml")


@pytest.fixture(scope="module")
def other_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model with its own schedule and window: nothing may be hard-wired to fraud-detection."""
    text = (ROOT / "gates" / f"{MODEL}.yaml").read_text().replace("model_name: fraud-detection", "model_name: churn")
    text = text.replace('schedule: "0 * * * *"', 'schedule: "*/30 * * * *"').replace("window: 1h", "window: 2h")
    path = tmp_path_factory.mktemp("gates") / "churn.yaml"
    path.write_text(text)
    return path


def test_rendered_cron_event_source_and_sensor_validate_against_the_schemas(policy, other_policy, schemas_dir):
    schemas = Schemas(schemas_dir)
    for p in (policy, load_policy(other_policy)):
        for doc in (events.build_cron_workflow(p), events.build_sensor(p)):
            assert schemas.validate(doc) == [], doc["kind"]
    assert schemas.validate(events.build_event_source()) == []


def test_cron_workflow_runs_the_drift_step_on_the_policy_schedule_one_at_a_time(other_policy):
    cron = events.build_cron_workflow(load_policy(other_policy))
    spec = cron["spec"]
    assert cron["metadata"]["name"] == "churn-drift"
    assert spec["schedules"] == ["*/30 * * * *"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600  # half the 2h window
    wf = spec["workflowSpec"]
    assert wf["serviceAccountName"] == "mlops-drift"
    c = wf["templates"][0]["container"]
    assert c["command"] == ["python", "-m", "steps.drift"]
    args = dict(zip(c["args"][::2], c["args"][1::2], strict=True))
    assert args["--policy"] == "/etc/mlops/policy/churn.yaml"
    # The token is a mounted file from the Secret, never a value on the command line.
    assert args["--token-file"] == "/etc/mlops/webhook/token"
    secret = next(v for v in wf["volumes"] if v["name"] == "webhook-token")["secret"]
    assert secret["secretName"] == "mlops-webhook-token" and secret["items"][0]["key"] == "token"
    env = {e["name"]: e for e in c["env"]}
    assert env["MLOPS_REGISTRY"]["valueFrom"]["configMapKeyRef"] == {"name": "mlops-config", "key": "registry"}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "mlops-s3"
    assert wf["templates"][0]["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 3"


def test_event_source_is_the_authenticated_webhook_and_base_ships_it():
    source = events.build_event_source()
    hook = source["spec"]["webhook"]["drift"]
    assert hook["port"] == "12000" and hook["endpoint"] == "/drift" and hook["method"] == "POST"
    assert hook["authSecret"] == {"name": "mlops-webhook-token", "key": "token"}
    shipped = ROOT / "manifests" / "base" / "mlops-webhook-eventsource.yaml"
    assert yaml.safe_load(shipped.read_text()) == source, "base/ is stale: regenerate it from build_event_source"
    base = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    assert shipped.name in base["resources"]


def test_sensor_filters_on_the_body_and_maps_it_to_the_training_parameters_as_designed(other_policy):
    sensor = events.build_sensor(load_policy(other_policy))
    assert sensor["metadata"]["name"] == "churn-retrain"
    assert sensor["spec"]["template"]["serviceAccountName"] == "mlops-sensor"
    dependency = sensor["spec"]["dependencies"][0]
    assert dependency["eventSourceName"] == "mlops-webhook" and dependency["eventName"] == "drift"
    filters = {f["path"]: f["value"] for f in dependency["filters"]["data"]}
    assert filters == {"body.reason": ["^automated_drift_detection$"], "body.model": ["^churn$"]}
    trigger = sensor["spec"]["triggers"][0]
    assert trigger["rateLimit"]["requestsPerUnit"] >= 1
    argo = trigger["template"]["argoWorkflow"]
    assert argo["operation"] == "submit"
    resource = argo["source"]["resource"]
    assert resource["kind"] == "Workflow"
    assert resource["spec"]["workflowTemplateRef"] == {"name": "churn-training"}
    # Each body key lands in the parameter of DESIGN.md's table, and the name comes from the idempotency key.
    params = [p["name"] for p in resource["spec"]["arguments"]["parameters"]]
    mapped = {}
    for parameter in argo["parameters"]:
        src, dest = parameter["src"], parameter["dest"]
        if dest.startswith("spec.arguments.parameters."):
            mapped[src["dataKey"]] = params[int(dest.split(".")[3])]
        if dest == "metadata.name":
            assert src["dataTemplate"] == "churn-retrain-{{ .Input.body.idempotency_key }}"
    assert mapped == {"body.model": "model", "body.reason": "reason", "body.drifted_features": "drifted-features",
                      "body.idempotency_key": "idempotency-key", "body.production_version": "baseline-version"}
    # Every mapped parameter is one the training template declares.
    from workflows.training import workflow_parameters

    assert set(params) <= {p.name for p in workflow_parameters(load_policy(other_policy))}


# --- mlops events serve -------------------------------------------------------------------------------------

TINY_CODE = "import json, sys; open(sys.argv[1], 'a').write(json.dumps(sys.argv[2:]) + '\\n')"
PARAMS = ["model", "reason", "drifted-features", "idempotency-key", "baseline-version"]


class Served:
    def __init__(self, url: str, runs: events_serve.Runs, log: list[str], record: Path):
        self.url, self.runs, self.log, self.record = url, runs, log, record

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
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def served(tmp_path: Path, other_policy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """`events serve` for fraud-detection and churn on a free port; runs go to a tiny stand-in template that
    records its parameters, named as the Sensor's workflowTemplateRef."""
    monkeypatch.chdir(tmp_path)  # the local runner's .mlops/runs go here
    record = tmp_path / "ran.jsonl"
    args = [str(record), *(f"{{{{workflow.parameters.{p}}}}}" for p in PARAMS)]
    doc = workflow([{"name": "train", "template": "record"}], [container("record", TINY_CODE, args=args)],
                   arguments={"parameters": [{"name": p, "value": ""} for p in PARAMS]})
    doc["metadata"]["name"] = f"{MODEL}-training"
    template = tmp_path / "tiny-training.yaml"
    template.write_text(yaml.safe_dump(doc, sort_keys=False))
    log: list[str] = []
    sensors = events_serve.Sensors.from_policies([ROOT / "gates" / f"{MODEL}.yaml", other_policy])
    runs = events_serve.Runs(tmp_path / "state", template_file=template, log=log.append)
    (tmp_path / "state").mkdir()
    runs.start()
    server = events_serve.make_server("127.0.0.1", 0, TOKEN, sensors, runs, log=log.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", runs, log, record)
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
    from_file = events_serve.Sensors([committed]).handle(event)
    built = events_serve.Sensors.from_policies([ROOT / "gates" / f"{MODEL}.yaml"]).handle(event)
    assert from_file.status == built.status == "submitted"
    assert from_file.workflow == built.workflow
    wf = built.workflow
    assert wf is not None
    assert wf["metadata"]["annotations"]["argo-mlops.io/drift-share"] == "0.52"
    assert wf["metadata"]["annotations"]["argo-mlops.io/drift-window"] == "1h"


def test_an_alert_missing_the_idempotency_key_submits_nothing(policy):
    body = alert()
    del body["idempotency_key"]
    decision = events_serve.Sensors([events.build_sensor(policy)]).handle({"body": body, "header": {}})
    assert decision.status == "error" and "idempotency_key" in decision.detail


def test_render_adds_cron_and_sensor_to_each_model(policy):
    docs = render.render_documents(policy)
    assert docs["drift-cronworkflow.yaml"]["kind"] == "CronWorkflow"
    assert docs["retrain-sensor.yaml"]["kind"] == "Sensor"


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
    record = registry.register(MODEL, bundle, passed=True, gate_report={"passed": True})
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
        query = f"{url}/api/v1/query?query=" + urllib.request.quote(
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
