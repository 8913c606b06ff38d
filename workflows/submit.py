"""`mlops submit <template>`: apply a model's Argo templates to an Argo Server and submit a Workflow from one,
like `argo submit --from workflowtemplate/<name>`, through Hera's `WorkflowsService`.

The documents come from the same rendering as `mlops compile`; every request body is checked against the
official schemas before anything is sent. Exit codes: 0 submitted (with --wait: Succeeded); 1 the workflow
Failed or ended in Error (--wait); 2 bad usage, refused credentials, a missing template, a body the server
or the schemas reject; 3 the server is unreachable or failing (retrying later may help).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps._core.errors import TransientError, UsageError
from steps._core.errors import run as run_command
from workflows.local.run import choose_policy, parse_parameters, positive, resolve_parameters

if TYPE_CHECKING:
    import requests
    from hera.workflows.service import WorkflowsService

    from steps._core.policy import Policy
    from workflows._schemas import Schemas

DEFAULT_NAMESPACE = "argo"
IMAGE_TAG = "image-tag"  # the templates' step image tag parameter (workflows/_common.py)
RESULTS = {"Succeeded": 0, "Failed": 1, "Error": 1}
REQUEST_TIMEOUT = 30.0  # seconds per request: hera sets none, and a silent server must not hang CI
POLL_FAILURE_BUDGET = 120.0  # seconds of failed polls --wait rides out (a server restart) before giving up
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"  # the label `argo submit --from` sets
COPIED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")
_GROUP_NODES = ("DAG", "Steps", "StepGroup", "TaskGroup")  # structure, not work: left out of progress lines
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")

_EPILOG = """\
environment (the argo CLI's variables):
  ARGO_SERVER                the Argo Server: https://host:port, or host:port (https unless ARGO_SECURE=false)
  ARGO_TOKEN                 the bearer token (`argo auth token`; "Bearer " is added when missing)
  ARGO_NAMESPACE             the namespace (default: argo)
  ARGO_INSECURE_SKIP_VERIFY  true: do not verify the server's TLS certificate
  ARGO_BASE_HREF             the server's base path, when it is served below one
  REQUESTS_CA_BUNDLE         a CA bundle to verify the server's certificate with

This applies only what the Argo Server API manages: the model's WorkflowTemplate and CronWorkflow. Apply the
rest (policy ConfigMaps, Rollouts, Services, AnalysisTemplates, Sensors, RBAC) with
`kubectl apply -k manifests/overlays/<env>`.

examples:
  mlops submit training -p git-commit=$(git rev-parse --short HEAD) -p image-tag=$(git rev-parse HEAD) --wait
  mlops submit training --model fraud-detection -p dataset=s3://bucket/new.parquet --dry-run
"""


@dataclass(frozen=True)
class Server:
    url: str  # scheme://host[:port]/[base/], always ending in "/" (so urljoin keeps the base path)
    namespace: str
    token: str | None
    verify: bool

    def link(self, name: str) -> str:
        """The Argo UI page of a Workflow."""
        return f"{self.url.rstrip('/')}/workflows/{self.namespace}/{name}"


@dataclass(frozen=True)
class Plan:
    template: dict[str, Any]  # the WorkflowTemplate the Workflow refers to
    apply: list[dict[str, Any]]  # created or updated first, in this order (empty with --no-apply)
    workflow: dict[str, Any]


# --- pure parts: configuration, what to send -------------------------------------------------------------


def server_config(argo_server: str | None, namespace: str | None, insecure: bool,
                  env: Mapping[str, str]) -> Server:
    """The Argo Server to talk to, from the flags, else the argo CLI's environment variables."""
    raw = (argo_server or env.get("ARGO_SERVER") or "").strip()
    if not raw:
        raise UsageError("no Argo Server: set ARGO_SERVER (e.g. https://argo.example.com:2746) or --argo-server URL")
    if "://" not in raw:
        # The argo CLI's ARGO_SERVER is host:port, https unless ARGO_SECURE=false.
        raw = ("https://" if _flag(env, "ARGO_SECURE", default=True) else "http://") + raw
    if not raw.startswith(("http://", "https://")):
        raise UsageError(f"ARGO_SERVER {raw!r}: the scheme must be http:// or https://")
    url = raw.rstrip("/") + "/"
    base = env.get("ARGO_BASE_HREF", "").strip("/")
    if base:
        url += base + "/"
    token = (env.get("ARGO_TOKEN") or "").strip() or None
    verify = not (insecure or _flag(env, "ARGO_INSECURE_SKIP_VERIFY", default=False))
    return Server(url=url, namespace=namespace or env.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE,
                  token=token, verify=verify)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise UsageError(f"{name}={value!r}: expected true or false")


def choose_documents(policy: Policy, wanted: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The WorkflowTemplate named `wanted` (or `<model>-<wanted>`) and every document to apply for the model."""
    from workflows import render

    documents = list(render.render_documents(policy).values())
    names = [str(d["metadata"]["name"]) for d in documents if d.get("kind") == "WorkflowTemplate"]
    name = next((n for n in names if n in (wanted, f"{policy.model_name}-{wanted}")), None)
    if name is None:
        raise UsageError(f"no WorkflowTemplate {wanted!r} for model {policy.model_name!r} "
                         f"(templates: {', '.join(names) or 'none'})")
    template = next(d for d in documents if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == name)
    return template, [d for d in documents if d.get("kind") in APPLIED_KINDS]


def workflow_from(template: dict[str, Any], given: dict[str, str], namespace: str) -> dict[str, Any]:
    """The Workflow `argo submit --from workflowtemplate/<name> -p ...` creates: a reference to the template
    with the given parameters (the template's defaults fill the rest, on the server)."""
    resolve_parameters(template, given)  # unknown names, values outside an enum, parameters with no value
    meta = template.get("metadata") or {}
    name = str(meta["name"])
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in COPIED_LABELS}
    labels[TEMPLATE_LABEL] = name
    spec: dict[str, Any] = {"workflowTemplateRef": {"name": name}}
    if given:
        spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in given.items()]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{name}-", "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def with_image_tag(doc: dict[str, Any], tag: str) -> dict[str, Any]:
    """The applied template with `image-tag` defaulting to `tag`: the runs Argo starts later without this command
    (the Sensor's drift retrains, the CronWorkflow's checks) then use the image of the code submitted last."""
    out = copy.deepcopy(doc)
    spec = out.get("spec") or {}
    spec = spec.get("workflowSpec", spec) if out.get("kind") == "CronWorkflow" else spec
    for parameter in (spec.get("arguments") or {}).get("parameters") or []:
        if parameter.get("name") == IMAGE_TAG:
            parameter["value"] = tag
    return out


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.setdefault("metadata", {})["namespace"] = namespace
    return out


def check_bodies(bodies: list[dict[str, Any]], schemas: Schemas | None) -> None:
    """Every body against its official schema, unknown fields included; nothing is sent when one fails."""
    if schemas is None:
        return
    problems = []
    for body in bodies:
        label = f"{body.get('kind')}/{(body.get('metadata') or {}).get('name') or body['metadata'].get('generateName')}"
        problems += [f"{label}: {i.path}: {i.rule}: {i.message}" for i in schemas.validate(body)]
    if problems:
        raise UsageError("the request would not pass the Argo schema; nothing was sent:\n  " + "\n  ".join(problems))


def progress_lines(workflow: dict[str, Any], seen: dict[str, str]) -> list[str]:
    """A line for each node whose phase changed since `seen` (updated in place), in start order."""
    status = workflow.get("status") or {}
    root = (workflow.get("metadata") or {}).get("name")
    nodes = [n for n in (status.get("nodes") or {}).values()
             if n.get("id") != root and n.get("type") not in _GROUP_NODES]
    nodes.sort(key=lambda n: (n.get("startedAt") or "~", n.get("displayName") or n.get("name") or ""))
    lines = []
    for node in nodes:
        phase = node.get("phase") or "Pending"
        if seen.get(node["id"]) == phase:
            continue
        seen[node["id"]] = phase
        name = node.get("displayName") or node.get("name") or node["id"]
        note = f": {node['message']}" if node.get("message") and phase not in ("Running", "Succeeded") else ""
        lines.append(f"  {name:<24} {phase}{note}")
    return lines


# --- talking to the Argo Server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """How the Argo Server API reads, creates and updates one kind: WorkflowsService's methods, and the request
    bodies built with hera's models (`m`, imported only when a request is made)."""

    get: str
    create: str
    update: str
    create_request: Callable[[Any, dict[str, Any], str], Any]  # (m, body, namespace)
    update_request: Callable[[Any, str, dict[str, Any], str], Any]  # (m, name, body, namespace)


# The kinds the Argo Server API manages; Rollouts, Services, Sensors and ConfigMaps go through kubectl.
_APPLY: dict[str, _Kind] = {
    "WorkflowTemplate": _Kind(
        "get_workflow_template", "create_workflow_template", "update_workflow_template",
        lambda m, body, ns: m.WorkflowTemplateCreateRequest(template=m.WorkflowTemplate(**body), namespace=ns),
        lambda m, name, body, ns: m.WorkflowTemplateUpdateRequest(
            name=name, namespace=ns, template=m.WorkflowTemplate(**body)),
    ),
    "CronWorkflow": _Kind(
        "get_cron_workflow", "create_cron_workflow", "update_cron_workflow",
        lambda m, body, ns: m.CreateCronWorkflowRequest(cron_workflow=m.CronWorkflow(**body), namespace=ns),
        lambda m, name, body, ns: m.UpdateCronWorkflowRequest(
            name=name, namespace=ns, cron_workflow=m.CronWorkflow(**body)),
    ),
}
APPLIED_KINDS = tuple(_APPLY)


class ArgoClient:
    """Hera's WorkflowsService with plain errors: our exit codes, the server named, no tracebacks."""

    def __init__(self, server: Server, timeout: float = REQUEST_TIMEOUT):
        from hera.workflows.service import WorkflowsService

        self.server = server
        self.timeout = timeout
        self.service: WorkflowsService = WorkflowsService(
            host=server.url, verify_ssl=server.verify, token=server.token, namespace=server.namespace,
            session=_session(timeout))

    def apply(self, doc: dict[str, Any]) -> str:
        """Create the document, or update it in place (Kubernetes wants the current resourceVersion)."""
        from hera.workflows import models as m

        kind, name, ns = doc["kind"], doc["metadata"]["name"], self.server.namespace
        how = _APPLY.get(kind)
        if how is None:
            raise UsageError(f"{kind} {name}: the Argo Server does not manage this kind (use kubectl apply -k)")
        what = f"{kind} {name} in namespace {ns}"
        body = in_namespace(doc, ns)
        existing = self._call(f"reading {what}", getattr(self.service, how.get), name, missing_ok=True)
        if existing is None:
            self._call(f"creating {what}", getattr(self.service, how.create), how.create_request(m, body, ns))
            return "created"
        body["metadata"]["resourceVersion"] = existing.metadata.resource_version
        self._call(f"updating {what}", getattr(self.service, how.update), name, how.update_request(m, name, body, ns))
        return "configured"

    def get_template(self, name: str) -> dict[str, Any] | None:
        found = self._call(f"reading WorkflowTemplate {name} in namespace {self.server.namespace}",
                           self.service.get_workflow_template, name, missing_ok=True)
        return None if found is None else _dump(found)

    def create_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        from hera.workflows import models as m

        ref = workflow["spec"]["workflowTemplateRef"]["name"]
        request = m.WorkflowCreateRequest(workflow=m.Workflow(**workflow), namespace=self.server.namespace)
        return _dump(self._call(f"submitting a Workflow from WorkflowTemplate {ref} in namespace "
                                f"{self.server.namespace}", self.service.create_workflow, request))

    def get_workflow(self, name: str) -> dict[str, Any]:
        return _dump(self._call(f"reading Workflow {name}", self.service.get_workflow, name))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        import requests
        from hera.exceptions import Forbidden, HeraException, NotFound, Unauthorized

        url = self.server.url.rstrip("/")
        try:
            return fn(*args)
        except requests.exceptions.SSLError as err:
            raise UsageError(f"argo server {url}: TLS failed while {what}: {_reason(err)} (trust its CA with "
                             "REQUESTS_CA_BUNDLE, or --insecure-skip-tls-verify)") from err
        except requests.exceptions.Timeout as err:
            raise TransientError(f"argo server {url} did not answer within {self.timeout:g} s while {what}") from err
        except requests.exceptions.RequestException as err:
            raise TransientError(f"argo server {url} unreachable: {_reason(err)} (while {what})") from err
        except (Unauthorized, Forbidden) as err:
            hint = ("set ARGO_TOKEN to a valid token (`argo auth token`)" if self.server.token is None or
                    isinstance(err, Unauthorized) else
                    f"ARGO_TOKEN's service account lacks the permission in namespace {self.server.namespace}")
            raise UsageError(f"argo server {url} refused {what}: {_message(err)}; {hint}") from err
        except NotFound as err:
            if missing_ok:
                return None
            raise UsageError(f"argo server {url}: not found while {what}: {_message(err)}") from err
        except HeraException as err:
            text = _message(err)
            if re.match(r"HTTP 5\d\d", text):
                raise TransientError(f"argo server {url} failed while {what}: {text}") from err
            raise UsageError(f"argo server {url} rejected {what}: {text}") from err
        except ValueError as err:  # a 2xx that is not an Argo object: ARGO_SERVER points at something else
            raise UsageError(f"{url} did not answer like an Argo Server while {what}: {err}") from err


def _session(timeout: float) -> requests.Session:
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    return TimeoutSession()


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def _message(err: Exception) -> str:
    """`HTTP 401: token not valid` out of hera's "Server returned status code 401 with message: `...`"."""
    text = str(err)
    match = re.search(r"status code (\d+) with message: `(.*)`\s*$", text, flags=re.DOTALL)
    return f"HTTP {match.group(1)}: {match.group(2).strip() or '(no message)'}" if match else text


def _reason(err: Exception) -> str:
    """The innermost cause (`Connection refused`), not urllib3's page-long repr."""
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(err))
    if match:
        return match.group(1).strip()
    inner: BaseException = err
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    return str(inner) or type(inner).__name__


