"""The official schemas (vendored in ../shared/schemas, see its README) as one validator per kind.

Argo Workflows kinds use argo-workflows.schema.json (IntOrString patched to accept integers, as Argo does),
Argo Events kinds argo-events.schema.json (webhook `url` not required, as in the cluster), Rollouts,
AnalysisTemplates and PodMonitors the `openAPIV3Schema` of their CRD, core kinds kubernetes-validate.
None of the Argo schemas forbids unknown fields, so each validator also runs in a strict mode (every object
with declared properties gets `additionalProperties: false`): a typo such as `entrypiont` is an error.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

WORKFLOWS_FILE = "argo-workflows.schema.json"
EVENTS_FILE = "argo-events.schema.json"
WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow", "WorkflowEventBinding")
EVENT_KINDS = ("EventSource", "Sensor", "EventBus")


@dataclass(frozen=True)
class SchemaIssue:
    path: str  # dotted, with [i] for list items: spec.templates[0].container.args
    rule: str  # "schema" (the official schema says no) or "unknown-field" (a key the schema does not define)
    message: str


class NoSchema(LookupError):
    """No schema for a document's apiVersion and kind."""


def locate(explicit: Path | None = None) -> Path | None:
    """`--schemas DIR`, else $MLOPS_SCHEMAS, else ../shared/schemas beside the repo root; None when absent."""
    if explicit is not None:
        return explicit
    if os.environ.get("MLOPS_SCHEMAS"):
        return Path(os.environ["MLOPS_SCHEMAS"])
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas"
    return candidate if (candidate / WORKFLOWS_FILE).is_file() else None


class Schemas:
    """Validators for one schemas folder, built lazily and kept for the process."""

    def __init__(self, folder: Path):
        if not (folder / WORKFLOWS_FILE).is_file():
            raise FileNotFoundError(f"{folder}: no {WORKFLOWS_FILE} (see ../shared/schemas/README.md)")
        self.folder = folder
        # Kubernetes' own kinds are checked by kubernetes-validate (the lint extra: 100 MB of schemas, so not a
        # dependency of the images); without it they are left unchecked and listed here, for the caller to say so.
        self.kubernetes = importlib.util.find_spec("kubernetes_validate") is not None
        self.unchecked: set[str] = set()

    def validate(self, doc: dict[str, Any]) -> list[SchemaIssue]:
        """Every schema and unknown-field issue of one document. Raises NoSchema for a kind we have no schema for."""
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        if api_version == "argoproj.io/v1alpha1" and kind in WORKFLOW_KINDS:
            definition = f"io.argoproj.workflow.v1alpha1.{kind}"
            return _issues(_definitions_validator(self.folder / WORKFLOWS_FILE, definition), doc)
        if api_version == "argoproj.io/v1alpha1" and kind in EVENT_KINDS:
            definition = f"io.argoproj.events.v1alpha1.{kind}"
            return _issues(_definitions_validator(self.folder / EVENTS_FILE, definition), doc)
        crd = _crd_validators(self.folder).get((api_version, kind))
        if crd is not None:
            return _issues(crd, doc)
        if "." in api_version.split("/")[0] and not api_version.split("/")[0].endswith(".k8s.io"):
            raise NoSchema(f"no schema for {kind} ({api_version}) in {self.folder}")
        if not self.kubernetes:
            self.unchecked.add(kind)
            return []
        return _kubernetes(doc)


def _kubernetes(doc: dict[str, Any]) -> list[SchemaIssue]:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except SchemaNotFoundError as err:
        raise NoSchema(f"no schema for {doc.get('kind')} ({doc.get('apiVersion')}) in kubernetes-validate") from err
    except kubernetes_validate.ValidationError as err:
        # kubernetes-validate stops at the first error.
        return _from_error(err)
    return []


def _issues(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[SchemaIssue]:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [issue for err in errors for issue in _from_error(err)]


def _from_error(err: jsonschema.ValidationError) -> list[SchemaIssue]:
    if err.validator == "additionalProperties" and isinstance(err.instance, dict) and isinstance(err.schema, dict):
        declared = err.schema.get("properties", {})
        return [
            SchemaIssue(_dotted([*err.absolute_path, key]), "unknown-field",
                        f"{key!r} is not a field here{_closest(key, declared)}")
            for key in sorted(k for k in err.instance if k not in declared)
        ]
    return [SchemaIssue(_dotted(err.absolute_path), "schema", err.message)]


def _closest(key: str, declared: dict[str, Any]) -> str:
    import difflib

    match = difflib.get_close_matches(key, list(declared), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _dotted(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


@cache
def _load_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@cache
def _definitions_validator(path: Path, definition: str) -> jsonschema.protocols.Validator:
    definitions = json.loads(json.dumps(_load_json(path)["definitions"]))  # a private copy to patch
    if path.name == WORKFLOWS_FILE:
        # Quirk 1 of the README: IntOrString is {"type": "string"}, yet Argo accepts `limit: 3`.
        definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["integer", "string"]}
    else:
        # Quirk 3: every Go field without omitempty is `required`; the cluster needs only these for a webhook.
        for name in ("WebhookContext", "WebhookEventSource"):
            entry = definitions.get(f"io.argoproj.events.v1alpha1.{name}")
            if entry is not None:
                entry["required"] = ["endpoint", "method", "port"]
    for entry in definitions.values():
        _strict(entry)
    return jsonschema.Draft7Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})


@cache
def _crd_validators(folder: Path) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for path in sorted(folder.glob("*crd*.yaml")):
        with open(path, encoding="utf-8") as fh:
            docs = list(yaml.load_all(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        for crd in docs:
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True) and "schema" in version:
                    schema = json.loads(json.dumps(version["schema"]["openAPIV3Schema"]))
                    _strict(schema)
                    validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def _strict(schema: Any) -> None:
    """Forbid undeclared keys in every object schema that declares its properties (in place)."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if "properties" in schema:
        for sub in schema["properties"].values():
            _strict(sub)
        schema.setdefault("additionalProperties", False)
    if isinstance(schema.get("additionalProperties"), dict):
        _strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        _strict(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _strict(sub)
