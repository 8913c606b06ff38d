"""The monitoring resources against real parts: a real Prometheus scraping a real model server (the trained
reference model, serving real traffic) and a real Pushgateway that the real drift and register steps pushed to,
with the rendered PrometheusRule's groups loaded as its rule file. Every Grafana dashboard query and every alert
expression runs; the ones a person looks at first return data; the rules load healthy; and a rejected candidate
raises TrainingCandidateRejected, its annotation naming the version Prometheus read from the Pushgateway."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import drift, register
from steps._canary.local.servers import ServerProcess
from steps._core.data import generate
from steps._core.policy import Policy, load_policy
from steps._storage.registry import Registry
from tests.support.models import Trained, candidate
from tests.support.processes import PUSHGATEWAY, prometheus, running
from tests.support.serving import post_predictions
from workflows.monitoring.alerts import build_prometheus_rule, rule_expressions, rule_file
from workflows.monitoring.dashboard import build_dashboard, dashboard_queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 600  # scored rows: above the drift check's min_samples below
PER_REQUEST = 4
GATES: Any = [
    {"name": "accuracy", "passed": True, "status": "pass", "value": 0.95},
    {"name": "pr_auc", "passed": True, "status": "pass", "value": 0.71},
    {"name": "feature_importance_stability", "passed": True, "status": "skipped", "value": None},
]


@dataclass
class Stack:
    policy: Policy
    prometheus: str
    pushgateway: str
    codes: list[int]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _query(url: str, promql: str) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = _get(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}")
        return answer
    except urllib.error.HTTPError as err:  # a query Prometheus refuses: its 400 and the error it names
        refused: dict[str, Any] = json.loads(err.read())
        return refused


def _wait_for(url: str, promql: str, ready: Callable[[list[Any]], bool], what: str, timeout: float = 30) -> None:
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            result = _query(url, promql)["data"]["result"]
        except (OSError, KeyError) as err:
            last = repr(err)
        else:
            if ready(result):
                return
            last = repr(result)
        time.sleep(0.5)
    raise AssertionError(f"Prometheus: {what} not seen after {timeout:.0f}s ({promql!r} -> {last})")


def _register(root: Path, trained: Trained, name: str, passed: bool, policy: Policy, registry: str,
              pushgateway: str) -> int:
    gates = GATES if passed else [{**GATES[1], "passed": False, "status": "fail", "value": 0.2}, GATES[0]]
    report = root / f"gate-{name}.json"
    report.write_text(json.dumps({"model": policy.model_name, "passed": passed, "candidate": {}, "gates": gates,
                                  "failed": [] if passed else ["pr_auc"],
                                  "skipped": ["feature_importance_stability"] if passed else []}))
    return register.main(["--bundle", str(candidate(trained, root, name)), "--gate-report", str(report),
                          "--model", policy.model_name, "--registry", registry, "--pushgateway", pushgateway])


def _predict(server: ServerProcess, model: str, rows: list[dict[str, Any]]) -> list[int]:
    bodies = [json.dumps({"instances": rows[i:i + PER_REQUEST]}).encode() for i in range(0, len(rows), PER_REQUEST)]
    bodies += [b'{"instances": [{"amount": "lots"}]}'] * 5  # a client's mistake: 422s, counted by code
    return post_predictions(server.url, model, bodies)


@pytest.fixture(scope="module")
def stack(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("monitoring")
    raw = yaml.safe_load(trained.policy.read_text())
    raw["drift"]["min_samples"] = ROWS // 2
    (root / "gates").mkdir()
    policy_path = root / "gates" / trained.policy.name
    policy_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    policy = load_policy(policy_path)
    model, location = policy.model_name, str(root / "registry")
    with running(PUSHGATEWAY, [], root) as pushgateway:
        # v1 passes its gates and goes to production (what the server serves and the drift check reads).
        assert _register(root, trained, "one", True, policy, location, pushgateway) == 0
        Registry.open(location).promote(model, 1, "production")
        server = ServerProcess(model, 1, location, "stable")
        try:
            (root / "rules.yml").write_text(yaml.safe_dump(rule_file(build_prometheus_rule([policy])),
                                                           sort_keys=False))
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(root / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "model-servers", "static_configs": [
                        {"targets": [f"127.0.0.1:{server.port}"], "labels": {"role": "stable"}}]},
                    # As kube-prometheus-stack scrapes a Pushgateway: the pushed job and model labels kept.
                    {"job_name": "pushgateway", "honor_labels": True, "static_configs": [
                        {"targets": [pushgateway.removeprefix("http://")]}]},
                ],
            }
            (root / "prometheus.yml").write_text(yaml.safe_dump(config))
            with prometheus(root / "prometheus.yml", root) as url:
                server.wait_ready()
                # Traffic only once Prometheus holds the server's zeros, so increase() counts all of it.
                _wait_for(url, 'up{job="model-servers"} == 1', bool, "the model server scraped")
                frame = generate(ROWS, seed=5)
                rows = json.loads(frame[[f.name for f in policy.data.features]].to_json(orient="records"))
                codes = _predict(server, model, rows)
                # The drift check of the production version on the server's own counters, pushed by the step.
                assert drift.main(["--model", model, "--registry", location, "--policy", str(policy_path),
                                   "--metrics-url", f"{server.url}/metrics", "--report-dir", str(root / "drift"),
                                   "--pushgateway", pushgateway]) == 0
                # v2 is rejected by its gates: the register step records it, exits 1 and pushes passed 0.
                assert _register(root, trained, "two", False, policy, location, pushgateway) == 1
                requests = len(rows) // PER_REQUEST
                _wait_for(url, f'sum(increase(model_requests_total{{model="{model}", code="200"}}[5m]))',
                          lambda r: bool(r) and float(r[0]["value"][1]) >= 0.95 * requests, "the traffic")
                _wait_for(url, f'mlops_training_registered_version{{model="{model}"}} == 2', bool, "v2's push")
                _wait_for(url, f'mlops_drift_samples{{model="{model}"}}', bool, "the drift check's push")
                yield Stack(policy, url, pushgateway, codes)
        finally:
            server.stop()


def test_every_dashboard_query_and_alert_expression_runs(stack: Stack) -> None:
    queries = dashboard_queries(build_dashboard([stack.policy]))
    expressions = rule_expressions(build_prometheus_rule([stack.policy]))
    assert len(queries) > 20 and len(expressions) == 9
    refused = {q: answer.get("error") for q in [*queries, *expressions]
               if (answer := _query(stack.prometheus, q)).get("status") != "success"}
    assert refused == {}


def test_the_key_panels_show_the_traffic_latency_drift_and_gate_verdicts(stack: Stack) -> None:
    assert stack.codes.count(200) == ROWS // PER_REQUEST and stack.codes.count(422) == 5
    queries = dashboard_queries(build_dashboard([stack.policy]))

    def results(where: Callable[[str], bool]) -> list[dict[str, Any]]:
        [query] = [q for q in queries if where(q)]
        found: list[dict[str, Any]] = _query(stack.prometheus, query)["data"]["result"]
        return found

    rate = results(lambda q: q.startswith("sum by (model_version, role, protocol) (rate(model_requests_total"))
    assert {(r["metric"]["model_version"], r["metric"]["role"], r["metric"]["protocol"]) for r in rate} == {
        ("1", "stable", "http")}
    client_errors = results(lambda q: 'code=~"[45].."' in q)  # every code's series is there, most at 0
    assert {r["metric"]["code"] for r in client_errors if float(r["value"][1]) > 0} == {"422"}
    [p95] = results(lambda q: q.startswith("histogram_quantile(0.95, sum by (le, model_version, role)")
                    and "duration" in q)
    assert 0 < float(p95["value"][1]) < 10_000  # milliseconds
    [share] = results(lambda q: q.startswith("max by (model_version) (mlops_drift_share"))
    assert share["metric"]["model_version"] == "1" and 0 <= float(share["value"][1]) <= 1
    assert len(results(lambda q: q.startswith("max by (feature, method) (mlops_drift_score"))) == len(
        stack.policy.data.features)
    [since] = results(lambda q: q.startswith("time() - max(mlops_drift_last_run_timestamp_seconds"))
    assert 0 <= float(since["value"][1]) < 120  # seconds since the check that just ran
    # The last training's gates: v2's, pushed by register when the gates rejected it.
    verdicts = {r["metric"]["gate"]: r["value"][1] for r in results(lambda q: "mlops_gate_passed" in q)}
    assert verdicts == {"pr_auc": "0", "accuracy": "1"}
    [passed] = results(lambda q: q.startswith("max(mlops_training_passed"))
    assert passed["value"][1] == "0"


def test_the_rules_load_healthy_and_a_rejected_candidate_raises_its_alert(stack: Stack) -> None:
    model = stack.policy.model_name

    def evaluated(groups: list[Any]) -> bool:
        # A rule not evaluated yet has Go's zero time, 0001-01-01.
        return bool(groups) and all(not r["lastEvaluation"].startswith("0001") for g in groups for r in g["rules"])

    deadline = time.monotonic() + 30  # for both waits
    while not evaluated(groups := _get(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]):
        assert time.monotonic() < deadline, groups
        time.sleep(0.5)
    assert [g["name"] for g in groups] == [f"argo-mlops.{model}"]
    assert {r["name"]: r["health"] for r in groups[0]["rules"]} == {
        name: "ok" for name in ("ModelServerErrorRatio", "ModelServerLatencyP95", "ModelServerNoTraffic",
                                "ModelServerRestarting", "ModelDriftShareHigh", "DriftCheckFailing",
                                "DriftCheckStale", "TrainingWorkflowFailing", "TrainingCandidateRejected")}

    def alerts() -> dict[str, Any]:
        return {a["labels"]["alertname"]: a for a in _get(f"{stack.prometheus}/api/v1/alerts")["data"]["alerts"]}

    while "TrainingCandidateRejected" not in (active := alerts()):  # the next evaluation after v2's push
        assert time.monotonic() < deadline, active
        time.sleep(0.5)
    rejected = active.pop("TrainingCandidateRejected")
    assert (rejected["state"], rejected["labels"]["severity"]) == ("firing", "info")
    assert rejected["annotations"]["summary"] == f"{model}: the last training's candidate v2 was rejected"
    # Healthy traffic, a fresh drift check: nothing else to say (the latency alert waits for its `for`).
    assert {name: a["state"] for name, a in active.items() if name != "ModelServerLatencyP95"} == {}

