"""What cannot run on one machine, found before anything starts (docs/local-runner.md, "What cannot run on one
machine"): every place at once, each named by its template and field, plus what Argo's own validation rejects
(validate.py). Cluster-only fields are not refusals: they make one notice.

    report = check(workflow, Resolver(workflow, store), image_commands={"alpine:3.20": ["sh"]})
    report.refusals    # [] when the workflow can run here
    report.notices     # what is ignored or stood in for, said once per run
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from workflows.local.engine import metadata, resource
from workflows.local.engine.artifacts import key_only
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.exprlang import compile_expr
from workflows.local.lang.govaluate import parse as parse_when
from workflows.local.templates import Base, Resolver, TemplateNotFound, template_type
from workflows.local.validate import validate
from workflows.local.validation import Invalid, tags

_TAG = re.compile(r"\{\{[^{}]*\}\}")
REMOTE_ARTIFACTS = ("git", "gcs", "azure", "oss", "hdfs", "artifactory", "plugin")
SECRET_KEYS = ("accessKeySecret", "secretKeySecret", "sessionTokenSecret", "serviceAccountKeySecret",
               "accountKeySecret", "usernameSecret", "passwordSecret", "sshPrivateKeySecret", "tokenSecret",
               "clientCertSecret", "caSecret", "krbKeytabSecret", "krbCCacheSecret", "krbConfigConfigMap")
LOCAL_VOLUMES = ("emptyDir", "configMap", "persistentVolumeClaim")
VOLUME_META = ("name",)
POD_CONTAINERS = ("container", "script")
IGNORED_SPEC = ("podGC", "ttlStrategy", "archiveLogs", "artifactGC", "volumeClaimGC", "podDisruptionBudget",
                "metrics", "priority", "nodeSelector", "affinity", "tolerations", "schedulerName",
                "priorityClassName", "securityContext", "podSecurityContext", "serviceAccountName",
                "automountServiceAccountToken", "executor", "hostAliases", "dnsPolicy", "dnsConfig", "podSpecPatch",
                "podMetadata", "artifactRepositoryRef", "imagePullSecrets", "hostNetwork",
                "podPriorityClassName", "shutdown")
IGNORED_TEMPLATE = ("podSpecPatch", "metadata", "nodeSelector", "affinity", "tolerations", "schedulerName",
                    "priorityClassName", "securityContext", "serviceAccountName", "automountServiceAccountToken",
                    "executor", "hostAliases", "metrics", "archiveLocation", "artifactGC", "podResources",
                    "priority")
IGNORED_CONTAINER = ("imagePullPolicy", "resources", "securityContext", "livenessProbe", "startupProbe",
                     "lifecycle", "terminationMessagePath", "terminationMessagePolicy")


@dataclass(frozen=True)
class Refusal:
    """One place that cannot run here: where (`WorkflowTemplate x, template t` or `template t`), the field, why."""

    template: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.template}" + (f" {self.field}" if self.field else "") + f": {self.reason}"


@dataclass
class Report:
    refusals: list[Refusal] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def refuse(self, where: str, field_: str, reason: str) -> None:
        refusal = Refusal(where, field_, reason)
        if refusal not in self.refusals:
            self.refusals.append(refusal)


def check(workflow: Mapping[str, Any], resolver: Resolver, *, image_commands: Mapping[str, list[str]] | None = None,
          object_store: bool = False, which: Callable[[str], str | None] = shutil.which,
          config_maps: Collection[str] | Mapping[str, Any] | None = None) -> Report:
    """Every refusal of this workflow (after workflowTemplateRef's merge and `-p`) and the notices of a run.
    `config_maps`: the local ConfigMaps by name (or only their names; None: not checked)."""
    report = Report()
    for problem in validate(workflow, resolver):
        report.refuse(_validation_place(problem.template), problem.field, problem.message)
    checker = _Checker(report, image_commands or {}, object_store, which)
    checker.config_maps = config_maps
    meta = workflow.get("metadata") or {}
    checker.workflow = str(meta.get("name") or "")
    checker.labels = dict(meta.get("labels") or {})
    checker.namespace = str(meta.get("namespace") or "default")
    spec = workflow.get("spec") or {}
    checker.spec(spec)
    for base, template in _reachable(resolver, spec):
        checker.template(_where(base, template), template)
    ignored = sorted(checker.ignored | {k for k in IGNORED_SPEC if spec.get(k) is not None})
    report.notices.append("images are not used: each container runs its command on this machine")
    if ignored:
        report.notices.append("cluster-only fields ignored: " + ", ".join(ignored))
    return report


def _validation_place(where: str) -> str:
    """validation.where_of's `name` or `<scope>/<resource>/<name>` as _where writes it."""
    if not where:
        return "workflow"
    scope, _, rest = where.partition("/")
    if not rest:
        return f"template {where}"
    resource, _, name = rest.partition("/")
    kind = {"namespaced": "WorkflowTemplate", "cluster": "ClusterWorkflowTemplate"}.get(scope, scope)
    return f"{kind} {resource}, template {name}"


def _where(base: Base, template: Mapping[str, Any]) -> str:
    kind = {"namespaced": "WorkflowTemplate", "cluster": "ClusterWorkflowTemplate"}.get(base.scope)
    name = template.get("name") or "(inline)"
    return f"{kind} {base.name}, template {name}" if kind else f"template {name}"


def _reachable(resolver: Resolver, spec: Mapping[str, Any]) -> Iterator[tuple[Base, dict[str, Any]]]:
    """Every template that can run: from the entrypoint, the workflow's exit handler and hooks, through steps,
    tasks, their exit handlers and hooks, and templateRefs (plain names resolving where their caller lives), each
    once, with templateDefaults merged. Templates nothing reaches do not run, so they are not refused."""
    starts: list[Mapping[str, Any]] = [{"template": spec[k]} for k in ("entrypoint", "onExit") if spec.get(k)]
    starts += [h for h in (spec.get("hooks") or {}).values() if isinstance(h, Mapping)]
    queue: list[tuple[Base, Mapping[str, Any]]] = [(resolver.root, h) for h in starts]
    seen: set[tuple[str, str]] = set()
    while queue:
        base, holder = queue.pop(0)
        if "{{" in str(holder.get("template") or "") + str(holder.get("templateRef") or ""):
            continue  # named by a variable: resolved when it runs
        try:
            target, template = resolver.resolve(holder, base)
        except TemplateNotFound:
            continue  # validation reports it
        key = (target.scope_name, str(template.get("name") or id(holder)))
        if key in seen:
            continue
        seen.add(key)
        yield target, template
        for _, child in _fields_of_holders(template):
            queue.append((target, child))
            if child.get("onExit"):
                queue.append((target, {"template": child["onExit"]}))
            queue.extend((target, h) for h in (child.get("hooks") or {}).values() if isinstance(h, Mapping))


class _Checker:
    def __init__(self, report: Report, image_commands: Mapping[str, list[str]], object_store: bool,
                 which: Callable[[str], str | None]):
        self.report, self.image_commands, self.object_store, self.which = report, image_commands, object_store, which
        self.ignored: set[str] = set()
        self.config_maps: Collection[str] | Mapping[str, Any] | None = None
        self.workflow, self.namespace = "", "default"  # what a resource template may patch: this Workflow
        self.labels: dict[str, Any] = {}  # the submitted metadata.labels

    def spec(self, spec: Mapping[str, Any]) -> None:
        where = "workflow"
        for i, volume in enumerate(spec.get("volumes") or []):
            self.volume(where, f"spec.volumes[{i}]", volume)
        self.artifacts(where, "spec.arguments.artifacts", (spec.get("arguments") or {}).get("artifacts") or [])
        self.sync(where, "spec.synchronization", spec.get("synchronization"))
        for name, hook in (spec.get("hooks") or {}).items():
            self.expression(where, f"spec.hooks.{name}.expression", hook.get("expression"), bare=True)
        self.parameters(where, "spec.arguments.parameters", (spec.get("arguments") or {}).get("parameters") or [])
        self.strings(where, "spec.arguments", spec.get("arguments"))
        for at, reason in metadata.problems(spec, self.labels):
            self.report.refuse(where, at, reason)
        self.whole_maps(where, "spec", {k: v for k, v in spec.items() if k != "templates"})
        for name, source in ((spec.get("workflowMetadata") or {}).get("labelsFrom") or {}).items():
            self.expression(where, f"spec.workflowMetadata.labelsFrom.{name}.expression",
                            (source or {}).get("expression"), bare=True)
        self.strings(where, "spec.workflowMetadata", spec.get("workflowMetadata"))

    def template(self, where: str, template: Mapping[str, Any]) -> None:
        kind = template_type(template)
        if kind == "resource":
            for at, reason in resource.problems(template, self.workflow, self.namespace):
                self.report.refuse(where, at, reason)
        if kind in ("plugin", "data"):
            self.report.refuse(where, kind, f"{kind} template (runs against the cluster)")
        if kind == "http":
            for header in (template["http"].get("headers") or []):
                if (header.get("valueFrom") or {}).get("secretKeyRef") is not None:
                    self.report.refuse(where, f"http.headers.{header.get('name')}", "http header from a Secret")
        if kind in POD_CONTAINERS:
            self.container(where, kind, template[kind], script=kind == "script")
        if kind == "containerSet":
            for c in template["containerSet"].get("containers") or []:
                self.container(where, f"containerSet.containers.{c.get('name')}", c)
        for key in ("initContainers", "sidecars"):
            for c in template.get(key) or []:
                self.container(where, f"{key}.{c.get('name')}", c)
        for i, volume in enumerate(template.get("volumes") or []):
            self.volume(where, f"volumes[{i}]", volume)
        self.artifacts(where, "inputs.artifacts", (template.get("inputs") or {}).get("artifacts") or [])
        self.artifacts(where, "outputs.artifacts", (template.get("outputs") or {}).get("artifacts") or [])
        self.parameters(where, "inputs.parameters", (template.get("inputs") or {}).get("parameters") or [])
        self.parameters(where, "outputs.parameters", (template.get("outputs") or {}).get("parameters") or [],
                        resource_outputs=kind == "resource")
        self.sync(where, "synchronization", template.get("synchronization"))
        self.expression(where, "retryStrategy.expression", (template.get("retryStrategy") or {}).get("expression"),
                        bare=True)
        self.ignored |= {k for k in IGNORED_TEMPLATE if template.get(k) is not None}
        if (template.get("retryStrategy") or {}).get("affinity") is not None:
            self.ignored.add("retryStrategy.affinity")
        if not template.get("daemon") and (template.get("container") or {}).get("readinessProbe") is not None:
            self.ignored.add("readinessProbe (of a container that is not a daemon)")
        for holder_field, holder in _fields_of_holders(template):
            self.holder(where, holder_field, holder)
        self.strings(where, "", template)
        self.whole_maps(where, "", template)

    def whole_maps(self, where: str, at: str, value: Any) -> None:
        """{{workflow.labels}} and the like: their value depends on the controller's pass (engine/metadata.py)."""
        for name in metadata.whole_map_references(value):
            self.report.refuse(where, at, f"{name}: on Argo it holds the Workflow's {name.split('.')[1]} as they "
                                          "stand when the controller's pass begins (the phase labels and "
                                          "workflowMetadata's come after the first), so what a node sees is not "
                                          "pinned down; name each one (workflow.labels.<name>)")

    def holder(self, where: str, at: str, holder: Mapping[str, Any]) -> None:
        when = holder.get("when")
        if isinstance(when, str) and "{{=" not in when:  # {{=...}} parts are compiled by strings()
            held = _placeheld(when)
            self.unsupported(where, f"{at}.when", lambda: parse_when(held))
        depends = holder.get("depends")
        if isinstance(depends, str) and depends:
            text = depends.replace("-", "_")
            self.unsupported(where, f"{at}.depends", lambda: compile_expr(text))
        for name, hook in (holder.get("hooks") or {}).items():
            self.expression(where, f"{at}.hooks.{name}.expression", hook.get("expression"), bare=True)
        args = holder.get("arguments") or {}
        self.artifacts(where, f"{at}.arguments.artifacts", args.get("artifacts") or [])
        self.parameters(where, f"{at}.arguments.parameters", args.get("parameters") or [])

    def container(self, where: str, at: str, container: Mapping[str, Any], script: bool = False) -> None:
        self.ignored |= {k for k in IGNORED_CONTAINER if container.get(k) is not None}
        image = str(container.get("image") or "")
        command = container.get("command") or self.image_commands.get(image)
        if not command:
            what = "script without command" if script else "container without command (image entrypoint)"
            hint = f"; give one with --image-command {image or 'IMAGE'}=CMD" if image else ""
            self.report.refuse(where, at, f"{what}: the image's entrypoint is unknown here{hint}")
        elif "{{" not in str(command[0]) and "/" not in str(command[0]) and self.which(str(command[0])) is None:
            # a path (absolute, relative, or in a volume another container writes) is checked when it runs
            self.report.refuse(where, f"{at}.command", f"command {command[0]!r} not found on this machine")
        for env in container.get("env") or []:
            self.env_value(where, f"{at}.env.{env.get('name')}", str(env.get("name")), env.get("valueFrom"))
        for i, env_from in enumerate(container.get("envFrom") or []):
            if env_from.get("configMapRef") is None:
                self.report.refuse(where, f"{at}.envFrom[{i}]", f"envFrom {', '.join(sorted(env_from))}: no local "
                                                                "source (configMapRef from --configmaps runs)")

    def env_value(self, where: str, at: str, name: str, source: Mapping[str, Any] | None) -> None:
        """An env value the pod could not get fails it (CreateContainerConfigError), so it is refused up front:
        configMapKeyRef reads the local ConfigMaps, secretKeyRef the same-named variable of this machine
        (engine/environment.py); an optional one that is absent leaves the variable unset."""
        if not source:
            return
        ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
        if ref is None or len(source) != 1:
            self.report.refuse(where, at, f"env value from {', '.join(sorted(source))}: no local source "
                                          "(configMapKeyRef and secretKeyRef run here)")
        elif ref.get("optional"):
            return
        elif "secretKeyRef" in source:
            if name not in os.environ:
                self.report.refuse(where, at, f"Secret {ref.get('name')!r} key {ref.get('key')!r}: no Secret exists "
                                              f"here: set ${name} on this machine")
        elif self.config_maps is not None and "{{" not in str(ref.get("name")):
            data = _data(self.config_maps, str(ref.get("name")))
            if data is None:
                self.report.refuse(where, at, f"ConfigMap {ref.get('name')!r} is not among the local ConfigMaps "
                                              "(give it with --configmaps)")
            elif str(ref.get("key")) not in data:
                self.report.refuse(where, at, f"ConfigMap {ref.get('name')!r} has no key {ref.get('key')!r} "
                                              "(the pod would fail: CreateContainerConfigError)")

    def volume(self, where: str, at: str, volume: Mapping[str, Any]) -> None:
        kinds = [k for k in volume if k not in VOLUME_META]
        if not kinds or any(k not in LOCAL_VOLUMES for k in kinds):
            self.report.refuse(where, f"{at} ({volume.get('name')})",
                               f"{', '.join(kinds) or 'unknown'} volume has no local source "
                               f"(emptyDir, configMap, persistentVolumeClaim and volumeClaimTemplates run here)")
        ref = volume.get("configMap") or {}
        name = str(ref.get("name") or "")
        if self.config_maps is not None and "configMap" in volume and not ref.get("optional") and "{{" not in name \
                and name not in self.config_maps:
            self.report.refuse(where, f"{at} ({volume.get('name')})",
                               f"ConfigMap {name!r} is not among the local ConfigMaps (give it with --configmaps)")

    def artifacts(self, where: str, at: str, artifacts: list[Mapping[str, Any]]) -> None:
        for art in artifacts:
            place = f"{at}.{art.get('name')}"
            for remote in REMOTE_ARTIFACTS:
                if art.get(remote) is not None:
                    secrets = [k for k in SECRET_KEYS if (art[remote] or {}).get(k) is not None]
                    why = f" (credentials from Secrets: {', '.join(secrets)})" if secrets else ""
                    self.report.refuse(where, place, f"{remote} artifact: not fetched on this machine{why}")
            if art.get("s3") is not None and key_only(art["s3"]) is None:  # key-only: the run's repository
                if any((art["s3"] or {}).get(k) is not None for k in SECRET_KEYS):
                    self.report.refuse(where, place, "s3 artifact with credentials from a Secret")
                elif not self.object_store:
                    self.report.refuse(where, place, "s3 artifact without a configured object store "
                                                     "(set AWS_ENDPOINT_URL)")
                elif not (art["s3"] or {}).get("bucket") or not (art["s3"] or {}).get("key"):
                    self.report.refuse(where, place, "s3 artifact without bucket and key (the cluster's default "
                                                     "artifact repository is not known here)")
            if art.get("http") is not None:  # the executor places repository, raw and S3 artifacts only
                self.report.refuse(where, place, "http artifact: not fetched on this machine")
            archive = art.get("archive") or {}
            if set(archive) - {"none", "tar"}:
                self.report.refuse(where, place, f"{', '.join(sorted(set(archive) - {'none', 'tar'}))} archive: "
                                                 "not read back locally (none and tar are)")
            self.expression(where, f"{place}.fromExpression", art.get("fromExpression"), bare=True)

    def parameters(self, where: str, at: str, parameters: list[Mapping[str, Any]],
                   resource_outputs: bool = False) -> None:
        """`resource_outputs`: a resource template's, whose jsonPath and jqFilter resource.problems judges."""
        for param in parameters:
            source = param.get("valueFrom") or {}
            for key in ("event",) if resource_outputs else ("event", "jsonPath", "jqFilter"):
                if source.get(key) is not None:
                    self.report.refuse(where, f"{at}.{param.get('name')}.valueFrom.{key}",
                                       f"valueFrom.{key} needs the cluster")
            self.expression(where, f"{at}.{param.get('name')}.valueFrom.expression", source.get("expression"),
                            bare=True)

    def sync(self, where: str, at: str, sync: Mapping[str, Any] | None) -> None:
        for kind in ("mutex", "semaphore", "mutexes", "semaphores"):
            items = (sync or {}).get(kind)
            for item in items if isinstance(items, list) else [items] if items else []:
                if item.get("database"):
                    self.report.refuse(where, f"{at}.{kind}", f"database {kind} (held in the cluster's database)")

    def expression(self, where: str, at: str, text: Any, bare: bool) -> None:
        """An expr-lang expression, evaluated after `{{...}}` substitution: its tags stand for a word now, so what
        the lang package refuses (a construct, never a value) is found before the run."""
        if isinstance(text, str) and text and (not bare or "{{=" not in text):
            held = _placeheld(text) if bare else text
            self.unsupported(where, at, lambda: compile_expr(held))

    def strings(self, where: str, at: str, value: Any) -> None:
        """Every `{{=...}}` in the template's text compiles (what expr-lang evaluates at run time)."""
        for path, text in _walk(value, at):
            try:
                found = tags(text)
            except Invalid:
                continue  # validation reports an unterminated tag
            for tag in found:
                if tag.startswith("="):
                    self.unsupported(where, path, partial(compile_expr, tag[1:]))

    def unsupported(self, where: str, at: str, compile_: Callable[[], object]) -> None:
        try:
            compile_()
        except Unsupported as err:
            self.report.refuse(where, at, f"not evaluated locally: {err}")
        except LangError:
            pass  # a syntax error is Argo's too, found when the node runs (the node is Error)


def _data(config_maps: Collection[str] | Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A local ConfigMap's data ({} when only its name is known), None when there is no such ConfigMap."""
    if name not in config_maps:
        return None
    doc = config_maps.get(name) if isinstance(config_maps, Mapping) else None
    return (doc.get("data") or {}) if isinstance(doc, Mapping) else {}


def _placeheld(text: str) -> str:
    """The text with each `{{...}}` tag replaced by a word: the shape a substituted expression has."""
    return _TAG.sub("argoPlaceholder", text)


def _fields_of_holders(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for i, group in enumerate(template.get("steps") or []):
        for j, step in enumerate(group or []):
            yield f"steps[{i}][{j}]", step
    for task in (template.get("dag") or {}).get("tasks") or []:
        yield f"dag.tasks.{task.get('name')}", task


def _walk(value: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if "{{=" in value:
            yield at, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{at}.{key}" if at else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{at}[{i}]")
