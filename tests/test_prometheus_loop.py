"""The serving loop's Prometheus half with real components: real `python -m steps.serve` processes (the bad
canaries are the real server with the MLOPS_DEPLOY_CANARY_FAULT faults of tests/support/faults), a real
Prometheus scraping them with the role label the PodMonitor relabelling sets in the cluster, the rendered
AnalysisTemplate's own queries and conditions, and the drift step reading the live bin counters.

One query transformation, and only one: every selector `role="canary"` gets `, scenario="<name>"` so the four
canary scenarios can share one Prometheus (each scenario's targets carry that label; the stable server is listed
once per scenario, so the role selector is what keeps it out). The [5m] windows stay: the series start at 0 at the
first scrape, so increase()/rate() over the few seconds of data this test has are the whole traffic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import drift
from steps._canary.local.servers import ServerProcess
from steps._core.data import generate
from steps._core.policy import Policy, load_policy
from steps._storage.registry import Registry
from tests.support.argo import argo_verdict
from tests.support.faults import FAULT_ENV, inject
from tests.support.models import Trained, candidate
from tests.support.processes import PROMETHEUS, prometheus
from tests.support.serving import post_predictions
from tests.support.webhooks import Hook
from workflows import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARIES = {"good": "", "slow": "latency_ms=150", "failing": "error_rate=1", "idle": ""}
REQUESTS = 160  # above the policy's min_requests (100) so the traffic guard lets a measurement through
DRIFT_ROWS = 3000
TOKEN = "loop-token"


@dataclass
class Loop:
    policy: Policy
    registry: Registry
    prometheus: str
    servers: dict[str, ServerProcess]  # "stable", the canary scenarios, and "drift" (the production version)


@pytest.fixture(scope="module")
def policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The trained model's policy with a drift check that a few thousand scored rows can satisfy."""
    raw = yaml.safe_load(trained.policy.read_text())
    raw["drift"]["min_samples"] = DRIFT_ROWS // 2
    out = tmp_path_factory.mktemp("loop-gates") / trained.policy.name
    out.write_text(yaml.safe_dump(raw))
    return load_policy(out)


def _start(model: str, version: int, registry: str, role: str, fault: str) -> ServerProcess:
    # The server reads the fault knob from the environment it starts with (ServerProcess names its role).
    with pytest.MonkeyPatch.context() as patch:
        if fault:
            inject(patch, fault)
        else:
            patch.delenv(FAULT_ENV, raising=False)
        return ServerProcess(model, version, registry, role)


def _scrape_config(servers: dict[str, ServerProcess]) -> dict[str, Any]:
    def target(name: str) -> str:
        return f"127.0.0.1:{servers[name].port}"

    groups = []
    for scenario in CANARIES:
        groups += [{"targets": [target(scenario)], "labels": {"role": "canary", "scenario": scenario}},
                   {"targets": [target("stable")], "labels": {"role": "stable", "scenario": scenario}}]
    groups.append({"targets": [target("drift")], "labels": {"role": "stable", "scenario": "drift"}})
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "model-servers", "static_configs": groups}]}


@pytest.fixture(scope="module")
def loop(trained: Trained, policy: Policy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    if not PROMETHEUS.is_file():
        pytest.skip(f"prometheus is not installed at {PROMETHEUS} (Debian package prometheus)")
    root = tmp_path_factory.mktemp("loop")
    registry = Registry.open(str(root / "registry"))
    model = policy.model_name
    for name in ("one", "two"):  # v1 serves the canary scenarios, v2 is production (the drift check's version)
        registry.register(model, candidate(trained, root, name), passed=True, gate_report={"passed": True})
    registry.promote(model, 2, "production")

    servers: dict[str, ServerProcess] = {}
    try:
        servers["stable"] = _start(model, 1, registry.location, "stable", "")
        for scenario, fault in CANARIES.items():
            servers[scenario] = _start(model, 1, registry.location, "canary", fault)
        servers["drift"] = _start(model, 2, registry.location, "stable", "")
        config = root / "prometheus.yml"
        config.write_text(yaml.safe_dump(_scrape_config(servers)))
        with prometheus(config, root) as url:
            for server in servers.values():
                server.wait_ready()
            # Traffic only after Prometheus holds every server's zeros: increase() then counts all of it.
            _wait_for(url, 'count(up{job="model-servers"} == 1)', lambda v: v >= 2 * len(CANARIES) + 1,
                      "every server scraped")
            yield Loop(policy, registry, url, servers)
    finally:
        for server in servers.values():
            server.stop()


def _query(url: str, query: str) -> list[float]:
    from prometheus_api_client import PrometheusConnect

    result = PrometheusConnect(url=url, disable_ssl=True).custom_query(query=query)
    return [float(sample["value"][1]) for sample in result]


def _wait_for(url: str, query: str, ready: Callable[[float], bool], what: str, timeout: float = 30) -> list[float]:
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            values = _query(url, query)
        except Exception as err:  # noqa: BLE001 (Prometheus still starting: any connection error, retried)
            last = repr(err)
        else:
            if values and ready(values[0]):
                return values
            last = repr(values)
        time.sleep(0.5)
    raise AssertionError(f"Prometheus: {what} not seen after {timeout:.0f}s ({query!r} -> {last})")


def _drive(server: ServerProcess, model: str, rows: list[dict[str, Any]], per_request: int = 1) -> list[int]:
    """POST the rows (per_request instances each) from 8 clients at once; the HTTP status codes."""
    bodies = [json.dumps({"instances": rows[i:i + per_request]}).encode() for i in range(0, len(rows), per_request)]
    return post_predictions(server.url, model, bodies)


def _instances(policy: Policy, n: int, seed: int, drift_amount: float = 0.0) -> list[dict[str, Any]]:
    frame = generate(n, seed=seed, drift=drift_amount)
    features = [feature.name for feature in policy.data.features]
    return json.loads(frame[features].to_json(orient="records"))


def _metrics(policy: Policy) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in serving.build_analysis_template(policy)["spec"]["metrics"]}


