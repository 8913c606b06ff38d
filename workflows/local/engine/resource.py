"""The one resource template that runs on this machine: `action: patch` of the running Workflow's own
metadata.labels and metadata.annotations (docs/local-runner.md, "Resource: patching the Workflow itself").

On Argo the resource pod's `argoexec resource` runs `kubectl patch --type <mergeStrategy> --patch-file <manifest>
{<flags> | -f <manifest>} -o json` (workflow/executor/resource.go:113-168), then reads each output parameter with
`kubectl get <object> -o jsonpath=<jsonPath>` (:308-356). Here the patch is applied to the run's own record of
the Workflow's labels and annotations (metadata.WorkflowMeta: run.json, later `workflow.labels.*`), and output
parameters read from it.

    problems(template, workflow="my-wf", namespace="default")  # [(field, reason)]: refused before the run
    ResourcePatch(op, spec)                                    # a PodHandle: the patch applied when polled

What is accepted (everything else is refused before the run, `problems`):
- `mergeStrategy: merge` (RFC 7386): a manifest `{apiVersion: argoproj.io/v1alpha1, kind: Workflow, metadata:
  {name: <this workflow>, labels, annotations}}` with no flags (kubectl finds the object with `-f`), or a
  manifest `{metadata: {labels, annotations}}` with flags `[workflow, <this workflow>]`; null deletes a key.
- `mergeStrategy: json` (RFC 6902), flags `[workflow, <this workflow>]`, operations `add`, `replace` and
  `remove` on `/metadata/labels/<key>` and `/metadata/annotations/<key>`, applied in order, all or none.
- The default `strategic`: refused. The API server has no strategic merge patch for custom resources (Kubernetes
  documents "Strategic merge patch is not supported for custom resources"), so Argo's step fails; the manifest
  names `merge` or `json` to run.
- Output parameters `valueFrom.jsonPath` of the form `{.metadata.name}`, `{.metadata.namespace}`,
  `{.metadata.labels.<key>}`, `{.metadata.annotations.<key>}` (dots in a key escaped `\\.`, as kubectl's JSONPath
  reads them; a missing key gives "", kubectl's --allow-missing-template-keys). `jqFilter` is refused.
- The workflow name is the literal name or `{{workflow.name}}`: what the patch targets is known before the run.

At run time a patch Kubernetes would reject (an invalid label key or value, `replace`/`remove` of a key that is
not there) fails the node, with nothing applied, as the API server applies nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workflows.local.engine.metadata import LABEL_COMPLETED, LABEL_PHASE, label_key_valid, label_value_errors
from workflows.local.engine.nodes import FAILED, SUCCEEDED, Outputs, Parameter
from workflows.local.engine.pods import AgentTask, PodResult, PodSpec
from workflows.local.engine.state import Operation

API_VERSION = "argoproj.io/v1alpha1"
SELF_KINDS = ("workflow", "workflows", "wf", "workflow.argoproj.io", "workflows.argoproj.io")
STRATEGIC_REFUSAL = ("mergeStrategy strategic (the default) cannot patch a Workflow: the API server has no "
                     "strategic merge patch for custom resources, so Argo's kubectl patch fails; use "
                     "mergeStrategy: merge or json")
_TAG = re.compile(r"\{\{[^{}]*\}\}")
_JSONPATH = re.compile(r"^\{\.metadata\.(name|namespace|labels\.(.+)|annotations\.(.+))\}$")
_POINTER = re.compile(r"^/metadata/(labels|annotations)/(.+)$")


class PatchError(ValueError):
    """A patch this runner does not apply (before the run: a refusal) or Kubernetes would reject (a failed node)."""


def problems(template: Mapping[str, Any], workflow: str, namespace: str) -> list[tuple[str, str]]:
    """Why this resource template cannot run here, as (field, reason); [] when it is a patch of this Workflow's
    labels and annotations that `ResourcePatch` applies as Argo would."""
    resource = template.get("resource") or {}
    found: list[tuple[str, str]] = []
    if resource.get("action") != "patch":
        return [("resource.action", f"resource template with action {resource.get('action')!r} (runs against the "
                                    "cluster; only a patch of this Workflow's labels and annotations runs here)")]
    for key in ("successCondition", "failureCondition", "manifestFrom", "setOwnerReference"):
        if resource.get(key):
            found.append((f"resource.{key}", f"{key} on a resource template (only a plain patch of this "
                                             "Workflow's labels and annotations runs here)"))
    outputs = template.get("outputs") or {}
    if outputs.get("artifacts"):
        found.append(("outputs.artifacts", "output artifacts of a resource template"))
    for param in outputs.get("parameters") or []:
        value_from = param.get("valueFrom") or {}
        path = str(value_from.get("jsonPath") or "")
        if not path or _JSONPATH.match(path) is None:
            found.append((f"outputs.parameters.{param.get('name')}", "a resource template's output parameter "
                          "other than valueFrom.jsonPath {.metadata.name|namespace|labels.KEY|annotations.KEY} "
                          "(jqFilter and other JSONPath expressions are not evaluated here)"))
    try:
        plan(resource, workflow, namespace, placeholders=True)
    except PatchError as err:
        found.append(("resource.manifest", str(err)))
    return found


def plan(resource: Mapping[str, Any], workflow: str, namespace: str,
         placeholders: bool = False) -> list[tuple[str, str, str, str | None]]:
    """The patch as operations (op, "labels"|"annotations", key, value); `placeholders`: before substitution, each
    `{{...}}` read as a value (`{{workflow.name}}` and `{{workflow.namespace}}` as themselves). Raises PatchError."""
    strategy = str(resource.get("mergeStrategy") or "strategic")
    flags = [str(f) for f in resource.get("flags") or []]
    text = str(resource.get("manifest") or "")
    if placeholders:
        known = {"workflow.name": workflow, "workflow.namespace": namespace}
        text = _TAG.sub(lambda m: known.get(m.group()[2:-2].strip(), "x"), text)
        flags = [known.get(f[2:-2].strip(), f) if _TAG.fullmatch(f) else f for f in flags]
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PatchError(f"the manifest is not YAML: {err}") from err
    if strategy == "strategic":
        raise PatchError(STRATEGIC_REFUSAL)
    if strategy not in ("merge", "json"):
        raise PatchError(f"mergeStrategy {strategy!r} is not one of strategic, merge, json")
    if flags:
        if len(flags) != 2 or flags[0].lower() not in SELF_KINDS:
            raise PatchError(f"flags {flags}: only [workflow, <this workflow's name>] is run here")
        if flags[1] != workflow:
            raise PatchError(f"the patch targets Workflow {flags[1]!r}, not this workflow ({workflow!r})")
    if strategy == "json":
        if not flags:
            raise PatchError("a json patch needs flags [workflow, <name>] naming the object")
        return _json_ops(manifest)
    return _merge_ops(manifest, bool(flags), workflow, namespace)


def _merge_ops(manifest: Any, flagged: bool, workflow: str, namespace: str) -> list[tuple[str, str, str, str | None]]:
    if not isinstance(manifest, Mapping):
        raise PatchError("a merge patch manifest must be a mapping")
    allowed = {"metadata"} if flagged else {"apiVersion", "kind", "metadata"}
    extra = sorted(set(manifest) - allowed)
    if extra:
        raise PatchError(f"the patch sets {', '.join(extra)}: only metadata.labels and metadata.annotations of "
                         "this Workflow are patched here")
    if flagged and manifest.get("kind") is not None:
        raise PatchError("flags and a manifest with kind together are not run here")
    if not flagged and (manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != "Workflow"):
        raise PatchError(f"the manifest is not a Workflow (apiVersion {API_VERSION}, kind Workflow)")
    meta = manifest.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise PatchError("metadata must be a mapping")
    extra = sorted(set(meta) - {"name", "namespace", "labels", "annotations"})
    if extra:
        raise PatchError(f"the patch sets metadata.{', metadata.'.join(extra)}: only labels and annotations are "
                         "patched here")
    if (not flagged or meta.get("name") is not None) and meta.get("name") != workflow:
        raise PatchError(f"the patch targets Workflow {meta.get('name')!r}, not this workflow ({workflow!r})")
    if meta.get("namespace") not in (None, namespace):
        raise PatchError(f"the patch targets namespace {meta.get('namespace')!r}, not {namespace!r}")
    ops: list[tuple[str, str, str, str | None]] = []
    for kind in ("labels", "annotations"):
        values = meta.get(kind)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise PatchError(f"metadata.{kind} must be a mapping")
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise PatchError(f"metadata.{kind}.{key}: {value!r} is not a string (Kubernetes rejects it)")
            ops.append(("remove-if-there" if value is None else "add", kind, str(key), value))
    return ops


def _json_ops(manifest: Any) -> list[tuple[str, str, str, str | None]]:
    if not isinstance(manifest, list):
        raise PatchError("a json patch manifest must be a list of operations")
    ops: list[tuple[str, str, str, str | None]] = []
    for i, item in enumerate(manifest):
        if not isinstance(item, Mapping):
            raise PatchError(f"operation {i} is not a mapping")
        op, path = item.get("op"), str(item.get("path") or "")
        match = _POINTER.match(path)
        if op not in ("add", "replace", "remove") or match is None:
            raise PatchError(f"operation {i} ({op} {path}): only add, replace and remove of "
                             "/metadata/labels/<key> or /metadata/annotations/<key> are run here")
        key = match.group(2).replace("~1", "/").replace("~0", "~")
        value = item.get("value")
        if op != "remove" and not isinstance(value, str):
            raise PatchError(f"operation {i} ({op} {path}): the value {value!r} is not a string")
        ops.append((str(op), match.group(1), key, None if op == "remove" else value))
    return ops


def apply(ops: list[tuple[str, str, str, str | None]], labels: Mapping[str, str], annotations: Mapping[str, str]
          ) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The changes (None: removed) the operations make, or PatchError where the API server would refuse them."""
    current = {"labels": dict(labels), "annotations": dict(annotations)}
    changes: dict[str, dict[str, str | None]] = {"labels": {}, "annotations": {}}
    for op, kind, key, value in ops:
        there = key in current[kind]
        if op in ("replace", "remove") and not there:
            raise PatchError(f"{op} operation does not apply: doc is missing key: /metadata/{kind}/{key}")
        if value is None:
            current[kind].pop(key, None)
        else:
            current[kind][key] = value
        changes[kind][key] = value
    for key, value in current["labels"].items():
        if not label_key_valid(key):
            raise PatchError(f"metadata.labels: Invalid value: {key!r}: not a valid label key")
        errors = label_value_errors(value)
        if errors:
            raise PatchError(f"metadata.labels: Invalid value: {value!r}: {';'.join(errors)}")
    return changes["labels"], changes["annotations"]