def wait(client: ArgoClient, name: str, out: Callable[[str], None], poll: float,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll the Workflow until it finishes, printing node progress; returns the last Workflow read."""
    seen: dict[str, str] = {}
    failing_since: float | None = None
    while True:
        try:
            workflow = client.get_workflow(name)
        except TransientError as err:
            now = clock()
            if failing_since is None:
                failing_since = now
                out(f"  (still waiting: {err})")
            if now - failing_since > POLL_FAILURE_BUDGET:
                raise
            sleep(poll)
            continue
        failing_since = None
        for line in progress_lines(workflow, seen):
            out(line)
        if (workflow.get("status") or {}).get("phase") in RESULTS:
            return workflow
        sleep(poll)


# --- command line -----------------------------------------------------------------------------------------


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="mlops submit", description=__doc__, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("template", help="`training` (for the model) or a WorkflowTemplate name")
    p.add_argument("-p", "--parameter", dest="parameters", action="append", default=[], metavar="NAME=VALUE",
                   help="a workflow parameter, as with `argo submit -p` (repeatable)")
    p.add_argument("-w", "--wait", action="store_true",
                   help="follow the workflow to its end; exit 0 when it Succeeded, 1 when it Failed or ended in Error")
    p.add_argument("--model", help="the model whose templates are applied (default: -p model=, else the only policy)")
    p.add_argument("--policy", type=Path, help="the model's policy file (default: gates/<model>.yaml)")
    p.add_argument("-n", "--namespace", help=f"namespace (default: $ARGO_NAMESPACE, else {DEFAULT_NAMESPACE})")
    p.add_argument("--argo-server", metavar="URL", help="the Argo Server (default: $ARGO_SERVER)")
    p.add_argument("-k", "--insecure-skip-tls-verify", "--insecure-skip-verify", dest="insecure", action="store_true",
                   help="do not verify the server's TLS certificate (default: $ARGO_INSECURE_SKIP_VERIFY)")
    p.add_argument("--no-apply", action="store_true",
                   help="submit from the template already on the server; apply nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="print the documents it would apply and the Workflow it would submit; send nothing")
    p.add_argument("--poll-interval", type=positive, default=5.0, metavar="S",
                   help="seconds between status reads with --wait (default: 5)")
    p.add_argument("--schemas", type=Path,
                   help="the schemas folder (default: $MLOPS_SCHEMAS, else ../shared/schemas beside the repo)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with warnings.catch_warnings():
        # hera's service calls pydantic's deprecated `.json()`; with -k urllib3 warns on every request.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        return run_command("mlops submit", lambda: submit(args, os.environ))


def submit(args: argparse.Namespace, env: Mapping[str, str], out: Callable[[str], None] | None = None) -> int:
    out = out or (lambda line: print(line, flush=True))
    given = parse_parameters(args.parameters)
    server = None if args.dry_run else server_config(args.argo_server, args.namespace, args.insecure, env)
    namespace = server.namespace if server else args.namespace or env.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE
    policy = _policy(args.policy, args.model or given.get("model"))
    template, documents = choose_documents(policy, args.template)
    name = str(template["metadata"]["name"])
    client = ArgoClient(server) if server else None
    if args.no_apply:
        documents = []
        if client is not None:
            found = client.get_template(name)
            if found is None:
                raise UsageError(f"WorkflowTemplate {name} not found in namespace {namespace} on "
                                 f"{client.server.url.rstrip('/')}: run without --no-apply to apply it, "
                                 "or check --namespace")
            template = found
    if IMAGE_TAG in given:
        documents = [with_image_tag(d, given[IMAGE_TAG]) for d in documents]
    plan = Plan(template=template, apply=documents, workflow=workflow_from(template, given, namespace))
    check_bodies([in_namespace(d, namespace) for d in plan.apply] + [plan.workflow], _schemas(args.schemas))

    if client is None:
        from workflows.render import to_yaml

        print(f"mlops submit: dry run: nothing sent (namespace {namespace})", file=sys.stderr)
        out("---\n".join(to_yaml(in_namespace(d, namespace)) for d in [*plan.apply, plan.workflow]).rstrip())
        return 0
    for doc in plan.apply:
        out(f"{doc['kind'].lower()}/{doc['metadata']['name']} {client.apply(doc)}")
    created = client.create_workflow(plan.workflow)
    wf_name = str(created["metadata"]["name"])
    out(f"Workflow {wf_name} submitted (namespace {namespace}, from WorkflowTemplate {name})")
    out(f"  {client.server.link(wf_name)}")
    if not args.wait:
        return 0
    try:
        finished = wait(client, wf_name, out, args.poll_interval)
    except KeyboardInterrupt:
        print(f"mlops submit: stopped waiting; {wf_name} keeps running: {client.server.link(wf_name)}", file=sys.stderr)
        return 130
    status = finished.get("status") or {}
    phase = str(status.get("phase"))
    message = f" ({status['message']})" if status.get("message") else ""
    out(f"Workflow {wf_name}: {phase}{message}")
    return RESULTS[phase]


def _policy(policy_file: Path | None, model: str | None) -> Policy:
    from steps._core.policy import PolicyError

    try:
        return choose_policy(policy_file, model)  # the same model choice as `mlops run`
    except (PolicyError, OSError) as err:
        raise UsageError(str(err)) from err


def _schemas(explicit: Path | None) -> Schemas | None:
    from workflows._schemas import Schemas, locate

    folder = locate(explicit)
    if folder is None:
        print("mlops submit: no schemas found (--schemas DIR, $MLOPS_SCHEMAS or ../shared/schemas): the request "
              "bodies are not schema-checked before sending", file=sys.stderr)
        return None
    try:
        return Schemas(folder)
    except FileNotFoundError as err:
        raise UsageError(f"--schemas: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
