"""steps/_canary/local/router.py on 127.0.0.1. Before any server starts: the control endpoint answers only a caller
with the router's bearer token (kept, while it runs, in a file only its user can read), and refuses what it cannot
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
from steps._canary.local.servers import Unauthorized
from tests.support.canary import short_canary_policy, stable_deployment, v1_production_v2_staged
from tests.support.models import Trained


@pytest.fixture
def router(tmp_path: Any) -> Iterator[Router]:
    started = Router(Deployment("fraud-detection", str(tmp_path / "registry")), port=0).start()
    yield started
    started.close()


def call(router: Router, path: str, body: Any = None, authorization: str | None = "") -> tuple[int, Any]:
    """A call as DeployClient makes it: with the router's token unless `authorization` says otherwise (None: no
    Authorization header)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization or f"Bearer {router.token}"
    request = urllib.request.Request(router.url + path, data=data, method="POST" if data is not None else "GET",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


CALLERS = {"no-header": None, "wrong-token": "Bearer not-the-token", "basic": "Basic dXNlcjpwYXNz",
           "token-without-scheme": "TOKEN", "empty-bearer": "Bearer "}
CALLS = [("/control/status", None), ("/control/abort", {}), ("/control/stable", {"version": 1}),
         ("/control/weight", {"weight": 0})]


@pytest.mark.parametrize("path,body", CALLS, ids=[path.rsplit("/", 1)[1] for path, _ in CALLS])
@pytest.mark.parametrize("authorization", CALLERS.values(), ids=CALLERS.keys())
def test_a_control_call_without_the_token_is_refused(router: Router, path: str, body: Any,
                                                     authorization: str | None) -> None:
    if authorization == "TOKEN":
        authorization = router.token
    request = urllib.request.Request(router.url + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={} if authorization is None else {"Authorization": authorization})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    error = json.loads(refused.value.read())
    assert error["rule"] == "control token" and "Authorization: Bearer" in error["error"], error
    assert call(router, "/control/status")[1]["stable"] is None


def test_the_router_keeps_its_token_in_a_file_only_its_user_can_read_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLOPS_DEPLOY_TOKEN_FILE", raising=False)
    router = Router(Deployment("fraud-detection", str(tmp_path / "registry")), port=0).start()
    try:
        path = tmp_path / "home" / ".mlops" / "deploy" / f"{router.port}.token"
        assert path.read_text().strip() == router.token and len(router.token) >= 32
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o077 == 0
        assert DeployClient(router.url).status()["model"] == "fraud-detection"  # found by the URL's port
        with pytest.raises(Unauthorized, match=f"HTTP 401.*{path}"):
            DeployClient(router.url, token="not-the-token").abort()
    finally:
        router.close()
    assert not path.exists(), "a stopped router's token must not outlive it"


def test_the_metrics_and_model_routes_need_no_token(router: Router) -> None:
    assert call(router, "/v1/models/fraud-detection:predict", {"instances": []}, authorization=None)[0] == 503
    with urllib.request.urlopen(f"{router.url}/metrics/canary", timeout=10) as answer:
        assert answer.status == 200


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