def _scenario_query(metric: dict[str, Any], scenario: str) -> str:
    query = metric["provider"]["prometheus"]["query"]
    assert 'role="canary"' in query, query
    return query.replace('role="canary"', f'role="canary", scenario="{scenario}"')


def test_the_rendered_analysis_passes_a_good_canary_and_fails_a_slow_or_failing_one_and_an_idle_one_is_inconclusive(
        loop: Loop) -> None:
    model, metrics = loop.policy.model_name, _metrics(loop.policy)
    rows = _instances(loop.policy, REQUESTS, seed=3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = dict(zip(("stable", "good", "slow", "failing"),
                         pool.map(lambda name: _drive(loop.servers[name], model, rows),
                                  ("stable", "good", "slow", "failing")), strict=True))
    assert set(codes["stable"]) == set(codes["good"]) == set(codes["slow"]) == {200}
    assert set(codes["failing"]) == {500}, "the error_rate=1 fault must fail every prediction"

    traffic = 'sum(increase(model_requests_total{{model="{m}", role="canary", scenario="{s}"}}[5m]))'
    for scenario in ("good", "slow", "failing"):
        # Wait until the last scrape holds all the traffic (increase() extrapolates: allow a little under).
        _wait_for(loop.prometheus, traffic.format(m=model, s=scenario), lambda v: v >= REQUESTS * 0.95,
                  f"{scenario} canary's {REQUESTS} requests")

    verdicts = {(scenario, name): argo_verdict(metric, _query(loop.prometheus, _scenario_query(metric, scenario)))
                for scenario in CANARIES for name, metric in metrics.items()}
    assert verdicts == {
        ("good", "latency-p95-ms"): "Successful", ("good", "error-ratio"): "Successful",
        ("slow", "latency-p95-ms"): "Failed", ("slow", "error-ratio"): "Successful",
        ("failing", "error-ratio"): "Failed",
        # The failing canary's predictions fail fast: its latency is measured and within the limit.
        ("failing", "latency-p95-ms"): verdicts[("failing", "latency-p95-ms")],
        # The stable server has the traffic, the idle canary none: the guard leaves both results empty.
        ("idle", "latency-p95-ms"): "Inconclusive", ("idle", "error-ratio"): "Inconclusive",
    }, verdicts
    assert verdicts[("failing", "latency-p95-ms")] in {"Successful", "Inconclusive"}


def test_drifted_traffic_through_a_real_server_is_detected_from_prometheus_and_triggers_a_retrain(
        loop: Loop, tmp_path: Path) -> None:
    model = loop.policy.model_name
    codes = _drive(loop.servers["drift"], model, _instances(loop.policy, DRIFT_ROWS, seed=21, drift_amount=0.8),
                   per_request=50)
    assert set(codes) == {200}
    feature = loop.policy.data.features[0].name
    _wait_for(loop.prometheus,
              f'sum(increase(model_feature_bin_total{{model="{model}",model_version="2",feature="{feature}"}}[1h]))',
              lambda v: v >= DRIFT_ROWS * 0.95, f"the drift server's {DRIFT_ROWS} scored rows")

    token = tmp_path / "token"
    token.write_text(TOKEN)
    hook = Hook()
    try:
        code = drift.main(["check", "--model", model, "--registry", loop.registry.location,
                           "--policy", str(loop.policy.path), "--prometheus", loop.prometheus,
                           "--webhook", hook.url, "--token-file", str(token), "--report-dir", str(tmp_path / "r")])
    finally:
        hook.close()
    assert code == 0
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["decision"] == "retrain" and report["trigger"]["status"] == "sent", report
    assert report["samples"] >= DRIFT_ROWS * 0.95
    share = len(report["drifted_features"]) / len(loop.policy.data.features)
    assert share > loop.policy.drift.drift_share, report["drifted_features"]
    assert len(hook.requests) == 1
    authorization, body = hook.requests[0]["auth"], hook.requests[0]["body"]
    assert authorization == f"Bearer {TOKEN}"
    assert body["model"] == model and sorted(body["drifted_features"]) == sorted(report["drifted_features"]), body
