"""Argo v4.1.2's validation of a submitted Workflow (workflow/validate/validate.go), the part shared by every
template kind: the workflow's globals, template resolution, inputs and ProcessArgs, leaf templates, outputs,
arguments, names and the variable check (resolveAllVariables). `validate.py` adds steps and DAGs and is the entry
point. Argo stops at the first error; this port goes on and reports every one it finds, each at its place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.local.lang import depends as _depends
from workflows.local.lang.errors import LangError
from workflows.local.templates import Base, Resolver, TemplateNotFound, template_type

PLACEHOLDER = "__argo__internal__placeholder-"
VARIABLE_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
ANY_ITEM, ANY_WF_PARAM, ANY_WF_ARTIFACT = "item.*", "workflow.outputs.parameters.*", "workflow.outputs.artifacts.*"
LEAF_KINDS = ("container", "containerSet", "script", "resource", "data", "http", "plugin")
POD_KINDS = ("container", "containerSet", "script", "resource", "data")
FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
_PARAMETER = re.compile(r"\{\{[-a-zA-Z0-9]+(\.[-a-zA-Z0-9_]+)*\}\}")
_PLACEHOLDER_RE = re.compile(re.escape(PLACEHOLDER) + r"\d+")


@dataclass(frozen=True)
class Problem:
    """One place Argo's validation rejects: the template (its base's scope/name), the field in it, the message."""

    template: str
    field: str
    message: str


class Invalid(Exception):
    """One validation error at a place; caught where the port can go on."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def tags(text: str) -> list[str]:
    """The `{{...}}` tags of a text as fasttemplate finds them: from `{{` to the next `}}`."""
    found: list[str] = []
    at = 0
    while True:
        start = text.find("{{", at)
        if start < 0:
            return found
        end = text.find("}}", start + 2)
        if end < 0:
            raise Invalid("", f"cannot find end tag '}}}}' in {text[start:start + 40]!r}")
        found.append(text[start + 2:end])
        at = end + 2


