"""The local rollout's canary analysis through a real Prometheus: the router of `mlops deploy` scraped with the
configuration `mlops deploy --print-scrape-config` prints, real `python -m steps.serve` processes behind it (a bad
candidate is the real server with tests/support/faults' faults), and the rollout step running the
AnalysisTemplate's own queries and conditions there (`--prometheus` or PROMETHEUS_URL) over a time-scaled window."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import rollout as step
from steps._canary import analysis as _analysis
from steps._canary.local.client import DeployClient
from steps._canary.local.router import Router
from steps._core.errors import UsageError
from steps._core.policy import Policy
from steps._core.prometheus import Prometheus
from steps._storage.registry import Registry
from tests.support import faults
from tests.support.canary import short_canary_policy, stable_deployment, v1_production_v2_staged
from tests.support.models import Trained
from tests.support.paths import ROOT
from tests.support.processes import free_port, prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCALE = "0.05"  # 1m pause and interval -> 3 s; the rate window is the local floor, 5 s (five 1 s scrapes)


@dataclass
class Scraping:
    prometheus: str  # the Prometheus URL
    router_port: int  # where each test's router listens: the port the scrape configuration names


@pytest.fixture(scope="module")
def policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return short_canary_policy(trained, tmp_path_factory)


@pytest.fixture(scope="module")
def scraping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraping]:
    """A real Prometheus, as a plain process, configured by `mlops deploy --print-scrape-config --port P`."""
    root = tmp_path_factory.mktemp("prometheus")
    router_port = free_port()
    printed = subprocess.run([sys.executable, "-m", "workflows.cli", "deploy", "--print-scrape-config",
                              "--port", str(router_port)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             check=True).stdout
    config = root / "prometheus.yml"
    config.write_text(printed)
    with prometheus(config, root) as url:
        yield Scraping(url, router_port)


def _eventually(scraping: Scraping, query: str, found: bool = True, timeout: float = 20) -> list[float]:
    """The query's values once it has (found=True) or has not (found=False) a result; scrapes take a second."""
    deadline = time.monotonic() + timeout
    while True:
        values = Prometheus(scraping.prometheus).values(query)
        if bool(values) == found:
            return values
        if time.monotonic() >= deadline:
            raise AssertionError(f"{query!r} -> {values} after {timeout:.0f}s")
        time.sleep(0.5)


@pytest.fixture
def registry(tmp_path: Path, trained: Trained, policy: Policy) -> Registry:
    return v1_production_v2_staged(tmp_path, trained, policy)


@pytest.fixture
def deployment(scraping: Scraping, registry: Registry, policy: Policy) -> Iterator[Router]:
    """What `mlops deploy` runs, on the port Prometheus scrapes, with v1 as the stable server; the canary's
    scrape is up (an empty exposition) before the rollout starts one."""
    with stable_deployment(registry, policy, port=scraping.router_port) as router:
        # This router's v1 scraped (an earlier test's series went stale when its router closed).
        _eventually(scraping, f'model_requests_total{{model="{policy.model_name}", role="stable", '
                              'model_version="1"}')
        yield router


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from steps._core.data import generate, write_frame

    out = tmp_path_factory.mktemp("replay") / "rows.parquet"
    write_frame(generate(300, seed=5), out)
    return out


def _rollout(policy: Policy, registry: Registry, router: Router, dataset: Path, *extra: str) -> int:
    return step.main(["--model", policy.model_name, "--version", "2", "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "local", "--time-scale", SCALE,
                      "--deploy-url", router.url, "--dataset", str(dataset), *extra])


def _measurements(record: dict[str, Any]) -> list[dict[str, Any]]:
    [analysis] = record["history"][-1]["details"]["analysis"]
    measurements: list[dict[str, Any]] = analysis["measurements"]
    return measurements


def test_the_scrape_config_labels_each_role_and_an_idle_canary_has_no_series(
        scraping: Scraping, policy: Policy, deployment: Router) -> None:
    # The selectors of the AnalysisTemplate need `role`: the stable server's series carry role="stable" (and the
    # server's own model/model_version); with no canary, its scrape is up and holds no series (earlier canaries'
    # series went stale), so the canary's queries find nothing: Inconclusive, never a pass.
    model = policy.model_name
    assert _eventually(scraping, f'count(model_requests_total{{model="{model}", role="stable", model_version="1"}})')
    _eventually(scraping, f'model_requests_total{{model="{model}", role="canary"}}', found=False)
    assert _eventually(scraping, 'up{job="mlops-deploy-canary"} == 1') == [1.0]
    seconds = _analysis.LOCAL_MIN_WINDOW_SECONDS
    # Another test's canary may have served within the window: its samples must first leave it.
    _eventually(scraping, _analysis.requests_query(policy, seconds), found=False)
    reading = _analysis.read(Prometheus(scraping.prometheus), policy, seconds)
    assert (reading.latency_phase, reading.error_phase) == ("Inconclusive", "Inconclusive")


