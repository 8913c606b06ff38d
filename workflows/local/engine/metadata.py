"""The Workflow's own labels and annotations, as Argo v4.1.2's controller sets them (docs/local-runner.md,
"Workflow metadata").

    meta = WorkflowMeta.submitted(workflow)            # metadata.labels/annotations as submitted, plus the
                                                       # workflow-template label of a workflowTemplateRef
    meta.apply(spec, globals_)                         # updateWorkflowMetadata (operator.go:609-662); raises
                                                       # MetadataError: the workflow ends Error, no node
    meta.finish(phase)                                 # the phase/completed labels markWorkflowPhase sets

`spec.workflowMetadata` is applied once, on the first pass, after global substitution (operator.go:4536-4552):
`labels` and `annotations` substituted with the globals (`{{workflow.parameters.x}}`, `{{=expr}}`), each label
value checked as a Kubernetes label value; `labelsFrom` expressions (expr-lang) evaluated with the global
parameters and Argo's functions, each result a string and a valid label value. The `workflow.labels.<name>` and
`workflow.annotations.<name>` variables take the values set. Later passes see the labels a resource template
patched onto the Workflow (resource.py), so its `workflow.labels.<name>` follow too.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.local.engine.substitute import replace_obj
from workflows.local.lang.errors import ExprCompileError, ExprSyntaxError, LangError, Unsupported
from workflows.local.lang.exprlang import argo_env, compile_expr
from workflows.local.lang.gotypes import go_type
from workflows.local.lang.sprig import go_quote

LABEL_WORKFLOW_TEMPLATE = "workflows.argoproj.io/workflow-template"
LABEL_CLUSTER_WORKFLOW_TEMPLATE = "workflows.argoproj.io/cluster-workflow-template"
LABEL_CRON_WORKFLOW = "workflows.argoproj.io/cron-workflow"
LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
ANNOTATION_POD_NAME_FORMAT = "workflows.argoproj.io/pod-name-format"

# k8s.io/apimachinery/pkg/util/validation: IsValidLabelValue and IsQualifiedName
_LABEL_VALUE_FMT = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MESSAGE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                        "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                        "'my_value',  or '12345', regex used for validation is '" + _LABEL_VALUE_FMT + "')")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class MetadataError(LangError):
    """workflowMetadata cannot be applied: Argo marks the workflow Error with this message, before any node."""


def label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue: [] when `value` is a valid label value, else Kubernetes' reasons."""
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errors.append(_LABEL_VALUE_MESSAGE)
    return errors


def label_key_valid(key: str) -> bool:
    """validation.IsQualifiedName: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


@dataclass
class WorkflowMeta:
    """The Workflow's metadata.labels and metadata.annotations as the cluster holds them during the run."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def submitted(cls, workflow: Mapping[str, Any]) -> WorkflowMeta:
        """The submitted Workflow's metadata; with a workflowTemplateRef, the label setWfTemplateLabel adds
        (operator.go:4748-4760)."""
        meta = workflow.get("metadata") or {}
        labels = {str(k): _text(v) for k, v in (meta.get("labels") or {}).items()}
        annotations = {str(k): _text(v) for k, v in (meta.get("annotations") or {}).items()}
        ref = (workflow.get("spec") or {}).get("workflowTemplateRef")
        if isinstance(ref, Mapping) and ref.get("name"):
            key = LABEL_CLUSTER_WORKFLOW_TEMPLATE if ref.get("clusterScope") else LABEL_WORKFLOW_TEMPLATE
            labels[key] = str(ref["name"])
        return cls(labels, annotations)

    def apply(self, spec: Mapping[str, Any], globals_: dict[str, str]) -> None:
        """updateWorkflowMetadata: labels, annotations, then labelsFrom, into this metadata and `globals_`."""
        raw = spec.get("workflowMetadata")
        if not raw:
            return
        md = replace_obj(copy.deepcopy(raw), globals_, None)  # substituteGlobalVariables(globalParams)
        updated: dict[str, str] = {}
        for name, value in sorted((md.get("labels") or {}).items()):
            value = _text(value)
            errors = label_value_errors(value)
            if errors:
                raise MetadataError(f"invalid label value {go_quote(value)} for label {go_quote(name)}: "
                                    + ";".join(errors))
            self.labels[name] = value
            updated[f"workflow.labels.{name}"] = value
        for name, value in sorted((md.get("annotations") or {}).items()):
            self.annotations[name] = _text(value)
            updated[f"workflow.annotations.{name}"] = _text(value)
        env = argo_env(globals_)
        for name, source in sorted((md.get("labelsFrom") or {}).items()):
            expression = str((source or {}).get("expression") or "")
            value = _label_from(name, expression, env)
            errors = label_value_errors(value)
            if errors:
                raise MetadataError(f"invalid label value {go_quote(value)} for label {go_quote(name)} and "
                                    f"expression {go_quote(expression)}: " + ";".join(errors))
            self.labels[name] = value
            updated[f"workflow.labels.{name}"] = value
        globals_.update(updated)

    def patched(self, labels: Mapping[str, str | None], annotations: Mapping[str, str | None],
                globals_: dict[str, str]) -> None:
        """A resource template's patch of this Workflow (None: the key removed); later passes see it."""
        for kind, target, changes in (("labels", self.labels, labels), ("annotations", self.annotations,
                                                                          annotations)):
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                    globals_.pop(f"workflow.{kind}.{key}", None)
                else:
                    target[key] = value
                    globals_[f"workflow.{kind}.{key}"] = value

    def finish(self, phase: str, started: bool = True) -> dict[str, dict[str, str]]:
        """The labels and annotations once the run stopped in `phase` (markWorkflowPhase, operator.go:2762-2835)
        and, when it `started` (workflowMetadata applied), the pod-name-format setWfPodNamesAnnotation adds
        (:346): `{"labels": ..., "annotations": ...}`, keys sorted."""
        labels = dict(self.labels)
        labels[LABEL_PHASE] = phase
        labels[LABEL_COMPLETED] = "true" if phase in ("Succeeded", "Failed", "Error") else "false"
        annotations = dict(self.annotations)
        if started:
            annotations.setdefault(ANNOTATION_POD_NAME_FORMAT, "v2")
        return {"labels": dict(sorted(labels.items())), "annotations": dict(sorted(annotations.items()))}


