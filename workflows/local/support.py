"""What the local runner supports of Argo Workflows, checked before anything runs.

A field is either run as Argo runs it, ignored because it only matters to a cluster (image, resources,
security context, pod GC, ...), or refused by name: running without it would not be what Argo runs.
"""

from __future__ import annotations

from typing import Any

from workflows.local.expr import find_variables

_SPEC_RUN = {"entrypoint", "arguments", "templates", "volumes", "activeDeadlineSeconds", "parallelism"}
_SPEC_CLUSTER_ONLY = {
    "serviceAccountName", "securityContext", "podGC", "ttlStrategy", "artifactRepositoryRef", "workflowMetadata",
    "podMetadata", "imagePullSecrets", "nodeSelector", "tolerations", "affinity", "priority", "podPriorityClassName",
    "schedulerName", "hostAliases", "dnsConfig", "dnsPolicy", "hostNetwork", "automountServiceAccountToken",
    "executor", "archiveLogs", "artifactGC", "volumeClaimGC", "podDisruptionBudget", "metrics", "podSpecPatch",
}
_TEMPLATE_RUN = {"name", "container", "dag", "inputs", "outputs", "retryStrategy", "activeDeadlineSeconds",
                 "volumes", "parallelism"}
_TEMPLATE_CLUSTER_ONLY = {
    "metadata", "securityContext", "serviceAccountName", "automountServiceAccountToken", "nodeSelector",
    "tolerations", "affinity", "priorityClassName", "priority", "schedulerName", "podSpecPatch", "archiveLocation",
    "metrics", "hostAliases", "executor",
}
_TEMPLATE_KINDS = ("container", "dag", "script", "resource", "suspend", "steps", "data", "http", "plugin",
                   "containerSet")
_CONTAINER_RUN = {"name", "command", "args", "env", "volumeMounts"}
_CONTAINER_CLUSTER_ONLY = {
    "image", "imagePullPolicy", "resources", "securityContext", "ports", "livenessProbe", "readinessProbe",
    "startupProbe", "terminationMessagePath", "terminationMessagePolicy", "resizePolicy", "restartPolicy",
}
_TASK_RUN = {"name", "template", "arguments", "depends", "dependencies", "when", "continueOn"}
_PARAMETER_FIELDS = {"name", "value", "default", "enum", "description"}
_INPUT_ARTIFACT_FIELDS = {"name", "path", "optional", "raw", "from", "mode", "archive", "recurseMode"}
# On an output artifact these say where Argo stores it; the file itself is the same.
_OUTPUT_STORAGE = {"archive", "s3", "artifactGC", "archiveLogs", "deleted", "recurseMode", "mode"}
_VOLUME_KINDS = {"configMap", "emptyDir"}
PYTHON_COMMANDS = ("python", "python3")


def unsupported(workflow: dict[str, Any]) -> list[str]:
    """One line per feature the local runner refuses, naming it and where it is; empty when it can run."""
    spec = workflow.get("spec") or {}
    found: list[str] = []
    for key in spec:
        if key not in _SPEC_RUN | _SPEC_CLUSTER_ONLY:
            found.append(f"spec.{key}: {_describe(key)} is not supported locally")
    for i, art in enumerate((spec.get("arguments") or {}).get("artifacts") or []):
        found.append(f"spec.arguments.artifacts[{i}] ({art.get('name')}): workflow artifact arguments are not "
                     "supported locally")
    for i, param in enumerate((spec.get("arguments") or {}).get("parameters") or []):
        found += _fields(param, _PARAMETER_FIELDS, f"spec.arguments.parameters[{i}]", "parameter field")
    found += _volumes(spec.get("volumes") or [], "spec.volumes")
    templates = {t.get("name"): (i, t) for i, t in enumerate(spec.get("templates") or [])}
    entry = str(spec.get("entrypoint"))
    if entry not in templates:
        found.append(f"spec.entrypoint: no template named {entry!r}")
        return found
    for name in _reachable(entry, templates):
        index, template = templates[name]
        found += _template(template, f"spec.templates[{index}] ({name})", templates, top=name == entry)
        found += _variables(template, f"spec.templates[{index}] ({name})")
    return found