def test_with_prometheus_url_a_good_candidate_is_promoted_by_the_rendered_queries(
        scraping: Scraping, registry: Registry, policy: Policy, deployment: Router, dataset: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_URL", scraping.prometheus)
    assert _rollout(policy, registry, deployment, dataset) == 0
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "production"
    assert "local canary passed" in record["history"][-1]["why"]
    measurements = _measurements(record)
    assert len(measurements) == policy.canary.analysis.count
    window = _analysis.window(policy, _analysis.window_seconds(policy, float(SCALE)))
    for m in measurements:
        assert m["source"] == f"prometheus {scraping.prometheus} [{window}]", m
        assert m["metrics"] == {"latency-p95-ms": "Successful", "error-ratio": "Successful"}, m
        assert m["requests"] >= policy.canary.analysis.min_requests and m["error_ratio"] == 0.0, m
    assert registry.get(policy.model_name, 1)["status"] == "archived"
    status = DeployClient(deployment.url).status()
    assert status["stable"]["version"] == 2 and status["canary"] is None


@pytest.mark.parametrize(("fault", "metric", "broken"), [
    ("error_rate=1", "error-ratio", "error ratio 1.0000 > 0.05"),
    ("latency_ms=150", "latency-p95-ms", "latency p95"),
], ids=["failing", "slow"])
def test_with_prometheus_a_faulty_candidate_is_rolled_back_and_rejected_with_the_failed_query(
        scraping: Scraping, registry: Registry, policy: Policy, deployment: Router, dataset: Path,
        monkeypatch: pytest.MonkeyPatch, fault: str, metric: str, broken: str) -> None:
    faults.inject(monkeypatch, fault)
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    assert _rollout(policy, registry, deployment, dataset, "--prometheus", scraping.prometheus) == 1
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "rejected"
    why = record["history"][-1]["why"]
    assert "canary analysis failed at weight 50" in why and broken in why, why
    assert f"from prometheus {scraping.prometheus}" in why, why
    failed = _measurements(record)[-1]
    assert failed["phase"] == "Failed" and failed["metrics"][metric] == "Failed", failed
    assert registry.get(policy.model_name, 1)["status"] == "production"
    status = DeployClient(deployment.url).status()
    assert status["stable"]["version"] == 1 and status["canary"] is None, "the stable version must serve alone"


def test_without_a_running_deployment_the_step_starts_one_where_prometheus_scrapes_it(
        scraping: Scraping, registry: Registry, policy: Policy, dataset: Path) -> None:
    url = f"http://127.0.0.1:{scraping.router_port}"  # nothing listens there: the step brings the router up
    code = step.main(["--model", policy.model_name, "--version", "2", "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "local", "--time-scale", SCALE,
                      "--deploy-url", url, "--dataset", str(dataset), "--prometheus", scraping.prometheus])
    assert code == 0
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "production"
    measurements = _measurements(record)
    assert all(m["metrics"] == {"latency-p95-ms": "Successful", "error-ratio": "Successful"} for m in measurements)
    assert all(m["requests"] >= policy.canary.analysis.min_requests for m in measurements), measurements


def test_a_query_prometheus_refuses_is_a_usage_error_naming_the_url(scraping: Scraping) -> None:
    # The one Prometheus client's wording (steps._core.prometheus), which the drift step's tests match too.
    with pytest.raises(UsageError, match=f"prometheus {scraping.prometheus}: the query was refused \\(HTTP 400"):
        Prometheus(scraping.prometheus).query("sum(")


def test_the_printed_scrape_config_is_valid_for_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    printed = subprocess.run([sys.executable, "-m", "workflows.cli", "deploy", "--print-scrape-config", "--port",
                              "8799"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    config = yaml.safe_load(printed)
    assert [(job["metrics_path"], job["static_configs"][0]["labels"]) for job in config["scrape_configs"]] == [
        ("/metrics/stable", {"role": "stable"}), ("/metrics/canary", {"role": "canary"})]
    assert {t for job in config["scrape_configs"] for t in job["static_configs"][0]["targets"]} == {"127.0.0.1:8799"}
    (tmp_path / "prometheus.yml").write_text(printed)
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
