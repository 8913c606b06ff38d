"""The Kubernetes adapter (steps/_canary/kubernetes.py) against a small fake Kubernetes API (tests/support/kube.py): a
real HTTP server on 127.0.0.1 that answers GET/PATCH for one Rollout (moving its status as the Argo Rollouts
controller would) and lists AnalysisRuns, speaking the API server's HTTP, paths, verbs and content types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steps._canary.kubernetes import KubeClient, KubeError, merge_patch
from steps._core.errors import TransientError
from tests.support.kube import NAMESPACE, TOKEN, FakeKubeAPI, analysis_run, rollout_object
from tests.support.processes import free_port


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(rollout_object()) as server:
        yield server


def client(api: FakeKubeAPI, token: str = TOKEN) -> KubeClient:
    return KubeClient(api.url, token, NAMESPACE)


def test_get_rollout_sends_the_bearer_token_and_returns_the_object(api: FakeKubeAPI) -> None:
    got = client(api).get_rollout("churn-model-server")
    assert got["metadata"]["name"] == "churn-model-server"
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"


def test_patch_is_a_merge_patch_that_changes_only_the_given_fields(api: FakeKubeAPI) -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {"model-version": "4"}}}}}
    got = client(api).patch_rollout("churn-model-server", patch)
    assert got["spec"]["template"]["metadata"] == {"labels": {"app": "churn-model-server"},
                                                   "annotations": {"model-version": "4"}}
    assert got["spec"]["replicas"] == 5
    assert got["metadata"]["generation"] == 2
    assert api.patches == [patch]


def test_a_missing_rollout_is_a_usage_error_naming_it(api: FakeKubeAPI) -> None:
    with pytest.raises(KubeError, match=r'HTTP 404: rollouts.argoproj.io "other-server" not found'):
        client(api).get_rollout("other-server")


def test_a_wrong_token_is_refused_and_not_retried(api: FakeKubeAPI) -> None:
    with pytest.raises(KubeError, match="HTTP 401"):
        client(api, token="wrong").get_rollout("churn-model-server")


def test_a_busy_api_server_is_transient(api: FakeKubeAPI) -> None:
    api.fail_with = 503
    with pytest.raises(TransientError, match="HTTP 503: the server is busy"):
        client(api).get_rollout("churn-model-server")


def test_an_unreachable_api_server_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        KubeClient(f"http://127.0.0.1:{free_port()}", TOKEN, NAMESPACE, timeout=2).get_rollout("x")


def test_analysis_runs_are_those_of_the_rollout_newest_first(api: FakeKubeAPI) -> None:
    api.analysis_runs = [
        analysis_run("old", "churn-model-server", "2026-01-01T00:00:00Z", "Successful", []),
        analysis_run("other", "another-server", "2026-01-03T00:00:00Z", "Failed", []),
        analysis_run("new", "churn-model-server", "2026-01-02T00:00:00Z", "Failed", []),
    ]
    runs = client(api).analysis_runs("churn-model-server")
    assert [r["metadata"]["name"] for r in runs] == ["new", "old"]


def test_in_cluster_configuration_comes_from_the_service_account(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLOPS_KUBE_API", "MLOPS_KUBE_TOKEN", "MLOPS_KUBE_CA", "MLOPS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("models")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    kube = KubeClient.from_environment(sa_dir=tmp_path)
    assert (kube.base_url, kube.token, kube.namespace) == ("https://10.0.0.1:6443", "sa-token", "models")


def test_outside_a_pod_without_an_address_the_error_says_what_to_set(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_KUBE_API", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError.__mro__[1], match="KUBERNETES_SERVICE_HOST unset.*MLOPS_KUBE_API"):
        KubeClient.from_environment(sa_dir=tmp_path)


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    assert merge_patch(target, {"a": {"b": None, "e": 3}, "d": [3]}) == {"a": {"c": 2, "e": 3}, "d": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1, 2]}
