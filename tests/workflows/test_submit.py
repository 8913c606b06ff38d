"""`mlops submit` against a real HTTP server on 127.0.0.1 that speaks the few Argo Server API endpoints it uses
(workflow templates, cron workflows, workflows), records every request and checks what Kubernetes would check
(the token, the resourceVersion of an update, the referenced template)."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from tests.support.processes import free_port
from workflows import render, submit
from workflows._schemas import Schemas

BODY_RESOURCE = {"template": "WorkflowTemplate", "cronWorkflow": "CronWorkflow", "workflow": "Workflow"}
TOKEN = "s3cr3t-token"


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class FakeArgo:
    """An Argo Server in memory. `script` is the sequence of Workflow statuses served by successive GETs of a
    Workflow (the last one repeats); `fail` maps a "METHOD path-prefix" to an HTTP status to answer with,
    `failures` to how many times (default: always)."""

    token: str | None = f"Bearer {TOKEN}"
    script: list[dict[str, Any]] = field(default_factory=lambda: [{"phase": "Running"}])
    fail: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, ns, name)
    reads: dict[str, int] = field(default_factory=dict)
    url: str = ""

    def handle(self, method: str, path: str, authorization: str | None, body: dict[str, Any] | None
               ) -> tuple[int, dict[str, Any]]:
        self.requests.append(Request(method, path, authorization, body))
        for rule, status in self.fail.items():
            if f"{method} {path}".startswith(rule) and self.failures.get(rule, 1) > 0:
                if rule in self.failures:
                    self.failures[rule] -= 1
                return status, {"code": 13, "message": f"injected failure {status}"}
        if self.token is not None and authorization != self.token:
            return 401, {"code": 16, "message": "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"}
        match = re.fullmatch(r"/api/v1/(workflow-templates|cron-workflows|workflows)/([^/]+)(?:/([^/]+))?", path)
        if not match:
            return 404, {"code": 5, "message": f"no route {path}"}
        collection, namespace, name = match.groups()
        kind = {"workflow-templates": "WorkflowTemplate", "cron-workflows": "CronWorkflow",
                "workflows": "Workflow"}[collection]
        key = (kind, namespace, name or "")
        if method == "GET":
            if key not in self.objects:
                return 404, {"code": 5, "message": f'{collection.replace("-", "")}.argoproj.io "{name}" not found'}
            doc = self.objects[key]
            if kind == "Workflow":
                step = min(self.reads.get(name, 0), len(self.script) - 1)
                self.reads[name] = self.reads.get(name, 0) + 1
                doc = {**doc, "status": self.script[step]}
            return 200, doc
        assert body is not None
        resource = next(v for k, v in body.items() if k in BODY_RESOURCE)
        if method == "POST" and kind == "Workflow":
            ref = resource["spec"]["workflowTemplateRef"]["name"]
            if ("WorkflowTemplate", namespace, ref) not in self.objects:
                return 400, {"code": 3, "message": f'workflowtemplates.argoproj.io "{ref}" not found'}
            name = resource["metadata"]["generateName"] + secrets.token_hex(3)[:5]
            stored = json.loads(json.dumps(resource))
            stored["metadata"].update(name=name, namespace=namespace, uid=secrets.token_hex(8))
            self.objects[(kind, namespace, name)] = stored
            return 200, stored
        stored = json.loads(json.dumps(resource))
        if method == "POST":
            key = (kind, namespace, stored["metadata"]["name"])
            if key in self.objects:
                return 409, {"code": 6, "message": "already exists"}
            version = 1
        elif method == "PUT":
            if key not in self.objects:
                return 404, {"code": 5, "message": "not found"}
            current = self.objects[key]["metadata"]["resourceVersion"]
            if stored["metadata"].get("resourceVersion") != current:
                # What the API server says to an update without the current resourceVersion.
                return 409, {"code": 10, "message": "the object has been modified; please apply your changes "
                                                    "to the latest version and try again"}
            version = int(current) + 1
        else:
            return 405, {"code": 12, "message": "method not allowed"}
        stored["metadata"].update(namespace=namespace, resourceVersion=str(version))
        self.objects[key] = stored
        return 200, stored

    def bodies(self, method: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.body is not None and (method is None or r.method == method)]


@pytest.fixture
def argo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgo]:
    fake = FakeArgo()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path.split("?")[0], self.headers.get("Authorization"),
                                         body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    for name in ("ARGO_NAMESPACE", "ARGO_INSECURE_SKIP_VERIFY", "ARGO_BASE_HREF", "ARGO_SECURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARGO_SERVER", fake.url)
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def model(policy_file: Path) -> str:
    return load_policy(policy_file).model_name


@pytest.fixture(scope="module")
def rendered(policy_file: Path) -> dict[str, dict[str, Any]]:
    """The model's Argo Server documents, by kind, as `mlops compile` renders them."""
    return {d["kind"]: d for d in render.render_documents(load_policy(policy_file)).values()
            if d["kind"] in submit.APPLIED_KINDS}


