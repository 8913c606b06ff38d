"""The rollout step's local target, the canary controller (steps/_canary/local/controller.py), with real components:
a real trained bundle in a local registry, real `python -m steps.serve` processes behind the router, replayed
traffic, and the analysis computed from the servers' own /metrics; and the step's --prometheus option, which only
the local target takes. A bad candidate is the real server with faults in its model's predictions
(tests/support/faults), so its metrics show them as a bad model's would. A deployment that refuses the step's
control token stops the rollout with the token file named."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from steps import rollout as step
from steps._canary.local.client import DeployClient
from steps._canary.local.router import Router
from steps._canary.local.traffic import replay_rows
from steps._core.data import generate, write_frame
from steps._core.policy import Policy
from steps._model import bundle as _bundle
from steps._storage.registry import Registry
from tests.support import faults
from tests.support.canary import PASSED, short_canary_policy, stable_deployment, v1_production_v2_staged
from tests.support.models import Trained, candidate
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCALE = "0.01"  # 1m pauses and intervals -> 0.6 s


@pytest.fixture(scope="module")
def policy(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return short_canary_policy(trained, tmp_path_factory)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "rows.parquet"
    write_frame(generate(300, seed=5), out)
    return out


@pytest.fixture
def registry(tmp_path: Path, trained: Trained, policy: Policy) -> Registry:
    return v1_production_v2_staged(tmp_path, trained, policy)


@pytest.fixture
def deployment(registry: Registry, policy: Policy) -> Iterator[Router]:
    """What `mlops deploy` runs: the router with v1 as the stable server."""
    with stable_deployment(registry, policy) as router:
        yield router


def run_rollout(policy: Policy, registry: Registry, *extra: str) -> int:
    return step.main(["--model", policy.model_name, "--version", "2", "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "local", "--time-scale", SCALE, *extra])


def predict(router: Router, policy: Policy, dataset: Path) -> tuple[int, str, str]:
    body = json.dumps({"instances": replay_rows(policy, str(dataset), limit=1)}).encode()
    request = urllib.request.Request(f"{router.url}/v1/models/{policy.model_name}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.headers["X-Model-Role"], answer.headers["X-Model-Version"]


def test_a_good_candidate_is_promoted_and_the_previous_production_archived(
        registry: Registry, policy: Policy, deployment: Router, dataset: Path) -> None:
    code = run_rollout(policy, registry, "--deploy-url", deployment.url, "--dataset", str(dataset))
    assert code == 0
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "production"
    assert "local canary passed" in record["history"][-1]["why"]
    [analysis] = record["history"][-1]["details"]["analysis"]
    assert analysis["verdict"] == "successful" and all(m["requests"] >= 20 for m in analysis["measurements"])
    assert registry.get(policy.model_name, 1)["status"] == "archived"
    status = DeployClient(deployment.url).status()
    assert status["stable"] is not None and status["stable"]["version"] == 2 and status["canary"] is None
    assert predict(deployment, policy, dataset) == (200, "stable", "2")


@pytest.mark.parametrize(("fault", "broken"), [("error_rate=1", "error ratio 1.0000 > 0.05"),
                                               ("latency_ms=150", "latency p95")])
def test_a_bad_candidate_is_rolled_back_and_rejected_with_the_reason(
        registry: Registry, policy: Policy, deployment: Router, dataset: Path, monkeypatch: pytest.MonkeyPatch,
        fault: str, broken: str) -> None:
    faults.inject(monkeypatch, fault)
    code = run_rollout(policy, registry, "--deploy-url", deployment.url, "--dataset", str(dataset))
    assert code == 1
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "rejected"
    why = record["history"][-1]["why"]
    assert "canary analysis failed at weight 50" in why and broken in why, why
    assert registry.get(policy.model_name, 1)["status"] == "production"
    status = DeployClient(deployment.url).status()
    assert status["stable"] is not None and status["stable"]["version"] == 1, "the stable version must serve"
    assert status["canary"] is None, "the stable version must serve alone"
    assert predict(deployment, policy, dataset) == (200, "stable", "1")


def test_a_candidate_whose_server_cannot_start_is_rejected_and_the_stable_keeps_serving(
        tmp_path: Path, trained: Trained, policy: Policy, deployment: Router, registry: Registry,
        dataset: Path) -> None:
    broken = candidate(trained, tmp_path, "broken")
    (broken / "model.trees.json").write_text('{"not": "trees"}')  # hashed and registered, but no model
    manifest = json.loads((broken / _bundle.MANIFEST).read_text())
    for key in ("files", "format_version"):
        manifest.pop(key)
    _bundle.write_manifest(broken, manifest)
    version = registry.register(policy.model_name, broken, passed=True, gate_report=PASSED)["version"]
    code = step.main(["--model", policy.model_name, "--version", str(version), "--registry", registry.location,
                      "--policy", str(policy.path), "--target", "local", "--time-scale", SCALE,
                      "--deploy-url", deployment.url])
    assert code == 1
    record = registry.get(policy.model_name, version)
    assert record["status"] == "rejected" and "never became healthy" in record["history"][-1]["why"]
    assert predict(deployment, policy, dataset) == (200, "stable", "1")


def test_a_deployment_that_refuses_the_token_stops_the_rollout_naming_the_token_file(
        registry: Registry, policy: Policy, deployment: Router, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Not taken for a free port (a second deployment would be started beside it), nor driven without its token.
    copied = tmp_path / "copied.token"
    copied.write_text("not-this-routers-token\n")
    monkeypatch.setenv("MLOPS_DEPLOY_TOKEN_FILE", str(copied))
    code = run_rollout(policy, registry, "--deploy-url", deployment.url)
    assert code == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and f"the token in {copied} is not this router's" in err, err
    monkeypatch.delenv("MLOPS_DEPLOY_TOKEN_FILE")
    status = DeployClient(deployment.url).status()
    assert status["stable"] is not None and status["stable"]["version"] == 1, "the deployment must not have changed"
    assert status["canary"] is None, "the deployment must not have changed"
    assert registry.get(policy.model_name, 1)["status"] == "production"
    # Refused before the rollout changed anything: the candidate was not moved to canary.
    assert registry.get(policy.model_name, 2)["status"] == "staged"


def test_the_first_version_is_promoted_after_a_health_check_without_a_running_deployment(
        tmp_path: Path, trained: Trained, policy: Policy, capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry.open(str(tmp_path / "fresh"))
    reg.register(policy.model_name, candidate(trained, tmp_path, "first"), passed=True, gate_report=PASSED)
    code = step.main(["--model", policy.model_name, "--version", "1", "--registry", reg.location, "--policy",
                      str(policy.path), "--target", "local", "--deploy-url", f"http://127.0.0.1:{free_port()}"])
    assert code == 0, capsys.readouterr().err
    record = reg.get(policy.model_name, 1)
    assert record["status"] == "production"
    assert [h["to"] for h in record["history"]] == ["staged", "canary", "production"]
    assert "health" in record["history"][-1]["why"]


def test_without_a_running_deployment_the_step_brings_one_up_and_replays_generated_traffic(
        registry: Registry, policy: Policy) -> None:
    assert run_rollout(policy, registry) == 0
    record = registry.get(policy.model_name, 2)
    assert record["status"] == "production"
    assert all(m["requests"] >= 20 for m in record["history"][-1]["details"]["analysis"][0]["measurements"])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unreachable_prometheus_exits_3_naming_it_before_anything_changes(
        registry: Registry, policy: Policy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        how: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    if how == "env":
        monkeypatch.setenv("PROMETHEUS_URL", url)
    code = run_rollout(policy, registry, *(["--prometheus", url] if how == "flag" else []))
    assert code == 3
    assert f"prometheus {url}: unreachable" in capsys.readouterr().err
    assert registry.get(policy.model_name, 2)["status"] == "staged"
    assert registry.get(policy.model_name, 1)["status"] == "production"


BAD_PROMETHEUS = [
    (["--target", "kubernetes", "--prometheus", "http://prom:9090"], {},
     "--prometheus http://prom:9090: only for --target local"),
    (["--target", "local", "--prometheus", "prom:9090"], {}, "--prometheus 'prom:9090': must be an http:// or https://"),
    (["--target", "local"], {"PROMETHEUS_URL": "ftp://prom"}, "$PROMETHEUS_URL 'ftp://prom': must be an http://"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD_PROMETHEUS, ids=["kubernetes", "no-scheme", "env-scheme"])
def test_a_bad_prometheus_option_is_refused_by_name(
        registry: Registry, policy: Policy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = step.main(["--model", policy.model_name, "--version", "2", "--registry", registry.location,
                      "--policy", str(policy.path), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert registry.get(policy.model_name, 2)["status"] == "staged"
