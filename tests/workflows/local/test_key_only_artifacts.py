"""Key-only `s3` artifacts (only `key`) run locally as Argo runs them: stored in the run's own artifact repository
(the default repository here) under the key, `{{workflow.name}}`, `{{pod.name}}`... substituted; a key ending in
`/` with `archive: none` holds a folder as is (what the Argo UI shows as a report); the node records the key as
Argo's status.nodes does (s3.key); s3 locations naming a bucket still need a configured object store."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.workflows import Ran, container, run_file, workflow
from tests.workflows.local.engine.cases import bounded, node, output
from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.operator import run_workflow
from workflows.local.engine.sandbox import bwrap
from workflows.local.record import pod_name
from workflows.local.refusals import check
from workflows.local.runpage import write_run_page
from workflows.local.templates import Resolver, TemplateStore

needs_bwrap = pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")

REPORT_KEY = "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}/gate-report/"
WRITE_REPORT = ("import os; os.makedirs('/tmp/gate-report/pictures'); "
                "open('/tmp/gate-report/index.html', 'w').write('<h1>Gate: passed</h1><img src=pictures/auc.svg>'); "
                "open('/tmp/gate-report/pictures/auc.svg', 'w').write('<svg/>')")
READ_REPORT = ("import os; open('/tmp/seen', 'w').write(' '.join(sorted(os.path.relpath(os.path.join(d, f), '/in') "
               "for d, _, fs in os.walk('/in') for f in fs)) + ' | ' + open('/in/index.html').read())")


def report_workflow(key: str = REPORT_KEY) -> dict[str, Any]:
    gate = container("gate", WRITE_REPORT, outputs={"artifacts": [
        {"name": "gate-report", "path": "/tmp/gate-report", "archive": {"none": {}}, "s3": {"key": key}}]})
    show = container("show", READ_REPORT, inputs={"artifacts": [{"name": "report", "path": "/in"}]},
                     outputs={"parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/seen"}}]})
    return workflow([{"name": "gate", "template": "gate"},
                     {"name": "show", "template": "show", "depends": "gate", "arguments": {"artifacts": [
                         {"name": "report", "from": "{{tasks.gate.outputs.artifacts.gate-report}}"}]}}],
                    [gate, show])


def run(tmp_path: Path, wf: dict[str, Any]) -> Ran:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(wf, sort_keys=False), encoding="utf-8")
    return run_file(path, tmp_path)


def node_outputs(ran: Ran, display_name: str) -> dict[str, Any]:
    document = json.loads((ran.result.run_dir / "run.json").read_text())
    [node] = [n for n in document["nodes"].values() if n["displayName"] == display_name]
    return dict(node["outputs"])


@needs_bwrap
def test_a_folder_report_with_a_trailing_slash_key_is_stored_as_is_and_passed_to_the_next_task(
        tmp_path: Path) -> None:
    ran = run(tmp_path, report_workflow())
    assert ran.phases == {"gate": "Succeeded", "show": "Succeeded"}
    gate = ran.result.tree.by_name(f"{ran.result.tree.workflow}.gate")
    assert gate is not None
    key = f"default/{ran.result.tree.workflow}/{pod_name(ran.result.tree.workflow, gate)}/gate-report/"
    # run.json records the key as Argo's status.nodes does (s3.key), every variable substituted
    assert node_outputs(ran, "gate")["artifactLocations"] == {"gate-report": {"s3": {"key": key}}}
    # the folder sits at the key in the run's repository, unarchived: the page and its picture as written
    stored = ran.result.run_dir / "artifacts" / key
    assert (stored / "index.html").read_text() == "<h1>Gate: passed</h1><img src=pictures/auc.svg>"
    assert (stored / "pictures" / "auc.svg").read_text() == "<svg/>"
    assert Path(ran.task("gate")["outputs"]["artifacts"]["gate-report"]) == stored
    # the run page opens the report at its index.html, as Argo's UI does for a folder key
    assert f"href='artifacts/{key}index.html'" in write_run_page(ran.result.run_dir).read_text()
    # the next task got the same folder at its input path
    assert ran.task("show")["outputs"]["parameters"]["seen"] == (
        "index.html pictures/auc.svg | <h1>Gate: passed</h1><img src=pictures/auc.svg>")


@needs_bwrap
def test_a_key_only_file_is_a_tar_gz_at_its_key_and_a_key_only_input_reads_it_back(tmp_path: Path) -> None:
    write = container("write", "open('/tmp/model.txt', 'w').write('weights')", outputs={"artifacts": [
        {"name": "model", "path": "/tmp/model.txt", "s3": {"key": "models/{{workflow.name}}/model.txt"}}]})
    read = container("read", "open('/tmp/seen', 'w').write(open('/in/model.txt').read())",
                     inputs={"artifacts": [{"name": "model", "path": "/in/model.txt",
                                            "s3": {"key": "models/{{workflow.name}}/model.txt"}}]},
                     outputs={"parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/seen"}}]})
    ran = run(tmp_path, workflow([{"name": "write", "template": "write"},
                                  {"name": "read", "template": "read", "depends": "write"}], [write, read]))
    assert ran.phases == {"write": "Succeeded", "read": "Succeeded"}
    assert ran.task("read")["outputs"]["parameters"]["seen"] == "weights"
    stored = ran.result.run_dir / "artifacts" / "models" / ran.result.tree.workflow / "model.txt"
    with tarfile.open(stored, "r:gz") as tar:  # Argo's default archive, at the key itself
        assert tar.getnames() == ["model.txt"]
    assert node_outputs(ran, "write")["artifactLocations"] == {
        "model": {"s3": {"key": f"models/{ran.result.tree.workflow}/model.txt"}}}


@needs_bwrap
def test_a_key_that_leaves_the_repository_fails_the_node_naming_the_key(tmp_path: Path) -> None:
    ran = run(tmp_path, report_workflow(key="../{{workflow.name}}/"))
    assert ran.phases["gate"] == "Error"
    assert "s3.key '../tiny/'" in ran.task("gate")["message"]
    assert ran.phases["show"] == "Omitted"
    assert not (ran.result.run_dir / "tiny").exists()


def test_key_only_s3_runs_here_and_a_named_bucket_or_endpoint_still_needs_an_object_store() -> None:
    def refusals(*locations: dict[str, Any], object_store: bool = False) -> list[str]:
        tmpl = container("c", "pass", outputs={"artifacts": [
            {"name": f"a{i}", "path": f"/tmp/a{i}", "s3": location} for i, location in enumerate(locations)]})
        wf = workflow([{"name": "c", "template": "c"}], [tmpl])
        return [str(r) for r in check(wf, Resolver(wf, TemplateStore()), object_store=object_store).refusals]

    assert refusals({"key": REPORT_KEY}) == []
    assert refusals({"key": "k", "bucket": "b"}, {"key": "k", "endpoint": "minio:9000"}) == [
        "template c outputs.artifacts.a0: s3 artifact without a configured object store (set AWS_ENDPOINT_URL)",
        "template c outputs.artifacts.a1: s3 artifact without a configured object store (set AWS_ENDPOINT_URL)"]
    assert refusals({"key": "k", "accessKeySecret": {"name": "s", "key": "k"}}) == [
        "template c outputs.artifacts.a0: s3 artifact with credentials from a Secret"]


@needs_bwrap
def test_a_cache_hit_puts_its_key_only_folder_back_at_its_key(tmp_path: Path) -> None:
    # Argo's cache points at the key in the shared repository; locally each run has its own, so the cached folder
    # comes back at the key the first run recorded, where a key-only input finds it
    def memo() -> dict[str, Any]:
        return {"metadata": {"name": "memo-key"}, "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "make", "template": "make"}], [{"name": "read", "template": "read"}]]},
            {"name": "make", "memoize": {"key": "k", "maxAge": "1h", "cache": {"configMap": {"name": "reports"}}},
             "container": {"image": "alpine:3.20", "command": ["sh", "-c",
                                                               "mkdir /tmp/r && date +%s%N > /tmp/r/index.html"]},
             "outputs": {"artifacts": [{"name": "r", "path": "/tmp/r", "archive": {"none": {}},
                                        "s3": {"key": "reports/{{workflow.name}}/"}}]}},
            {"name": "read",
             "inputs": {"artifacts": [{"name": "r", "path": "/in", "s3": {"key": "reports/memo-key/"}}]},
             "container": {"image": "alpine:3.20", "command": ["sh", "-c", "cat /in/index.html > /tmp/seen"]},
             "outputs": {"parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/seen"}}]}}]}}

    results = []
    for run_dir in (tmp_path / "first", tmp_path / "second"):
        with bounded(30):
            results.append(run_workflow(memo(), run_dir=run_dir, executor=LocalExecutor(run_dir),
                                        state_dir=tmp_path / "state"))
    first, second = results
    assert second.phase == "Succeeded", second.message
    make = node(second, "memo-key[0].make")
    assert make.memoized
    assert [a.s3_key for a in make.outputs.artifacts] == ["reports/memo-key/"]  # type: ignore[union-attr]
    assert output(node(second, "memo-key[1].read"), "seen") == output(node(first, "memo-key[1].read"), "seen")
    assert (tmp_path / "second" / "artifacts" / "reports" / "memo-key" / "index.html").exists()
