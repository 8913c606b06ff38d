"""steps/_canary/local/router.py on 127.0.0.1. Before any server starts: the control endpoint refuses what it cannot
do, naming the field, the rule and the value (version numbers in the registry's grammar); the metrics routes know only
the two roles, and an empty role is an empty exposition, not an error. With a real stable server (what `mlops deploy`
runs): the canary's metrics route answers an empty exposition while there is no canary."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steps._canary.local.client import DeployClient
from steps._canary.local.deployment import Deployment
from steps._canary.local.router import Router
from tests.support.canary import short_canary_policy, stable_deployment, v1_production_v2_staged
from tests.support.models import Trained


@pytest.fixture
def router(tmp_path: Any) -> Iterator[Router]:
    started = Router(Deployment("fraud-detection", str(tmp_path / "registry")), port=0).start()
    yield started
    started.close()


def call(router: Router, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(router.url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


BAD = [
    ("/control/stable", {"version": "²"}, "version: required, a whole number, got '²'"),
    ("/control/stable", {"version": 0}, "version 0: versions start at 1"),
    ("/control/stable", {"version": True}, "version: required, a whole number, got True"),
    ("/control/canary", {"version": 2, "weight": 150}, "weight: must be 0-100, got 150"),
    ("/control/canary", {"version": 2, "weight": 10}, "no stable version: POST /control/stable first"),
    ("/control/weight", {"weight": 10}, "no canary to weigh: POST /control/canary first"),
    ("/control/promote", {}, "no canary to promote"),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD, ids=["superscript", "zero", "bool", "weight", "no-stable",
                                                                "no-canary", "promote"])
def test_a_change_it_cannot_make_is_refused_naming_why(router: Router, path: str, body: Any, message: str) -> None:
    assert call(router, path, body) == (409, {"error": message})
    assert call(router, "/control/status")[1]["stable"] is None


def test_without_a_stable_version_predictions_are_503_and_metrics_empty(router: Router) -> None:
    assert call(router, "/v1/models/fraud-detection:predict", {"instances": []})[0] == 503
    with urllib.request.urlopen(f"{router.url}/metrics/stable", timeout=10) as answer:
        assert answer.status == 200 and answer.read() == b""
    assert call(router, "/metrics/blue")[0] == 404
    assert call(router, "/control/status") == (200, {"model": "fraud-detection", "registry": router.deployment.registry,
                                                     "weight": 0, "stable": None, "canary": None})


@pytest.fixture
def deployment(tmp_path: Path, trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """What `mlops deploy` runs: the router with v1 of the trained model as the stable server."""
    policy = short_canary_policy(trained, tmp_path_factory)
    with stable_deployment(v1_production_v2_staged(tmp_path, trained, policy), policy) as router:
        yield router


@pytest.mark.integration
@pytest.mark.slow
def test_the_router_answers_an_empty_canary_exposition_while_there_is_no_canary(deployment: Router) -> None:
    # A Prometheus scraping /metrics/canary between canaries must see a healthy target with no series, not a
    # failing scrape (which would alert, and drop the `up` of the job).
    with urllib.request.urlopen(f"{deployment.url}/metrics/canary", timeout=10) as answer:
        assert answer.status == 200 and answer.read() == b""
        assert answer.headers["Content-Type"].startswith("text/plain")
    assert "model_requests_total" in DeployClient(deployment.url).metrics("stable")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{deployment.url}/metrics/blue", timeout=10)
    assert err.value.code == 404