def read_json_path(path: str, workflow: str, namespace: str, labels: Mapping[str, str],
                   annotations: Mapping[str, str]) -> str:
    """`kubectl get workflow <name> -o jsonpath=<path>` for the forms `problems` accepts ("" when missing)."""
    match = _JSONPATH.match(path)
    if match is None:
        raise PatchError(f"jsonPath {path!r} is not evaluated here")
    if match.group(1) == "name":
        return workflow
    if match.group(1) == "namespace":
        return namespace
    kind, key = ("labels", match.group(2)) if match.group(2) is not None else ("annotations", match.group(3))
    key = key.replace("\\.", ".")
    return (labels if kind == "labels" else annotations).get(key, "")


class ResourcePatch(AgentTask):
    """A PodHandle for a resource template that patches this Workflow: the patch is applied when first polled
    (the pass after the node was created, as a pod runs after it is created)."""

    def __init__(self, op: Operation, spec: PodSpec, namespace: str):
        self.op, self.spec, self.namespace = op, spec, namespace
        self.result: PodResult | None = None
        self.started = time.time()

    def poll(self) -> PodResult | None:
        if self.result is None:
            self.result = self._run()
        return self.result

    def stop(self, phase: str, message: str) -> None:
        if self.result is None:
            self.result = PodResult(phase, message, None, Outputs(), started_at=self.started, finished_at=time.time())

    def _run(self) -> PodResult:
        op, tmpl = self.op, self.spec.template
        meta = op.meta
        log: list[str] = []
        try:
            ops = plan(tmpl.get("resource") or {}, op.workflow, self.namespace)
            labels, annotations = apply(ops, meta.labels, meta.annotations)
        except PatchError as err:
            log.append(f"patch of workflow.argoproj.io/{op.workflow} refused: {err}")
            return self._done(FAILED, f"kubectl patch failed: {err}", None, Outputs(), log)
        meta.patched(labels, annotations, op.globals)
        log.append(f"workflow.argoproj.io/{op.workflow} patched: "
                   + json.dumps({"labels": labels, "annotations": annotations}, sort_keys=True))
        live = {**meta.labels, LABEL_PHASE: "Running", LABEL_COMPLETED: "false"}
        params = []
        for param in (tmpl.get("outputs") or {}).get("parameters") or []:
            path = str((param.get("valueFrom") or {}).get("jsonPath") or "")
            value = read_json_path(path, op.workflow, self.namespace, live, meta.annotations)
            params.append(Parameter(str(param.get("name")), value))
        return self._done(SUCCEEDED, "", 0, Outputs(parameters=params, exit_code="0"), log)

    def _done(self, phase: str, message: str, code: int | None, outputs: Outputs, log: list[str]) -> PodResult:
        folder: Path = self.op.run_dir / "pods" / self.spec.pod_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "log").write_text("\n".join(log) + "\n", encoding="utf-8")
        if phase == FAILED:
            outputs.exit_code = "1"
            code = 1
        return PodResult(phase, message, code, outputs, started_at=self.started, finished_at=time.time(),
                         log=folder / "log")