def _variables(value: Any, where: str) -> list[str]:
    """Variables whose value the runner cannot know: stdout capture and expression templates."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _variables(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _variables(v, f"{where}[{i}]")]
    if not isinstance(value, str):
        return []
    found = []
    for name in find_variables(value):
        if name.startswith("="):
            found.append(f"{where}: expression templates ({{{{={name[1:]}}}}}) are not supported locally")
        elif name.endswith(".outputs.result"):
            found.append(f"{where}: {{{{{name}}}}} (a task's stdout as its result) is not supported locally")
    return found


def _reachable(entry: str, templates: dict[str, tuple[int, dict[str, Any]]]) -> list[str]:
    names = [entry]
    dag = templates[entry][1].get("dag") or {}
    for task in dag.get("tasks") or []:
        if task.get("template") in templates and task["template"] not in names:
            names.append(task["template"])
    return names


def _template(template: dict[str, Any], where: str, templates: dict[str, Any], top: bool) -> list[str]:
    found = []
    kinds = [k for k in _TEMPLATE_KINDS if k in template]
    for kind in kinds:
        if kind not in ("container", "dag"):
            found.append(f"{where}: {kind} templates are not supported locally (only container and dag)")
    if "dag" in template and not top:
        found.append(f"{where}: a DAG called from a DAG (nested DAG templates) is not supported locally")
    for key in template:
        if key not in _TEMPLATE_RUN | _TEMPLATE_CLUSTER_ONLY | set(_TEMPLATE_KINDS):
            found.append(f"{where}.{key}: {_describe(key)} is not supported locally")
    inputs, outputs = template.get("inputs") or {}, template.get("outputs") or {}
    for i, param in enumerate(inputs.get("parameters") or []):
        found += _fields(param, _PARAMETER_FIELDS, f"{where}.inputs.parameters[{i}]", "input parameter field")
    for i, art in enumerate(inputs.get("artifacts") or []):
        found += _fields(art, _INPUT_ARTIFACT_FIELDS, f"{where}.inputs.artifacts[{i}]",
                         "input artifact source (only `from` a task and `raw`)")
    for i, param in enumerate(outputs.get("parameters") or []):
        found += _fields(param, {"name", "valueFrom", "default", "description"}, f"{where}.outputs.parameters[{i}]",
                         "output parameter field")
        found += _fields(param.get("valueFrom") or {}, {"path", "default"},
                         f"{where}.outputs.parameters[{i}].valueFrom", "output parameter source (only valueFrom.path)")
    for i, art in enumerate(outputs.get("artifacts") or []):
        found += _fields(art, {"name", "path", "optional"} | _OUTPUT_STORAGE, f"{where}.outputs.artifacts[{i}]",
                         "output artifact field")
    if "dag" in template:
        found += _dag(template["dag"], f"{where}.dag", templates)
    if "container" in template:
        found += _container(template["container"], f"{where}.container")
    found += _volumes(template.get("volumes") or [], f"{where}.volumes")
    found += _fields(template.get("retryStrategy") or {}, {"limit", "retryPolicy", "backoff", "expression", "affinity"},
                     f"{where}.retryStrategy", "retryStrategy field")
    return found


def _dag(dag: dict[str, Any], where: str, templates: dict[str, Any]) -> list[str]:
    found = _fields(dag, {"tasks", "failFast"}, where, "DAG field")
    for i, task in enumerate(dag.get("tasks") or []):
        at = f"{where}.tasks[{i}] ({task.get('name')})"
        for key in task:
            if key not in _TASK_RUN:
                found.append(f"{at}.{key}: {_describe(key)} is not supported locally")
        if "template" in task and task["template"] not in templates:
            found.append(f"{at}.template: no template named {task['template']!r}")
        args = task.get("arguments") or {}
        for j, param in enumerate(args.get("parameters") or []):
            found += _fields(param, {"name", "value", "description"}, f"{at}.arguments.parameters[{j}]",
                             "argument field")
        for j, art in enumerate(args.get("artifacts") or []):
            found += _fields(art, {"name", "from", "raw", "optional"}, f"{at}.arguments.artifacts[{j}]",
                             "artifact argument source (only `from` a task and `raw`)")
    return found


def _container(container: dict[str, Any], where: str) -> list[str]:
    found = []
    for key in container:
        if key not in _CONTAINER_RUN | _CONTAINER_CLUSTER_ONLY:
            found.append(f"{where}.{key}: {_describe(key)} is not supported locally")
    command = container.get("command") or []
    if not command:
        found.append(f"{where}: a container without `command` (the image's entrypoint) cannot run locally")
    elif not is_python(command[0]):
        found.append(f"{where}.command: {command[0]!r}: only Python commands (python -m ...) run locally")
    for i, env in enumerate(container.get("env") or []):
        source = env.get("valueFrom") or {}
        for key in source:
            if key not in ("configMapKeyRef", "secretKeyRef"):
                found.append(f"{where}.env[{i}] ({env.get('name')}).valueFrom.{key}: not supported locally "
                             "(only value, configMapKeyRef and secretKeyRef)")
    return found


def _volumes(volumes: list[dict[str, Any]], where: str) -> list[str]:
    found = []
    for i, volume in enumerate(volumes):
        kinds = set(volume) - {"name"}
        for kind in sorted(kinds - _VOLUME_KINDS):
            found.append(f"{where}[{i}] ({volume.get('name')}): {kind} volumes are not supported locally "
                         "(only configMap and emptyDir)")
    return found


def _fields(item: dict[str, Any], allowed: set[str], where: str, what: str) -> list[str]:
    return [f"{where}.{key}: {what} {key!r} is not supported locally" for key in item if key not in allowed]


def is_python(command: str) -> bool:
    """`python`, `python3` or `python3.X` (any folder): the commands the runner replaces by this Python."""
    name = command.rsplit("/", 1)[-1]
    return name in PYTHON_COMMANDS or (name.startswith("python3.") and name[8:].isdigit())


_NAMES = {
    "onExit": "onExit (exit handlers)", "hooks": "hooks (lifecycle hooks)", "synchronization": "synchronization",
    "memoize": "memoize", "withItems": "withItems loops", "withParam": "withParam loops",
    "withSequence": "withSequence loops", "templateRef": "templateRef", "inline": "inline templates",
    "templateDefaults": "templateDefaults", "volumeClaimTemplates": "volumeClaimTemplates",
    "workflowTemplateRef": "workflowTemplateRef", "suspend": "suspend",
    "retryStrategy": "a workflow-wide retryStrategy",
    "daemon": "daemon templates", "sidecars": "sidecars", "initContainers": "initContainers", "timeout": "timeout",
    "envFrom": "envFrom", "workingDir": "workingDir", "lifecycle": "lifecycle", "target": "DAG target",
}


def _describe(key: str) -> str:
    return _NAMES.get(key, f"field {key!r}")