def as_json(value: Any) -> str:
    """json.Marshal's text, where the tags are searched."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def is_parameter(text: str) -> bool:
    return _PARAMETER.search(text) is not None


def leaf(template: Mapping[str, Any]) -> bool:
    return template_type(template) in LEAF_KINDS


def has_output(template: Mapping[str, Any]) -> bool:
    """wfv1.Template.HasOutput."""
    containers = (template.get("containerSet") or {}).get("containers") or []
    return any(template.get(k) is not None for k in ("container", "script", "data", "http", "plugin")) or any(
        c.get("name") == "main" for c in containers)


class TemplateValidator:
    """Validates one workflow (its spec after workflowTemplateRef's merge and `-p`) against a Resolver; `steps` and
    `dag` are validate.Validator's."""

    def __init__(self, workflow: Mapping[str, Any], resolver: Resolver):
        self.workflow, self.resolver = workflow, resolver
        self.spec: Mapping[str, Any] = workflow.get("spec") or {}
        self.globals: dict[str, str] = {}
        self.results: set[str] = set()
        self.problems: list[Problem] = []
        self._counter = 0

    def placeholder(self) -> str:
        self._counter += 1
        return f"{PLACEHOLDER}{self._counter}"

    def report(self, where: str, field: str, message: str) -> None:
        problem = Problem(where, field, message)
        if problem not in self.problems:
            self.problems.append(problem)

    # --- the workflow -------------------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        meta = self.workflow.get("metadata") or {}
        name = str(meta.get("name") or "")
        if len(name) > 63:
            self.report("", "metadata.name", f"workflow name {name!r} must not be more than 63 characters long "
                                             f"(currently {len(name)})")
        try:
            self.names(self.spec.get("templates") or [], "spec.templates", FIELD_NAME)
        except Invalid as err:
            self.report("", err.field, err.message)
        args = self.spec.get("arguments") or {}
        self.arguments("", "spec.arguments", args)
        for key in ("workflow.name", "workflow.namespace", "workflow.mainEntrypoint", "workflow.serviceAccountName",
                    "workflow.uid", "workflow.status", "workflow.annotations", "workflow.annotations.json",
                    "workflow.labels", "workflow.labels.json"):
            self.globals[key] = self.placeholder()
        params = args.get("parameters") or []
        if params:
            self.globals["workflow.parameters"] = self.globals["workflow.parameters.json"] = self.placeholder()
        for param in params:
            if param.get("name"):
                value = param.get("value")
                self.globals[f"workflow.parameters.{param['name']}"] = (
                    str(value) if value is not None else self.placeholder())
        metadata = self.spec.get("workflowMetadata") or {}
        for key in [*(meta.get("annotations") or {}), *(metadata.get("annotations") or {})]:
            self.globals[f"workflow.annotations.{key}"] = self.placeholder()
        for key in [*(meta.get("labels") or {}), *(metadata.get("labels") or {}), *(metadata.get("labelsFrom") or {})]:
            self.globals[f"workflow.labels.{key}"] = self.placeholder()
        if self.spec.get("priority") is not None:
            self.globals["workflow.priority"] = str(self.spec["priority"])
        entry = self.spec.get("entrypoint")
        if not entry:
            self.report("", "spec.entrypoint", "spec.entrypoint is required")
        else:
            self.holder({"template": entry}, self.resolver.root, args, "", "spec.entrypoint")
        if self.spec.get("onExit"):
            self.globals["workflow.failures"] = self.placeholder()
            self.holder({"template": self.spec["onExit"]}, self.resolver.root, args, "", "spec.onExit")
        self.hooks(self.spec.get("hooks") or {}, "", "spec.hooks")
        for template in self.spec.get("templates") or []:
            if template.get("name"):
                self.holder({"template": template["name"]}, self.resolver.root, None, "", "")
        return self.problems

    # --- templates ----------------------------------------------------------------------------------------

    def holder(self, holder: Mapping[str, Any], base: Base, args: Mapping[str, Any] | None, where: str,
                field: str) -> tuple[Base, dict[str, Any]] | None:
        """validateTemplateHolder: resolve, check the retry policy, validate the template. None: not resolvable
        (reported) or named by a variable (Argo skips it; the refusal checker refuses it)."""
        ref = holder.get("templateRef")
        try:
            if ref is not None:
                if holder.get("template"):
                    raise Invalid(field, "template name cannot be specified with templateRef")
                if not ref.get("name"):
                    raise Invalid(f"{field}.templateRef", "resource name is required")
                if not ref.get("template"):
                    raise Invalid(f"{field}.templateRef", "template name is required")
                if "{{" in as_json(ref):
                    return None
            elif holder.get("template") and holder.get("inline") is None and base.template(holder["template"]) is None:
                raise Invalid(f"{field}.template", f"template name '{holder['template']}' undefined")
            try:
                resolved_base, template = self.resolver.resolve(holder, base)
            except TemplateNotFound as err:
                raise Invalid(f"{field}.templateRef" if ref is not None else field, str(err)) from err
            policy = (template.get("retryStrategy") or {}).get("retryPolicy")
            if policy not in (None, "", "Always", "OnError", "OnFailure", "OnTransientError"):
                raise Invalid(f"{field}.retryStrategy.retryPolicy", f"{policy} is not a valid RetryPolicy")
        except Invalid as err:
            self.report(where, err.field, err.message)
            return None
        self._template(template, resolved_base, args)
        return resolved_base, template

    def _template(self, template: dict[str, Any], base: Base, args: Mapping[str, Any] | None) -> None:
        """validateTemplate. `args` None: placeholder arguments (FakeArguments)."""
        where = where_of(base, template)
        try:
            kinds = [k for k in ("container", "containerSet", "steps", "script", "resource", "dag", "suspend", "data",
                                 "http", "plugin") if template.get(k) is not None]
            if not kinds:
                raise Invalid("", "template type unspecified. choose one of: container, containerSet, steps, "
                                  "script, resource, dag, suspend, template, template ref")
            if len(kinds) > 1:
                raise Invalid("", "multiple template types specified")
            scope = self._inputs(template)
            for i, init in enumerate(template.get("initContainers") or []):
                if not init.get("name"):
                    raise Invalid(f"initContainers[{i}]", "initContainers must all have container name")
            if template_type(template) in POD_KINDS:
                scope["pod.name"] = True
            if leaf(template):
                outputs = template.get("outputs") or {}
                for art in outputs.get("artifacts") or []:
                    if art.get("path"):
                        scope[f"outputs.artifacts.{art.get('name')}.path"] = True
                for param in outputs.get("parameters") or []:
                    if (param.get("valueFrom") or {}).get("path"):
                        scope[f"outputs.parameters.{param.get('name')}.path"] = True
            template = self._process_args(template, args)
            timeout = template.get("timeout")
            if timeout:
                if not leaf(template):
                    raise Invalid("timeout", f"{template_type(template)} template doesn't support timeout field")
                if re.fullmatch(r"[+-]?\d+", str(timeout)):
                    raise Invalid("timeout", f"{template.get('name')} has invalid duration format in timeout")
            if template.get("pendingTimeout") and not leaf(template):
                raise Invalid("pendingTimeout", f"{template_type(template)} template doesn't support pendingTimeout")
        except Invalid as err:
            self.report(where, err.field, err.message)
            return
        key = f"{base.scope_name}/{template.get('name', '')}"
        if key in self.results:
            return
        self.results.add(key)
        scope.update(dict.fromkeys(self.globals, True))
        kind = template_type(template)
        try:
            if kind == "steps":
                self.steps(scope, base, template)
            elif kind == "dag":
                self.dag(scope, base, template)
            else:
                self._leaf(scope, base, template)
            self._outputs(scope, template)
        except Invalid as err:
            self.report(where, err.field, err.message)

    def steps(self, scope: dict[str, Any], base: Base, template: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def dag(self, scope: dict[str, Any], base: Base, template: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _inputs(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """validateInputs: the scope of a template's own inputs."""
        inputs = template.get("inputs") or {}
        self.names(inputs.get("parameters") or [], "inputs.parameters", _PARAM_NAME)
        self.names(inputs.get("artifacts") or [], "inputs.artifacts", _PARAM_NAME)
        scope: dict[str, Any] = {f"inputs.parameters.{p.get('name')}": True for p in inputs.get("parameters") or []}
        if inputs.get("parameters"):
            scope["inputs.parameters"] = True
        for art in inputs.get("artifacts") or []:
            ref = f"inputs.artifacts.{art.get('name')}"
            scope[ref] = True
            if leaf(template):
                _clean_path(art, ref)
                scope[f"{ref}.path"] = True
            elif art.get("path"):
                raise Invalid(ref, f"{ref}.path only valid in container/script templates")
            if art.get("from"):
                raise Invalid(ref, f"{ref}.from not valid in inputs")
        return scope

    def _process_args(self, template: dict[str, Any], args: Mapping[str, Any] | None) -> dict[str, Any]:
        """ProcessArgs(validateOnly): each input takes its argument (a placeholder for FakeArguments), its value or
        default; one with none is an error. The substituted text itself is not needed by the checks below."""
        given = {p.get("name"): p for p in (args or {}).get("parameters") or []}
        inputs = dict(template.get("inputs") or {})
        params = []
        for param in inputs.get("parameters") or []:
            param = dict(param)
            if param.get("value") is None and param.get("default") is not None:
                param["value"] = param["default"]
            arg = {"value": self.placeholder()} if args is None else given.get(param.get("name"))
            if arg is not None:
                if arg.get("value") is not None:
                    param["value"], param["valueFrom"] = arg["value"], None
                else:
                    param["valueFrom"], param["value"] = arg.get("valueFrom"), None
            from_config = (param.get("valueFrom") or {}).get("configMapKeyRef") is not None
            if not from_config and param.get("value") is None:
                raise Invalid(f"inputs.parameters.{param.get('name')}",
                              f"inputs.parameters.{param.get('name')} was not supplied")
            params.append({k: v for k, v in param.items() if v is not None})
        arts = {a.get("name"): a for a in (args or {}).get("artifacts") or []}
        for art in inputs.get("artifacts") or []:
            if not art.get("optional") and not has_location(art) and args is not None and art.get("name") not in arts:
                raise Invalid(f"inputs.artifacts.{art.get('name')}", f"inputs.artifacts.{art.get('name')} was not "
                                                                      "supplied")
        if params:
            inputs["parameters"] = params
        return {**template, "inputs": inputs} if inputs else template

    def _leaf(self, scope: Mapping[str, Any], base: Base, template: Mapping[str, Any]) -> None:
        """validateLeaf."""
        self.resolve_all(scope, as_json(template), "")
        container = template.get("container")
        if container is not None:
            mounts: dict[str, str] = {}
            for i, mount in enumerate(container.get("volumeMounts") or []):
                if mount.get("mountPath") in mounts:
                    raise Invalid(f"container.volumeMounts[{i}]", f"mountPath '{mount.get('mountPath')}' already "
                                                                   f"mounted in {mounts[mount['mountPath']]}")
                mounts[mount.get("mountPath")] = f"container.volumeMounts.{mount.get('name')}"
            for i, art in enumerate((template.get("inputs") or {}).get("artifacts") or []):
                if art.get("path") in mounts:
                    raise Invalid(f"inputs.artifacts[{i}]", f"path '{art.get('path')}' already mounted in "
                                                            f"{mounts[art['path']]}")
                mounts[art.get("path")] = f"inputs.artifacts.{art.get('name')}"
            self._image(base, template, "container")
        if template.get("script") is not None:
            self._image(base, template, "script")
        container_set = template.get("containerSet")
        if container_set is not None:
            containers = container_set.get("containers") or []
            if not containers:
                raise Invalid("containerSet", "containers must have at least one container")
            self.names(containers, "containerSet.containers", FIELD_NAME)
            names = {c.get("name") for c in containers}
            for c in containers:
                for dep in c.get("dependencies") or []:
                    if dep not in names:
                        raise Invalid("containerSet", f"containers.{c.get('name')} dependency '{dep}' not defined")
            outputs = template.get("outputs") or {}
            inputs = (template.get("inputs") or {}).get("artifacts")
            if (inputs or outputs.get("parameters") or outputs.get("artifacts")) and "main" not in names:
                raise Invalid("containerSet", 'containers must have a container named "main" for input or output')
        for container in [*(container_set or {}).get("containers", []), *(template.get("sidecars") or [])]:
            if container.get("name") in ("wait", "supervisor"):
                raise Invalid("sidecars", f"{container.get('name')!r} is a reserved Argo container name")
        deadline = template.get("activeDeadlineSeconds")
        if deadline is not None and not (isinstance(deadline, int) and deadline >= 0) and not (
                isinstance(deadline, str) and (re.fullmatch(r"\d+", deadline) or is_parameter(deadline))):
            raise Invalid("activeDeadlineSeconds", "activeDeadlineSeconds must be a positive integer > 0 or an argo "
                                                   "variable")
        if template.get("parallelism") is not None:
            raise Invalid("parallelism", "parallelism is only valid for steps and dag templates")

    def _image(self, base: Base, template: Mapping[str, Any], kind: str) -> None:
        if (template.get(kind) or {}).get("image"):
            return
        defaults = (base.spec.get("templateDefaults") or {}).get(kind) or {}
        if base.scope == "cluster" or not defaults.get("image"):
            raise Invalid(f"{kind}.image", f"{kind}.image may not be empty")

    def _outputs(self, scope: Mapping[str, Any], template: Mapping[str, Any]) -> None:
        """validateOutputs."""
        outputs = template.get("outputs") or {}
        self.names(outputs.get("parameters") or [], "outputs.parameters", _PARAM_NAME)
        self.names(outputs.get("artifacts") or [], "outputs.artifacts", _PARAM_NAME)
        self.resolve_all(scope, as_json(outputs), "outputs")
        for art in outputs.get("artifacts") or []:
            ref = f"outputs.artifacts.{art.get('name')}"
            if leaf(template):
                _clean_path(art, ref)
            elif art.get("path"):
                raise Invalid(ref, f"{ref}.path only valid in container/script templates")
            _global_name(art, ref)
        kind = template_type(template)
        for param in outputs.get("parameters") or []:
            ref = f"outputs.parameters.{param.get('name')}"
            source = param.get("valueFrom")
            if source is not None and param.get("value") is not None:
                raise Invalid(ref, f"{ref} has both valueFrom and value specified, choose one")
            if param.get("value") is None:
                if source is None:
                    raise Invalid(ref, f"{ref} does not have valueFrom or value specified")
                count = sum(1 for k in ("path", "jqFilter", "jsonPath", "parameter", "expression") if source.get(k))
                count += source.get("supplied") is not None
                if count != 1:
                    raise Invalid(f"{ref}.valueFrom", "valueFrom type unspecified" if not count
                                  else "multiple valueFrom types specified")
            if source is not None:
                if kind in ("container", "containerSet", "script") and not source.get("path"):
                    raise Invalid(f"{ref}.valueFrom", f"{ref}.path must be specified for {kind} templates")
                if kind in ("steps", "dag"):
                    if not source.get("parameter") and not source.get("expression"):
                        raise Invalid(f"{ref}.valueFrom",
                                      f"{ref}.parameter or expression must be specified for {kind} templates")
                    if source.get("parameter") and source.get("expression"):
                        raise Invalid(f"{ref}.valueFrom", f"{ref} shouldn't have both `from` and `expression`")
            _global_name(param, ref)

    # --- shared checks ------------------------------------------------------------------------------------

    def resolve_all(self, scope: Mapping[str, Any], text: str, field: str) -> None:
        """resolveAllVariables: every simple tag with a variable prefix is in the scope or the globals."""
        for tag in tags(text):
            if tag.startswith("="):
                continue  # template.Validate does not validate expression templates
            name = tag.strip()
            if not name.startswith(VARIABLE_PREFIXES) or name in scope or name in self.globals:
                continue
            if (name == "item" or name.startswith("item.")) and ANY_ITEM in scope:
                continue
            if name.startswith("workflow.outputs.parameters.") and ANY_WF_PARAM in scope:
                continue
            if name.startswith("workflow.outputs.artifacts.") and (ANY_WF_ARTIFACT in scope or ANY_WF_ARTIFACT
                                                                   in self.globals):
                continue
            if name.startswith(("outputs.", "workflow.creationTimestamp", "workflow.scheduledTime",
                                "workflow.duration", "tasks.name", "steps.name", "node.name")):
                continue
            raise Invalid(field, f"failed to resolve {{{{{tag}}}}}")

    def arguments(self, where: str, field: str, args: Mapping[str, Any]) -> None:
        """validateArguments (empty values not allowed: a submission)."""
        try:
            self.names(args.get("parameters") or [], f"{field}.parameters", _PARAM_NAME)
            self.names(args.get("artifacts") or [], f"{field}.artifacts", _PARAM_NAME)
            for param in args.get("parameters") or []:
                at = f"{field}.parameters.{param.get('name')}"
                source = param.get("valueFrom")
                if source is None and param.get("value") is None:
                    raise Invalid(at, f"{at}.value or {at}.valueFrom is required")
                if source is not None and (
                        not any(source.get(k) is not None for k in ("configMapKeyRef", "event", "supplied"))
                        or any(source.get(k) for k in ("path", "jsonPath", "parameter", "expression"))):
                    raise Invalid(at, f"{at}.valueFrom only allows: default, configMapKeyRef and supplied")
                enum = param.get("enum")
                if enum is not None:
                    if not enum:
                        raise Invalid(at, f"{at}.enum should contain at least one value")
                    if param.get("value") is None:
                        raise Invalid(at, f"{at}.value is required")
                    if str(param["value"]) not in [str(v) for v in enum]:
                        raise Invalid(at, f"{at}.value should be present in {at}.enum list")
            for art in args.get("artifacts") or []:
                at = f"{field}.artifacts.{art.get('name')}"
                if not art.get("from") and not has_location(art):
                    raise Invalid(at, f"{at}.from, artifact location, or key is required")
                if art.get("from") and art.get("fromExpression"):
                    raise Invalid(at, f"{at} shouldn't have both `from` and `fromExpression` in Artifact")
        except Invalid as err:
            self.report(where, err.field, err.message)

    def names(self, items: list[Any], field: str, pattern: re.Pattern[str]) -> None:
        """validateWorkflowFieldNames: present, well-formed, unique."""
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = str((item or {}).get("name") or "") if isinstance(item, Mapping) else ""
            if not name:
                raise Invalid(f"{field}[{i}]", f"{field}[{i}].name is required")
            if not pattern.match(name) or (pattern is FIELD_NAME and len(name) > 128):
                raise Invalid(f"{field}[{i}]", f"{field}[{i}].name: '{name}' is invalid")
            if name in seen:
                raise Invalid(f"{field}[{i}]", f"{field}[{i}].name '{name}' is not unique")
            seen.add(name)

    def hooks(self, hooks: Mapping[str, Any], where: str, field: str) -> None:
        for name, hook in hooks.items():
            if name != "exit" and not (hook or {}).get("expression"):
                self.report(where, f"{field}.{name}", f"{field}.{name} Expression required")


def valid_step_name(name: str) -> bool:
    sanitized = _PLACEHOLDER_RE.sub("x", name)
    return bool(FIELD_NAME.match(sanitized)) and len(sanitized) <= 128


def task_dependencies(task: Mapping[str, Any]) -> dict[str, str]:
    """GetTaskDependencies in a validation context: the names `depends` (or `dependencies`) uses and their kind."""
    logic = task.get("depends") or " && ".join(str(d) for d in task.get("dependencies") or [])
    return _depends.dependencies(str(logic))


def task_results_valid(task: Mapping[str, Any]) -> str | None:
    try:
        _depends.validate(str(task.get("depends") or ""))
    except LangError as err:
        return str(err)
    return None


def has_location(art: Mapping[str, Any]) -> bool:
    """wfv1.Artifact.HasLocationOrKey: some storage location (raw included) or a key."""
    locations = ("s3", "git", "http", "artifactory", "hdfs", "raw", "oss", "gcs", "azure", "plugin")
    return any(art.get(k) is not None for k in locations) or bool(art.get("key"))


def _clean_path(art: Mapping[str, Any], ref: str) -> None:
    path = str(art.get("path") or "")
    if not path:
        raise Invalid(ref, f"error in {ref}: Artifact '{art.get('name')}' did not specify a path")
    if "/../" in path or path.endswith("/..") or path.startswith("../"):
        raise Invalid(ref, f"error in {ref}: Artifact '{art.get('name')}' path escapes its directory")


def _global_name(item: Mapping[str, Any], ref: str) -> None:
    name = item.get("globalName")
    if name and not is_parameter(str(name)) and not _PARAM_NAME.match(str(name)):
        raise Invalid(f"{ref}.globalName", f"{ref}.globalName: Parameter/Artifact name must consist of "
                                           "alpha-numeric characters, '_' or '-'")


def where_of(base: Base, template: Mapping[str, Any]) -> str:
    name = str(template.get("name") or "<inline>")
    return name if base.scope == "local" else f"{base.scope_name}/{name}"