def problems(spec: Mapping[str, Any], submitted: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """What in spec.workflowMetadata cannot run here, as (field, reason): a `submitted` label (metadata.labels) the
    API server would reject; a label key the API server would reject
    when the controller saves the Workflow; and, in a Workflow run from a workflowTemplateRef, a
    `{{workflow.labels.K}}`/`{{workflow.annotations.K}}` elsewhere in the spec whose workflowMetadata value holds a
    `{{...}}` tag. setGlobalParameters reads workflowMetadata before it is substituted (operator.go:766-776): a
    plain Workflow's spec is substituted in place on the first pass and saved (execWf is the Workflow itself,
    :172-174), but a templateRef's spec is read afresh from status.storedWorkflowTemplateSpec on every pass
    (:4499), so a node sees the value substituted on the first pass and as written on later ones."""
    md = spec.get("workflowMetadata") or {}
    found: list[tuple[str, str]] = []
    for key, value in (submitted or {}).items():
        errors = [] if label_key_valid(str(key)) else ["not a valid label key"]
        errors += label_value_errors(str(value))  # never substituted: a `{{...}}` is rejected as written
        if errors:
            found.append((f"metadata.labels.{key}", f"{str(value)!r}: {';'.join(errors)} (the API server would "
                                                    "reject the Workflow)"))
    for kind in ("labels", "labelsFrom"):
        for key in md.get(kind) or {}:
            if not label_key_valid(str(key)):
                found.append((f"spec.workflowMetadata.{kind}.{key}",
                              f"{str(key)!r} is not a valid label key ([prefix/]name, the name at most 63 "
                              "alphanumeric characters, '-', '_' or '.'): the API server would reject the Workflow"))
    rest = json.dumps({k: v for k, v in spec.items() if k != "workflowMetadata"})
    for kind in ("labels", "annotations") if spec.get("workflowTemplateRef") is not None else ():
        for key, value in (md.get(kind) or {}).items():
            if kind == "labels" and key in (md.get("labelsFrom") or {}):
                continue
            if "{{" in str(value) and re.search(r"\{\{\s*workflow\." + kind + r"\." + re.escape(str(key)) + r"\s*\}\}",
                                                rest):
                found.append((f"spec.workflowMetadata.{kind}.{key}",
                              f"{{{{workflow.{kind}.{key}}}}} is used and its value holds a {{{{...}}}} tag: on Argo "
                              "a node sees it substituted or not depending on the controller's pass"))
    return found


_WHOLE_MAP = re.compile(r"workflow\.(labels|annotations)(\.json)?(?![\w.\-\[/])")


def whole_map_references(obj: Any) -> list[str]:
    """The `workflow.labels`, `workflow.labels.json`, `workflow.annotations` and `workflow.annotations.json` an
    object's text names. Argo sets them from the Workflow's metadata as it stands when the pass begins
    (operator.go:743-758): on the first pass the labels and annotations submitted, on later ones also the
    controller's own (workflows.argoproj.io/phase and /completed, set when the workflow starts running, :2775-2777;
    the pod-name-format annotation, :346) and workflowMetadata's: a node sees one or the other depending on the
    pass it is created in, so the runner refuses them."""
    tags = re.findall(r"\{\{[^{}]*\}\}", json.dumps(obj))
    return sorted({m.group() for tag in tags for m in _WHOLE_MAP.finditer(tag)})


def _label_from(name: str, expression: str, env: Mapping[str, Any]) -> str:
    """One labelsFrom expression: expr.Compile with the environment (syntax and types), then expr.Run."""
    try:
        result = compile_expr(expression).run(env)
    except Unsupported:
        raise
    except (ExprSyntaxError, ExprCompileError) as err:
        raise MetadataError(f"failed to compile function for expression {go_quote(expression)}: {err}") from err
    except LangError as err:
        raise MetadataError(f"failed to evaluate label {go_quote(name)} expression {go_quote(expression)}: "
                            f"{err}") from err
    if not isinstance(result, str):
        raise MetadataError(f"failed to evaluate label {go_quote(name)} expression {go_quote(expression)} "
                            f"evaluted to {go_type(result)} but must be a string")
    return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