def mlops_submit(policy_file: Path, *args: str) -> int:
    return submit.main(["training", "--policy", str(policy_file), "--poll-interval", "0.01", *args])


def node(node_id: str, name: str, phase: str, message: str = "", started: str = "2026-01-01T00:00:00Z"
         ) -> dict[str, Any]:
    out = {"id": node_id, "name": name, "displayName": name, "type": "Pod", "phase": phase, "startedAt": started}
    return {**out, "message": message} if message else out


@pytest.mark.integration
def test_submit_applies_the_templates_then_submits_a_workflow_from_the_template(
        argo, policy_file, model, rendered, schemas_dir, capsys):
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert mlops_submit(policy_file, "-p", "git-commit=0123456", "-p", f"image-tag={sha}") == 0

    template = f"{model}-training"
    cron = rendered["CronWorkflow"]["metadata"]["name"]
    assert [(r.method, r.path) for r in argo.requests] == [
        ("GET", f"/api/v1/workflow-templates/argo/{template}"), ("POST", "/api/v1/workflow-templates/argo"),
        ("GET", f"/api/v1/cron-workflows/argo/{cron}"), ("POST", "/api/v1/cron-workflows/argo"),
        ("POST", "/api/v1/workflows/argo"),
    ]
    assert {r.authorization for r in argo.requests} == {f"Bearer {TOKEN}"}  # "Bearer " added, as the argo CLI does
    # What reached the server is what `mlops compile` renders, in the namespace, and the Workflow refers to it.
    posted = {BODY_RESOURCE[k]: v for body in argo.bodies("POST") for k, v in body.items() if k in BODY_RESOURCE}
    for kind in submit.APPLIED_KINDS:
        expected = submit.with_image_tag(rendered[kind], sha)
        assert posted[kind] == {**expected, "metadata": {**expected["metadata"], "namespace": "argo"}}
    # The applied templates default to the submitted image, so the Sensor's retrains and the hourly drift check
    # that Argo starts later run the code this submit came from.
    template_args = posted["WorkflowTemplate"]["spec"]["arguments"]["parameters"]
    cron_args = posted["CronWorkflow"]["spec"]["workflowSpec"]["arguments"]["parameters"]
    for parameters in (template_args, cron_args):
        assert {"name": "image-tag", "value": sha} in [{"name": p["name"], "value": p.get("value")} for p in parameters]
    assert rendered["WorkflowTemplate"] != submit.with_image_tag(rendered["WorkflowTemplate"], sha)
    workflow = posted["Workflow"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": template}
    assert workflow["spec"]["arguments"]["parameters"] == [{"name": "git-commit", "value": "0123456"},
                                                           {"name": "image-tag", "value": sha}]
    assert workflow["metadata"]["generateName"] == f"{template}-"
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == template
    # Every body the server received passes the official schema, unknown fields included.
    schemas = Schemas(schemas_dir)
    for kind, resource in posted.items():
        assert schemas.validate(resource) == [], kind

    name = next(n for (k, _, n) in argo.objects if k == "Workflow")
    out = capsys.readouterr().out
    assert f"workflowtemplate/{template} created" in out and f"cronworkflow/{cron} created" in out
    assert f"Workflow {name} submitted" in out
    assert f"{argo.url}/workflows/argo/{name}" in out.splitlines()[-1]


@pytest.mark.integration
def test_a_second_submit_updates_the_templates_at_their_current_resource_version(
        argo, policy_file, model, schemas_dir, capsys):
    assert mlops_submit(policy_file, "-n", "ml") == 0
    assert mlops_submit(policy_file, "-n", "ml") == 0

    puts = [r for r in argo.requests if r.method == "PUT"]
    assert [r.path for r in puts] == [f"/api/v1/workflow-templates/ml/{model}-training",
                                      f"/api/v1/cron-workflows/ml/{model}-drift"]
    # The fake server answers 409 to an update without the current resourceVersion, as Kubernetes does.
    assert all(r.body["name"] and r.body["namespace"] == "ml" for r in puts)
    assert argo.objects[("WorkflowTemplate", "ml", f"{model}-training")]["metadata"]["resourceVersion"] == "2"
    schemas = Schemas(schemas_dir)
    for body in argo.bodies("PUT"):
        resource = body.get("template") or body["cronWorkflow"]
        assert schemas.validate(resource) == []
    assert len([k for k in argo.objects if k[0] == "Workflow"]) == 2
    out = capsys.readouterr().out
    assert f"workflowtemplate/{model}-training configured" in out
    assert "/workflows/ml/" in out


@pytest.mark.integration
@pytest.mark.parametrize(("parameter", "expected"), [
    ("no-such-parameter=1", "-p no-such-parameter: the workflow has no parameter 'no-such-parameter'"),
    ("git-commit", "-p 'git-commit': expected NAME=VALUE"),
], ids=["undeclared", "no-equals"])
def test_a_bad_parameter_is_a_usage_error_and_nothing_is_sent(argo, policy_file, parameter, expected, capsys):
    assert mlops_submit(policy_file, "-p", parameter) == 2
    assert expected in capsys.readouterr().err
    assert argo.requests == []


@pytest.mark.integration
def test_an_enum_parameter_outside_its_values_is_refused_before_sending(argo, policy_file, rendered, capsys):
    declared = rendered["WorkflowTemplate"]["spec"]["arguments"]["parameters"]
    enum = next((p for p in declared if p.get("enum")), None)
    if enum is None:
        pytest.skip("the template declares no enum parameter")
    assert mlops_submit(policy_file, "-p", f"{enum['name']}=not-an-option") == 2
    assert f"parameter {enum['name']!r}: 'not-an-option' is not one of" in capsys.readouterr().err
    assert argo.requests == []


@pytest.mark.integration
@pytest.mark.parametrize(("phase", "code"), [("Succeeded", 0), ("Failed", 1), ("Error", 1)])
def test_wait_follows_the_nodes_and_exits_with_the_workflows_result(argo, policy_file, phase, code, capsys):
    message = "" if phase == "Succeeded" else "child 'train' failed"
    argo.script = [
        {"phase": "Running", "nodes": {"n1": node("n1", "validate", "Running")}},
        {"phase": "Running", "nodes": {"n1": node("n1", "validate", "Running")}},
        {"phase": "Running", "nodes": {"n1": node("n1", "validate", "Succeeded"),
                                       "n2": node("n2", "train", "Running", started="2026-01-01T00:01:00Z")}},
        {"phase": phase, "message": message,
         "nodes": {"n1": node("n1", "validate", "Succeeded"),
                   "n2": node("n2", "train", "Succeeded" if code == 0 else "Failed",
                              "" if code == 0 else "exit code 2", started="2026-01-01T00:01:00Z")}},
    ]
    assert mlops_submit(policy_file, "--wait") == code

    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    progress = [words for words in lines if words and words[0] in ("validate", "train")]
    assert progress[:3] == [["validate", "Running"], ["validate", "Succeeded"], ["train", "Running"]]
    assert progress[3][:2] == ["train", "Succeeded" if code == 0 else "Failed:"]
    assert len(progress) == 4  # a node is printed when its phase changes, not at every poll
    assert lines[-1][2] == phase
    assert " ".join(lines[-1]).endswith(f"({message})" if message else phase)


@pytest.mark.integration
def test_wait_rides_out_a_server_that_briefly_fails(argo, policy_file, capsys):
    argo.script = [{"phase": "Succeeded"}]
    argo.fail["GET /api/v1/workflows/"] = 503
    argo.failures["GET /api/v1/workflows/"] = 2
    assert mlops_submit(policy_file, "--wait") == 0
    out = capsys.readouterr().out
    assert "(still waiting: argo server" in out and "HTTP 503" in out
    assert out.splitlines()[-1].endswith(": Succeeded")
    assert [r.method for r in argo.requests].count("GET") == 5  # two template reads, two failed polls, one good


@pytest.mark.integration
@pytest.mark.parametrize(("case", "code", "expected"), [
    ("wrong-token", 2, ["HTTP 401: token not valid", "ARGO_TOKEN"]),
    ("forbidden", 2, ["HTTP 403", "lacks the permission in namespace argo"]),
    ("server-error", 3, ["HTTP 500: injected failure 500"]),
], ids=["401", "403", "500"])
def test_server_refusals_are_plain_errors(argo, policy_file, monkeypatch, case, code, expected, capsys):
    if case == "wrong-token":
        monkeypatch.setenv("ARGO_TOKEN", "Bearer wrong")
    else:
        argo.fail["GET /api/v1/workflow-templates"] = 403 if case == "forbidden" else 500
    assert mlops_submit(policy_file) == code
    err = capsys.readouterr().err
    assert err.startswith(f"mlops submit: error: argo server {argo.url} ")
    for text in expected:
        assert text in err
    assert "Traceback" not in err
    assert [r.method for r in argo.requests] == ["GET"]  # stopped at the first refusal: nothing created


def test_an_unreachable_server_is_a_transient_error(policy_file, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ARGO_SERVER", url)
    assert mlops_submit(policy_file) == 3
    err = capsys.readouterr().err
    assert f"argo server {url} unreachable: Connection refused" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.integration
def test_no_apply_with_the_template_missing_says_so_and_submits_nothing(argo, policy_file, model, capsys):
    assert mlops_submit(policy_file, "--no-apply") == 2
    err = capsys.readouterr().err
    assert f"WorkflowTemplate {model}-training not found in namespace argo on {argo.url}" in err
    assert [r.method for r in argo.requests] == ["GET"]


@pytest.mark.integration
def test_no_apply_submits_from_the_template_on_the_server(argo, policy_file, model, capsys):
    assert mlops_submit(policy_file) == 0
    before = len(argo.requests)
    assert mlops_submit(policy_file, "--no-apply", "-p", "reason=manual") == 0
    assert [(r.method, r.path) for r in argo.requests[before:]] == [
        ("GET", f"/api/v1/workflow-templates/argo/{model}-training"), ("POST", "/api/v1/workflows/argo")]


@pytest.mark.integration
def test_a_template_the_model_does_not_render_is_named_with_the_choices(argo, policy_file, model, capsys):
    assert submit.main(["retraining", "--policy", str(policy_file)]) == 2
    assert f"no WorkflowTemplate 'retraining' for model {model!r} (templates: {model}-training)" in \
        capsys.readouterr().err
    assert argo.requests == []


def test_no_argo_server_is_a_usage_error(policy_file, monkeypatch, capsys):
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    assert mlops_submit(policy_file) == 2
    assert "no Argo Server: set ARGO_SERVER" in capsys.readouterr().err


def test_dry_run_prints_schema_valid_documents_and_needs_no_server(policy_file, model, monkeypatch, schemas_dir,
                                                                   capsys):
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    assert mlops_submit(policy_file, "--dry-run", "-n", "ml", "-p", "reason=test") == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == [*submit.APPLIED_KINDS, "Workflow"]
    assert {d["metadata"]["namespace"] for d in docs} == {"ml"}
    assert docs[-1]["spec"]["arguments"]["parameters"] == [{"name": "reason", "value": "test"}]
    schemas = Schemas(schemas_dir)
    assert [issue for d in docs for issue in schemas.validate(d)] == []


@pytest.mark.parametrize(("flag", "env", "expected"), [
    (None, {"ARGO_SERVER": "argo.example.com:2746"}, ("https://argo.example.com:2746/", "argo", True)),
    (None, {"ARGO_SERVER": "localhost:2746", "ARGO_SECURE": "false"}, ("http://localhost:2746/", "argo", True)),
    (None, {"ARGO_SERVER": "https://h/", "ARGO_BASE_HREF": "/argo/", "ARGO_NAMESPACE": "ml",
            "ARGO_INSECURE_SKIP_VERIFY": "true"}, ("https://h/argo/", "ml", False)),
    ("https://flag:1", {"ARGO_SERVER": "https://env:2"}, ("https://flag:1/", "argo", True)),
], ids=["argo-cli-host-port", "argo-secure-false", "base-href-namespace-insecure", "flag-wins"])
def test_server_address_follows_the_argo_cli(flag, env, expected):
    server = submit.server_config(flag, None, False, env)
    assert (server.url, server.namespace, server.verify) == expected
    assert server.link("wf-abc") == f"{expected[0].rstrip('/')}/workflows/{expected[1]}/wf-abc"


def test_a_bad_boolean_in_the_environment_names_the_variable():
    with pytest.raises(submit.UsageError, match="ARGO_INSECURE_SKIP_VERIFY='maybe': expected true or false"):
        submit.server_config("https://h", None, False, {"ARGO_INSECURE_SKIP_VERIFY": "maybe"})


def test_help_says_how_the_other_resources_are_applied(capsys):
    with pytest.raises(SystemExit) as done:
        submit.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "kubectl apply -k manifests/overlays/<env>" in out
    for variable in ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_INSECURE_SKIP_VERIFY"):
        assert variable in out


def test_a_body_the_schema_rejects_is_refused_with_its_path(schemas_dir, rendered):
    workflow = submit.workflow_from(rendered["WorkflowTemplate"], {}, "argo")
    workflow["spec"]["workflowTemplateRef"]["nmae"] = workflow["spec"]["workflowTemplateRef"].pop("name")
    with pytest.raises(submit.UsageError) as refused:
        submit.check_bodies([workflow], Schemas(schemas_dir))
    assert "nothing was sent" in str(refused.value)
    assert "spec.workflowTemplateRef.nmae: unknown-field: 'nmae' is not a field here (did you mean 'name'?)" in \
        str(refused.value)
