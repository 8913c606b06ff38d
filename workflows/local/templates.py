"""The local template store: WorkflowTemplates and ClusterWorkflowTemplates read from YAML files, keyed by kind and
name as a cluster keeps them, and the resolution of `template`, `templateRef` and `workflowTemplateRef` against it
as Argo v4.1.2 does it (docs/local-runner.md, "Template references").

    store = TemplateStore.load([Path("manifests/generated")])      # `--templates DIR_OR_FILE`, repeatable
    workflow = with_workflow_template(workflow, store)             # workflowTemplateRef: the merged spec that runs
    resolver = Resolver(workflow, store)
    base, template = resolver.resolve({"templateRef": {"name": "greetings", "template": "greet"}}, resolver.root)
    resolver.resolve({"template": "greet"}, base)                  # a plain name resolves where its caller lives

A `Base` is where plain template names resolve (workflow/templateresolution/context.go:123-269): the workflow
itself (scope `local`), or the WorkflowTemplate (`namespaced/<name>`) or ClusterWorkflowTemplate (`cluster/<name>`)
a templateRef switched to. Resolved templates are copies with the workflow's `spec.templateDefaults` merged in
(operator.go mergedTemplateDefaultsInto), so callers may change them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from steps._core.errors import UsageError

WORKFLOW_TEMPLATE, CLUSTER_WORKFLOW_TEMPLATE = "WorkflowTemplate", "ClusterWorkflowTemplate"
DEFAULT_STORE = Path("manifests/generated")  # the project's rendered manifests (`mlops compile`)
TEMPLATE_KINDS = ("container", "containerSet", "steps", "dag", "script", "resource", "data", "suspend", "http",
                  "plugin")  # wfv1.Template.GetType's order

# patchMergeKey of the list fields of WorkflowSpec, Template and the Kubernetes types inside them
# (pkg/apis/workflow/v1alpha1/workflow_types.go; k8s.io/api/core/v1 Container): a strategic merge patch merges
# these lists item by item on the key; every other list is replaced whole.
MERGE_KEYS = {
    "templates": "name", "volumes": "name", "parameters": "name", "artifacts": "name", "tasks": "name",
    "initContainers": "name", "sidecars": "name", "imagePullSecrets": "name", "tolerations": "key",
    "hostAliases": "ip", "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
    "volumeDevices": "devicePath",
}


class TemplateStoreError(UsageError):
    """A template store file cannot be read, or holds two resources of one kind and name."""


class TemplateNotFound(LookupError):
    """A reference the store or the workflow cannot resolve; the message is Argo's."""


class TemplateStore:
    """(Cluster)WorkflowTemplates by kind and name. Other documents in the files (ConfigMaps...) are ignored."""

    def __init__(self, documents: Iterable[Mapping[str, Any]] = ()):
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.origins: dict[tuple[str, str], str] = {}
        for doc in documents:
            self.add(doc)

    @classmethod
    def load(cls, sources: Sequence[Path]) -> TemplateStore:
        """Every YAML file given, and every `*.yaml`/`*.yml` below a folder given, in name order."""
        store = cls()
        for source in sources:
            for path in _yaml_files(source):
                for doc in _documents(path):
                    store.add(doc, str(path))
        return store

    def add(self, doc: Mapping[str, Any], origin: str = "<given>") -> None:
        kind = doc.get("kind")
        if kind not in (WORKFLOW_TEMPLATE, CLUSTER_WORKFLOW_TEMPLATE):
            return
        name = str((doc.get("metadata") or {}).get("name") or "")
        if not name:
            raise TemplateStoreError(f"{origin}: a {kind} without metadata.name")
        key = (str(kind), name)
        if key in self.resources and self.resources[key] != doc:
            raise TemplateStoreError(f"{kind} {name!r} is defined twice, differently: in {self.origins[key]} "
                                     f"and in {origin}")
        self.resources[key] = dict(doc)
        self.origins[key] = origin

    def get(self, name: str, cluster_scope: bool = False) -> dict[str, Any]:
        """The WorkflowTemplate (or, with cluster_scope, the ClusterWorkflowTemplate) of that name."""
        kind = CLUSTER_WORKFLOW_TEMPLATE if cluster_scope else WORKFLOW_TEMPLATE
        found = self.resources.get((kind, name))
        if found is None:
            what = "cluster workflow template" if cluster_scope else "workflow template"
            raise TemplateNotFound(f"{what} {name} not found")
        return found

    def __call__(self, kind: str, name: str) -> dict[str, Any] | None:
        """The resource of that kind and name, or None: the engine's `TemplateStore` callable."""
        return self.resources.get((kind, name))

    def names(self) -> list[str]:
        return [f"{kind}/{name}" for kind, name in sorted(self.resources)]


