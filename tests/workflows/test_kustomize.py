"""The kustomize tree renders offline with `kubectl kustomize`, and every document it renders validates: Argo
kinds and the PodMonitor against ../shared/schemas, core kinds with kubernetes-validate. A second model
renders its own set beside the first without changing it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows import lint, render
from workflows._schemas import NoSchema, Schemas

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = {"dev": "mlops-dev", "production": "mlops"}  # overlay -> its namespace


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` renders the overlays (no cluster needed)")
    return path


def kustomize(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl, "kustomize", str(folder)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {folder}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(kubectl, MANIFESTS / "overlays" / name) for name in OVERLAYS}


def _validate_all(docs: list[dict[str, Any]], schemas: Schemas) -> list[str]:
    problems = []
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            problems += [f"{name}: {i.path}: {i.rule}: {i.message}" for i in schemas.validate(doc)]
        except NoSchema as err:  # a kind nothing can check is a failure, not a pass
            problems.append(f"{name}: {err}")
    return problems


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _images(docs: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        found += [c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])]
        found += [t["container"]["image"] for t in spec.get("templates", []) if "container" in t]
    return found


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_rendered_document_validates(rendered, schemas_dir, overlay):
    docs = rendered[overlay]
    assert _validate_all(docs, Schemas(schemas_dir)) == []
    kinds = {d["kind"] for d in docs}
    assert {"Rollout", "AnalysisTemplate", "Service", "WorkflowTemplate", "ConfigMap", "ServiceAccount", "Role",
            "RoleBinding", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_overlays_include_every_generated_model_in_their_namespace(rendered, overlay):
    docs = rendered[overlay]
    models = yaml.safe_load((MANIFESTS / "generated" / "kustomization.yaml").read_text())["resources"]
    assert models, "mlops compile lists at least the reference model"
    assert set(_by_kind(docs, "Rollout")) == {f"{m}-server" for m in models}
    assert set(_by_kind(docs, "WorkflowTemplate")) == {f"{m}-training" for m in models}
    assert {d["metadata"].get("namespace") for d in docs} == {OVERLAYS[overlay]}
    for binding in _by_kind(docs, "RoleBinding").values():
        assert [s["namespace"] for s in binding["subjects"]] == [OVERLAYS[overlay]]


def test_dev_pins_images_by_tag_and_production_by_digest(rendered):
    dev, production = _images(rendered["dev"]), _images(rendered["production"])
    assert dev and all(re.fullmatch(r"ghcr\.io/argo-mlops/(serve|steps):\d+\.\d+\.\d+", i) for i in dev), dev
    # The step image too: base/kustomizeconfig.yaml shows kustomize where Argo keeps it.
    assert any("/steps:" in i for i in dev) and any("/serve:" in i for i in dev)
    assert production and all(re.fullmatch(r"ghcr\.io/argo-mlops/(serve|steps)@sha256:[0-9a-f]{64}", i)
                              for i in production), production


def test_production_adds_monitoring_and_dev_does_not(rendered):
    assert set(_by_kind(rendered["production"], "PodMonitor")) == {"model-servers"}
    assert not _by_kind(rendered["dev"], "PodMonitor")


def test_podmonitor_puts_role_and_model_version_on_every_series_of_the_servers(rendered):
    monitor = _by_kind(rendered["production"], "PodMonitor")["model-servers"]
    rollout = next(iter(_by_kind(rendered["production"], "Rollout").values()))
    pod_labels = rollout["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    endpoint, = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel["role"] == ["__meta_kubernetes_pod_label_role"]
    assert relabel["model_version"] == ["__meta_kubernetes_pod_annotation_model_version"]


def test_the_documented_plain_prometheus_scrape_matches_the_podmonitor(rendered):
    text = (MANIFESTS / "README.md").read_text()
    block = re.search(r"<!-- scrape-config:.*?-->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert block, "manifests/README.md documents the plain Prometheus scrape config"
    job, = yaml.safe_load(block.group(1))["scrape_configs"]
    monitor = _by_kind(rendered["production"], "PodMonitor")["model-servers"]
    endpoint, = monitor["spec"]["podMetricsEndpoints"]
    targets = {r["target_label"]: r["source_labels"] for r in job["relabel_configs"] if "target_label" in r}
    for relabel in endpoint["relabelings"]:
        assert targets[relabel["targetLabel"]] == relabel["sourceLabels"]
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    selected = dict(zip([s.removeprefix("__meta_kubernetes_pod_label_") for s in keep[0]["source_labels"]],
                        keep[0]["regex"].split(";"), strict=True))
    # Prometheus' meta label names: every character outside [a-zA-Z0-9_] becomes `_`.
    assert selected == {re.sub(r"\W", "_", k): v for k, v in monitor["spec"]["selector"]["matchLabels"].items()}
    assert keep[1] == {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": endpoint["port"],
                       "action": "keep"}
    assert job["metric_relabel_configs"] == [{"action": m["action"], "regex": m["regex"]}
                                             for m in endpoint["metricRelabelings"]]


def test_servers_networkpolicy_selects_every_server_and_no_training_pod(rendered):
    docs = rendered["dev"]
    policy = _by_kind(docs, "NetworkPolicy")["mlops-server"]["spec"]
    selector = policy["podSelector"]["matchLabels"].items()
    for rollout in _by_kind(docs, "Rollout").values():
        assert selector <= rollout["spec"]["template"]["metadata"]["labels"].items()
    for template in _by_kind(docs, "WorkflowTemplate").values():
        assert not selector <= template["spec"]["podMetadata"]["labels"].items()
    assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_base_holds_no_secret_and_each_job_only_its_rights(rendered):
    docs = rendered["dev"]
    assert not _by_kind(docs, "Secret")
    rules = {name: {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
             for name, role in _by_kind(docs, "Role").items()}
    executor = {("workflowtaskresults", "create"), ("workflowtaskresults", "patch")}
    assert rules["mlops-workflow"] == executor
    # Only the training Workflow's exit handler may patch Workflows (its own labels: argo-mlops.io/result...).
    assert rules["mlops-run-labels"] == executor | {("workflows", "patch")}
    assert rules["mlops-drift"] == executor
    assert rules["mlops-sensor"] == {("workflows", "create"), ("workflowtemplates", "get")}
    assert {("rollouts", v) for v in ("get", "watch", "patch")} <= rules["mlops-rollout"]
    assert not {v for r, v in rules["mlops-rollout"] if r == "rollouts"} - {"get", "watch", "patch"}
    assert all(v in ("get", "list", "watch") for r, v in rules["mlops-rollout"] if r == "analysisruns")
    accounts = _by_kind(docs, "ServiceAccount")
    assert accounts["mlops-server"]["automountServiceAccountToken"] is False
    assert not any(b["subjects"][0]["name"] == "mlops-server" for b in _by_kind(docs, "RoleBinding").values())
    for template in _by_kind(docs, "WorkflowTemplate").values():
        assert template["spec"]["serviceAccountName"] in accounts
        assert all(t["serviceAccountName"] in accounts for t in template["spec"]["templates"]
                   if "serviceAccountName" in t)
    for rollout in _by_kind(docs, "Rollout").values():
        assert rollout["spec"]["template"]["spec"]["serviceAccountName"] in accounts


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of manifests/ (kustomize refuses absolute paths, and the tests must not write into the repo)."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    return tmp_path / "manifests"


def test_traffic_routing_component_adds_an_ingress_and_nginx_routing_per_model(kubectl, schemas_dir, tree):
    overlay = tree / "overlays" / "canary-ingress"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "mlops",
        "resources": ["../../base", "../../generated"], "components": ["../../components/traffic-routing"]}))
    docs = kustomize(kubectl, overlay)
    assert _validate_all(docs, Schemas(schemas_dir)) == []
    ingresses = _by_kind(docs, "Ingress")
    for name, rollout in _by_kind(docs, "Rollout").items():
        assert rollout["spec"]["strategy"]["canary"]["trafficRouting"] == {"nginx": {"stableIngress": name}}
        ingress = ingresses[name]
        assert ingress["metadata"]["namespace"] == "mlops"
        backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
        assert backends == {rollout["spec"]["strategy"]["canary"]["stableService"]}
    assert "mlops-server-from-ingress" in _by_kind(docs, "NetworkPolicy")


def test_a_second_model_renders_its_own_set_without_touching_the_first(kubectl, schemas_dir, tree, policy_file,
                                                                      tmp_path, monkeypatch):
    gates = tmp_path / "gates"
    gates.mkdir()
    shutil.copy(policy_file, gates / policy_file.name)
    text = policy_file.read_text().replace("model_name: fraud-detection", "model_name: churn")
    (gates / "churn.yaml").write_text(text.replace("replicas: 5", "replicas: 2").replace("min_requests: 100",
                                                                                          "min_requests: 40"))
    monkeypatch.chdir(tmp_path)
    assert render.main(["--out", str(tree / "generated")]) == 0
    def files(root: Path) -> dict[Path, bytes]:
        folder = root / "generated" / "fraud-detection"
        return {p.relative_to(root): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    assert files(tree) == files(MANIFESTS)

    for overlay in OVERLAYS:
        docs = kustomize(kubectl, tree / "overlays" / overlay)
        assert _validate_all(docs, Schemas(schemas_dir)) == []
        ids = [(d["kind"], d["metadata"]["name"]) for d in docs]
        assert len(ids) == len(set(ids))
        rollouts = _by_kind(docs, "Rollout")
        assert set(rollouts) == {"churn-server", "fraud-detection-server"}
        assert [rollouts[f"{m}-server"]["spec"]["replicas"] for m in ("churn", "fraud-detection")] == [2, 5]
        analyses = _by_kind(docs, "AnalysisTemplate")
        for model in ("churn", "fraud-detection"):
            canary = rollouts[f"{model}-server"]["spec"]["strategy"]["canary"]
            assert {t["templateName"] for s in canary["steps"] if "analysis" in s
                    for t in s["analysis"]["templates"]} == {f"{model}-analysis"}
            assert canary["canaryService"] == f"{model}-server-canary"
            for metric in analyses[f"{model}-analysis"]["spec"]["metrics"]:
                query = metric["provider"]["prometheus"]["query"]
                assert f'model="{model}"' in query and ">= " + ("40" if model == "churn" else "100") in query
            service = _by_kind(docs, "Service")[f"{model}-server"]
            assert service["spec"]["selector"] == {"app.kubernetes.io/name": f"{model}-server"}


def test_lint_checks_the_whole_tree_and_names_a_podmonitor_typo(schemas_dir, tree, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint.main(["--schemas", str(schemas_dir)]) == 0  # default: every file under manifests/
    assert f"{len(list(MANIFESTS.rglob('*.yaml')))} file(s) OK" in capsys.readouterr().out
    monitor = tree / "components" / "monitoring" / "model-servers-podmonitor.yaml"
    monitor.write_text(monitor.read_text().replace("relabelings:", "relabellings:"))
    capsys.readouterr()
    assert lint.main([str(tree), "--schemas", str(schemas_dir)]) == 1
    out = capsys.readouterr().out
    assert "PodMonitor/model-servers: spec.podMetricsEndpoints[0].relabellings: unknown-field" in out


def test_every_manifest_opens_with_what_it_shows_and_what_to_apply_first():
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        head = path.read_text().split("\n")
        comment = " ".join(line for line in head[:8] if line.startswith("#"))
        assert head[0].startswith("# ") and "Apply first:" in comment, path
