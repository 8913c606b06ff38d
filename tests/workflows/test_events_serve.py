"""`mlops events serve` as Argo Events runs a Sensor's trigger: its `rateLimit`, read from the rendered Sensor,
delays a trigger beyond the rate (never drops it), and the runs get the registry and the policy file they were
given. Real HTTP on 127.0.0.1, a real (tiny) template run by the local runner."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.workflows import container, workflow
from workflows import events
from workflows.local import events as events_serve

from .test_events import MODEL, PARAMS, TINY_CODE, TOKEN, Served, alert

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "gates" / f"{MODEL}.yaml"


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
    spacing = events_serve.RATE_UNITS[limit["unit"]] / limit["requestsPerUnit"]
    limiter = events_serve.RateLimiter.from_trigger(trigger, "the Sensor")
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
    burst = [limiter.take() for _ in range(events_serve.RATE_LIMIT_SLACK + 1)]
    assert burst == [0.0] * (events_serve.RATE_LIMIT_SLACK + 1)
    assert limiter.take() == pytest.approx(spacing)


@pytest.mark.parametrize(("rate_limit", "message"), [
    ({"unit": "Day", "requestsPerUnit": 1}, "rateLimit.unit 'Day': must be one of Second, Minute, Hour"),
    ({"unit": "Second", "requestsPerUnit": 0}, "rateLimit.requestsPerUnit 0: must be an integer of at least 1"),
], ids=["unit", "zero-requests"])
def test_a_rate_limit_argo_events_cannot_run_is_refused_naming_it(rate_limit: dict[str, Any], message: str) -> None:
    with pytest.raises(events_serve.SensorError, match=message) as error:
        events_serve.Sensors([rendered_sensor(rate_limit)])
    assert f"Sensor {MODEL}-retrain, trigger submit-training" in str(error.value)


def test_a_trigger_without_a_rate_limit_is_not_limited() -> None:
    sensors = events_serve.Sensors([rendered_sensor(None)])
    decisions = [sensors.handle({"body": alert(idempotency_key=f"{i:012x}"), "header": {}}) for i in range(20)]
    assert {d.status for d in decisions} == {"submitted"} and {d.delay for d in decisions} == {0.0}


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, Any]], Served]]:
    """Start `events serve` for one rendered Sensor; runs go to a tiny template that records its parameters."""
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "ran.jsonl"
    args = [str(record), *(f"{{{{workflow.parameters.{p}}}}}" for p in PARAMS)]
    doc = workflow([{"name": "train", "template": "record"}], [container("record", TINY_CODE, args=args)],
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
        server = events_serve.make_server("127.0.0.1", 0, TOKEN, events_serve.Sensors([sensor]), runs, log=log.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            runs.stop()

        stops.append(stop)
        return Served(f"http://127.0.0.1:{server.server_address[1]}", runs, log, record)

    yield start
    for stop in stops:
        stop()


@pytest.mark.integration
def test_two_alerts_inside_one_rate_unit_start_their_workflows_a_unit_apart_and_both_run(serve) -> None:  # type: ignore[no-untyped-def]
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
def test_without_the_rate_limit_the_same_two_alerts_start_back_to_back(serve) -> None:  # type: ignore[no-untyped-def]
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
    decision = events_serve.Sensors.from_policies([elsewhere]).handle(
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

    from tests.conftest import free_port

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