def _yaml_files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not source.is_file():
        raise TemplateStoreError(f"{source}: no such file or folder")
    return [source]


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise TemplateStoreError(f"{path}: cannot read it as YAML: {err}") from err


@dataclass(frozen=True)
class Base:
    """Where plain template names resolve: the workflow (`local`) or a (Cluster)WorkflowTemplate."""

    scope: str  # "local" | "namespaced" | "cluster" (wfv1.ResourceScope)
    name: str
    spec: Mapping[str, Any]

    @property
    def scope_name(self) -> str:
        """Node.template_scope: `local`, `namespaced/<wft>` or `cluster/<cwft>`."""
        return "local" if self.scope == "local" else f"{self.scope}/{self.name}"

    def template(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.spec.get("templates") or [] if t.get("name") == name), None)


class Resolver:
    """Resolves template holders (a step, a DAG task, a hook, `{"template": name}`) as Argo's TemplateContext."""

    def __init__(self, workflow: Mapping[str, Any], store: TemplateStore | None = None):
        self.workflow = workflow
        self.store = store or TemplateStore()
        spec = workflow.get("spec") or {}
        self.root = Base("local", str((workflow.get("metadata") or {}).get("name") or ""), spec)
        self.defaults: Mapping[str, Any] | None = spec.get("templateDefaults")

    def resolve(self, holder: Mapping[str, Any], base: Base | None = None) -> tuple[Base, dict[str, Any]]:
        """The template a holder names and the base its own plain names resolve in. `inline` templates stay in
        the caller's base. Raises TemplateNotFound with Argo's message."""
        base = base or self.root
        if holder.get("inline") is not None:
            return base, self._with_defaults(holder["inline"])
        ref = holder.get("templateRef")
        if ref is not None:
            cluster = bool(ref.get("clusterScope"))
            resource = self.store.get(str(ref.get("name")), cluster)
            target = Base("cluster" if cluster else "namespaced", str(ref.get("name")), resource.get("spec") or {})
            found = target.template(str(ref.get("template")))
            if found is None:
                raise TemplateNotFound(f"template {ref.get('template')} not found in workflow template "
                                       f"{ref.get('name')}")
            return target, self._with_defaults(found)
        name = holder.get("template")
        if not name:
            raise TemplateNotFound("failed to get a template")
        found = base.template(str(name))
        if found is None:
            raise TemplateNotFound(f"template {name} not found")
        return base, self._with_defaults(found)

    def _with_defaults(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """mergedTemplateDefaultsInto: spec.templateDefaults under the template, the template's fields winning;
        the defaults of the other template kinds (container for a script...) do not apply."""
        if not self.defaults:
            return copy.deepcopy(dict(template))
        own = template_type(template)
        defaults = {k: v for k, v in self.defaults.items() if k not in TEMPLATE_KINDS or k == own}
        return strategic_merge(defaults, template)


def template_type(template: Mapping[str, Any]) -> str | None:
    """wfv1.Template.GetType: the first kind field set, None for an unknown kind."""
    return next((k for k in TEMPLATE_KINDS if template.get(k) is not None), None)


# --- workflowTemplateRef ------------------------------------------------------------------------------------


def with_workflow_template(workflow: Mapping[str, Any], store: TemplateStore) -> dict[str, Any]:
    """The workflow whose spec runs: for a workflowTemplateRef, the Workflow's spec merged over the
    (Cluster)WorkflowTemplate's (JoinWorkflowSpec, workflow/util/merge.go:274-330): fields the Workflow sets win,
    templates/volumes/arguments merge by name, and an argument keeps the Workflow's parameter whole when it has
    one. The root node stays named after the Workflow. Raises TemplateNotFound."""
    spec = workflow.get("spec") or {}
    ref = spec.get("workflowTemplateRef")
    if ref is None:
        return copy.deepcopy(dict(workflow))
    resource = store.get(str(ref.get("name")), bool(ref.get("clusterScope")))
    template_spec = resource.get("spec") or {}
    merged = join_workflow_spec(spec, template_spec)
    return {**copy.deepcopy(dict(workflow)), "spec": merged}


def join_workflow_spec(spec: Mapping[str, Any], template_spec: Mapping[str, Any]) -> dict[str, Any]:
    hooks = dict(template_spec.get("hooks") or {})
    base = {k: v for k, v in template_spec.items() if k != "hooks"}
    merged = strategic_merge(base, spec)
    if hooks:  # MergeTo: the template's hooks are added where the Workflow has none of that name
        merged["hooks"] = {**hooks, **(merged.get("hooks") or {})}
    own = {p.get("name"): p for p in (spec.get("arguments") or {}).get("parameters") or []}
    theirs = {p.get("name"): p for p in (template_spec.get("arguments") or {}).get("parameters") or []}
    params = (merged.get("arguments") or {}).get("parameters") or []
    for i, param in enumerate(params):
        if _has_value(param):
            chosen = own.get(param.get("name")) or theirs.get(param.get("name"))
            if chosen is not None:
                params[i] = copy.deepcopy(chosen)
    return merged


def _has_value(param: Mapping[str, Any]) -> bool:
    """wfv1.Parameter.HasValue."""
    return any(param.get(k) is not None for k in ("value", "default", "valueFrom"))


# --- strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch) -------------------------------------


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """StrategicMergePatch(original, patch) for JSON documents of Argo's types: maps merge key by key, lists of
    MERGE_KEYS merge item by item, anything else in `patch` replaces `original`. Returns a new document."""
    if isinstance(original, Mapping) and isinstance(patch, Mapping):
        result = copy.deepcopy(dict(original))
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in result:
                result[key] = strategic_merge(result[key], value, key)
            else:
                result[key] = copy.deepcopy(value)
        return result
    key_name = MERGE_KEYS.get(field)
    if key_name and isinstance(original, list) and isinstance(patch, list) and _keyed(original + patch, key_name):
        return _merge_list(original, patch, key_name, field)
    return copy.deepcopy(patch)


def _keyed(items: list[Any], key: str) -> bool:
    return all(isinstance(i, Mapping) and key in i for i in items)


def _merge_list(original: list[Any], patch: list[Any], key: str, field: str) -> list[Any]:
    """mergeSliceWithoutSpecialElements, then normalizeElementOrder/mergeSortedSlice: the patch's items and the
    original's others, interleaved by the original's order where both have an item."""
    merged = [copy.deepcopy(i) for i in original]
    for item in patch:
        at = next((n for n, o in enumerate(merged) if o[key] == item[key]), None)
        if at is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[at] = strategic_merge(merged[at], item, field)
    patch_keys = [i[key] for i in patch]
    patched = sorted((m for m in merged if m[key] in patch_keys), key=lambda m: patch_keys.index(m[key]))
    server_only = [m for m in merged if m[key] not in patch_keys]
    server_order = [o[key] for o in original]
    out: list[Any] = []
    i = j = 0
    while i < len(patched) or j < len(server_only):
        if i >= len(patched):
            out.append(server_only[j])
            j += 1
        elif j >= len(server_only):
            out.append(patched[i])
            i += 1
        else:
            left, right = patched[i][key], server_only[j][key]
            if left in server_order and right in server_order and server_order.index(left) < server_order.index(right):
                out.append(patched[i])
                i += 1
            else:
                out.append(server_only[j])
                j += 1
    return out
