"""`mlops lint [FILES]`: schema and semantic checks of rendered YAML, before a cluster sees it.

Schemas (see `workflows._schemas`): every document against its official schema, unknown fields included.
Semantics a schema cannot see: missing templates and tasks, dependency cycles, `depends`/`when`/retry
expressions that do not parse, task arguments that do not match the template's inputs, and `{{...}}`
variables that will not resolve. Each problem names the file, the document, the path and the rule.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workflows._schemas import NoSchema, Schemas, locate
from workflows.local.lang import depends as _depends
from workflows.local.lang import govaluate
from workflows.local.lang.errors import LangError, Unsupported
from workflows.local.lang.exprlang import compile_expr
from workflows.local.validation import tags

DEFAULT_ROOT = Path("manifests")
_TAG = re.compile(r"\{\{.*?\}\}")
ARGO_WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
KUSTOMIZE_KINDS = ("Kustomization", "Component")
KUSTOMIZE_CONFIG = "kustomizeconfig.yaml"
_WORKFLOW_VARIABLES = {
    "workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName", "workflow.mainEntrypoint",
    "workflow.creationTimestamp", "workflow.priority", "workflow.duration", "workflow.status", "workflow.failures",
    "workflow.parameters", "workflow.labels.json", "workflow.annotations.json", "workflow.scheduledTime",
}
_TEMPLATE_VARIABLES = {"pod.name", "node.name", "retries", "inputs.parameters"}
_TASK_FIELDS = {"id", "ip", "status", "exitCode", "startedAt", "finishedAt", "hostNodeName", "outputs.result"}


@dataclass(frozen=True)
class Problem:
    file: str
    document: str  # "#2 WorkflowTemplate/fraud-detection-training"
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.document}: {self.path}: {self.rule}: {self.message}"


def lint_files(paths: list[Path], schemas: Schemas | None) -> list[Problem]:
    problems: list[Problem] = []
    for path in paths:
        if path.name == KUSTOMIZE_CONFIG:
            continue  # kustomize transformer configuration: a plain mapping with no kind, not a resource
        try:
            with open(path, encoding="utf-8") as fh:
                docs = list(yaml.safe_load_all(fh))
        except yaml.YAMLError as err:
            problems.append(Problem(str(path), "-", "-", "yaml", f"not valid YAML: {err}"))
            continue
        for index, doc in enumerate(docs, start=1):
            if doc is None:
                continue
            problems += lint_document(doc, str(path), index, schemas, base=path.parent)
    return problems


def lint_document(doc: Any, file: str, index: int, schemas: Schemas | None, base: Path | None = None) -> list[Problem]:
    """Every problem of one parsed document (`index` counts from 1 within its file)."""
    if not isinstance(doc, dict) or "kind" not in doc:
        return [Problem(file, f"#{index}", "<document>", "not-a-resource", "a document must be a mapping with a kind")]
    label = f"#{index} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name', '?')}"
    found: list[tuple[str, str, str]] = []
    kind = doc["kind"]
    if kind in KUSTOMIZE_KINDS:
        found += _check_kustomization(doc, base)
    else:
        if schemas is not None:
            try:
                found += [(i.path, i.rule, i.message) for i in schemas.validate(doc)]
            except NoSchema as err:
                found.append(("<document>", "no-schema", str(err)))
        if str(doc.get("apiVersion", "")).startswith("argoproj.io/") and kind in ARGO_WORKFLOW_KINDS:
            found += check_workflow(doc)
    return [Problem(file, label, path, rule, message) for path, rule, message in found]


# --- Argo Workflows semantics ------------------------------------------------------------------------


def check_workflow(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, rule, message) for each semantic problem of a Workflow, WorkflowTemplate or CronWorkflow."""
    if doc["kind"] == "CronWorkflow":
        spec, prefix = (doc.get("spec") or {}).get("workflowSpec") or {}, "spec.workflowSpec"
    else:
        spec, prefix = doc.get("spec") or {}, "spec"
    if not isinstance(spec, dict):
        return []
    return _WorkflowChecker(spec, prefix).run()


class _WorkflowChecker:
    def __init__(self, spec: dict[str, Any], prefix: str):
        self.spec, self.prefix = spec, prefix
        self.problems: list[tuple[str, str, str]] = []
        templates = [t for t in spec.get("templates") or [] if isinstance(t, dict)]
        self.templates = {t.get("name"): t for t in templates}
        self.parameters = {p.get("name") for p in (spec.get("arguments") or {}).get("parameters") or []}
        self.global_outputs = {
            f"{kind}.{item['globalName']}"
            for t in templates
            for kind in ("parameters", "artifacts")
            for item in (t.get("outputs") or {}).get(kind) or []
            if isinstance(item, dict) and item.get("globalName")
        }

    def add(self, path: str, rule: str, message: str) -> None:
        self.problems.append((path, rule, message))

    def run(self) -> list[tuple[str, str, str]]:
        p = self.prefix
        self._unique([t.get("name") for t in self.spec.get("templates") or []], f"{p}.templates", "template")
        self._unique([x.get("name") for x in (self.spec.get("arguments") or {}).get("parameters") or []],
                     f"{p}.arguments.parameters", "parameter")
        for key in ("entrypoint", "onExit"):
            name = self.spec.get(key)
            if name and name not in self.templates:
                self.add(f"{p}.{key}", "missing-template", f"no template named {name!r}{self._known()}")
        for key, value in self.spec.items():
            if key != "templates":
                self._variables(value, f"{p}.{key}", self._global)
        for i, template in enumerate(self.spec.get("templates") or []):
            if isinstance(template, dict):
                self._template(template, f"{p}.templates[{i}]")
        return self.problems

    def _known(self) -> str:
        return f" (templates: {', '.join(sorted(str(n) for n in self.templates))})"

    def _unique(self, names: list[Any], path: str, what: str) -> None:
        seen = set()
        for name in names:
            if name in seen:
                self.add(path, "duplicate-name", f"{what} name {name!r} is used more than once")
            seen.add(name)

    # variables -------------------------------------------------------------------------------------

    def _global(self, name: str) -> str | None:
        """None when `name` resolves everywhere in the workflow, else why not."""
        if name in _WORKFLOW_VARIABLES or name.startswith(("workflow.labels.", "workflow.annotations.",
                                                            "workflow.creationTimestamp.")):
            return None
        if name.startswith("workflow.parameters."):
            param = name[len("workflow.parameters."):]
            if param in self.parameters:
                return None
            return f"workflow parameter {param!r} is not declared in spec.arguments.parameters"
        if name.startswith("workflow.outputs."):
            return None if name[len("workflow.outputs."):] in self.global_outputs else "no output has that globalName"
        return "not a variable Argo knows here"

    def _template_scope(self, template: dict[str, Any]) -> Callable[[str], str | None]:
        inputs, outputs = template.get("inputs") or {}, template.get("outputs") or {}
        declared = set(_TEMPLATE_VARIABLES)
        for item in _named(inputs.get("parameters")):
            declared.add(f"inputs.parameters.{item['name']}")
        for item in _named(inputs.get("artifacts")):
            declared |= {f"inputs.artifacts.{item['name']}", f"inputs.artifacts.{item['name']}.path"}
        for kind in ("parameters", "artifacts"):
            for item in _named(outputs.get(kind)):
                declared.add(f"outputs.{kind}.{item['name']}.path")

        def resolve(name: str) -> str | None:
            if name in declared:
                return None
            if name.startswith(("inputs.", "outputs.")):
                return f"template {template.get('name')!r} declares no such input or output"
            return self._global(name)

        return resolve

    def _variables(self, value: Any, path: str, resolve: Callable[[str], str | None]) -> None:
        for where, text in _strings(value, path):
            for name in (t.strip() for t in tags(text)):
                if name.startswith("="):
                    continue  # an expression template ({{=...}}): evaluated by Argo, not checked here
                why = resolve(name)
                if why:
                    self.add(where, "unresolved-variable", f"{{{{{name}}}}}: {why}")

    # templates -------------------------------------------------------------------------------------

    def _template(self, template: dict[str, Any], path: str) -> None:
        scope = self._template_scope(template)
        if isinstance(template.get("dag"), dict):
            # A DAG template's own outputs may take any of its tasks' outputs.
            tasks = {str(t["name"]): t for t in _named(template["dag"].get("tasks"))}
            inner = scope

            def scope(name: str) -> str | None:
                if name.startswith("tasks."):
                    return self._task_output(name, tasks, set(tasks))
                return inner(name)

        for key, value in template.items():
            if key not in ("dag", "steps"):
                self._variables(value, f"{path}.{key}", scope)
        retry = template.get("retryStrategy") or {}
        if isinstance(retry, dict) and retry.get("expression"):
            self._parse(retry["expression"], f"{path}.retryStrategy.expression", compile_expr)
        if isinstance(template.get("dag"), dict):
            self._dag(template, f"{path}.dag")
        for i, group in enumerate(template.get("steps") or []):
            for j, step in enumerate(group if isinstance(group, list) else []):
                if isinstance(step, dict) and step.get("template") and step["template"] not in self.templates:
                    self.add(f"{path}.steps[{i}][{j}].template", "missing-template",
                             f"no template named {step['template']!r}{self._known()}")

    def _parse(self, expression: str, path: str, parse: Callable[[str], Any]) -> None:
        """Checked as Argo reads it (a `when` with govaluate, a retry expression with expr-lang); variables become a
        literal so that the expression's own syntax is what gets checked."""
        text = _TAG.sub("0", expression)
        try:
            parse(text)
        except Unsupported:
            return  # Argo evaluates it; the local languages do not: not a mistake in the YAML
        except LangError as err:
            self.add(path, "bad-expression", f"{expression!r}: {err}")

    def _dag(self, template: dict[str, Any], path: str) -> None:
        tasks = [t for t in template["dag"].get("tasks") or [] if isinstance(t, dict)]
        names = [str(t.get("name")) for t in tasks]
        self._unique(names, f"{path}.tasks", "task")
        by_name = {str(t.get("name")): t for t in tasks}
        parents: dict[str, list[str]] = {}
        for i, task in enumerate(tasks):
            where = f"{path}.tasks[{i}]"
            try:
                deps = _depends_on(task.get("depends"), task.get("dependencies"))
            except LangError as err:
                self.add(f"{where}.depends", "bad-expression", f"{task.get('depends')!r}: {err}")
                deps = []
            for dep in deps:
                if dep not in by_name:
                    field = "depends" if task.get("depends") else "dependencies"
                    self.add(f"{where}.{field}", "missing-task",
                             f"task {task.get('name')!r} depends on {dep!r}, which is not a task of this DAG "
                             f"(tasks: {', '.join(sorted(map(str, names)))})")
            parents[str(task.get("name"))] = [d for d in deps if d in by_name]
        cycle = _find_cycle(parents)
        if cycle:
            self.add(f"{path}.tasks", "cycle", "dependency cycle: " + " -> ".join(cycle))
        for i, task in enumerate(tasks):
            # With a cycle every task counts as an ancestor: one error for the cycle, not one per reference.
            ancestors = set(by_name) if cycle else _ancestors(task, parents)
            self._task(task, f"{path}.tasks[{i}]", template, by_name, ancestors)
        target = template["dag"].get("target")
        for name in str(target or "").split():
            if name not in by_name:
                self.add(f"{path}.target", "missing-task", f"no task named {name!r}")

    def _task(self, task: dict[str, Any], path: str, dag: dict[str, Any], tasks: dict[str, Any],
              ancestors: set[str]) -> None:
        called = self.templates.get(task.get("template")) if task.get("template") else None
        if task.get("template") and called is None:
            self.add(f"{path}.template", "missing-template", f"no template named {task['template']!r}{self._known()}")
        if task.get("when"):
            self._parse(str(task["when"]), f"{path}.when", govaluate.parse)
        looped = any(k in task for k in ("withItems", "withParam", "withSequence"))
        dag_inputs = self._template_scope(dag)

        def resolve(name: str) -> str | None:
            if looped and (name == "item" or name.startswith("item.")):
                return None
            if name.startswith("tasks."):
                return self._task_output(name, tasks, ancestors)
            return dag_inputs(name)

        self._variables({k: v for k, v in task.items() if k != "inline"}, path, resolve)
        if called is not None:
            self._arguments(task, called, path)

    def _task_output(self, name: str, tasks: dict[str, Any], ancestors: set[str]) -> str | None:
        _, task_name, rest = (name.split(".", 2) + ["", ""])[:3]
        if task_name not in tasks:
            return f"no task named {task_name!r} in this DAG"
        if task_name not in ancestors:
            return f"task {task_name!r} is not an ancestor (add it to depends)"
        if rest in _TASK_FIELDS:
            return None
        kind, _, output = rest.partition(".")[2].partition(".") if rest.startswith("outputs.") else ("", "", "")
        if kind not in ("parameters", "artifacts") or not output:
            return f"{rest!r} is not an output Argo knows (outputs.parameters.X, outputs.artifacts.X, status, ...)"
        producer = self.templates.get(tasks[task_name].get("template"))
        if producer is None:
            return None  # templateRef or inline: declared elsewhere
        declared = {item.get("name") for item in (producer.get("outputs") or {}).get(kind) or []}
        if output not in declared:
            return f"template {producer.get('name')!r} of task {task_name!r} declares no output {kind[:-1]} {output!r}"
        return None

    def _arguments(self, task: dict[str, Any], called: dict[str, Any], path: str) -> None:
        arguments = task.get("arguments") or {}
        inputs = called.get("inputs") or {}
        for kind in ("parameters", "artifacts"):
            given = {a.get("name") for a in arguments.get(kind) or [] if isinstance(a, dict)}
            declared = {i.get("name"): i for i in inputs.get(kind) or [] if isinstance(i, dict)}
            for name in sorted(given - set(declared), key=str):
                self.add(f"{path}.arguments.{kind}", "unknown-argument",
                         f"template {called.get('name')!r} has no input {kind[:-1]} {name!r}")
            for name, item in declared.items():
                if name in given or _has_source(item, kind):
                    continue
                self.add(f"{path}.arguments.{kind}", "missing-argument", f"template {called.get('name')!r} needs "
                         f"input {kind[:-1]} {name!r}, which the task does not pass")


def _named(items: Any) -> list[dict[str, Any]]:
    return [i for i in items or [] if isinstance(i, dict) and i.get("name")]


def _has_source(item: dict[str, Any], kind: str) -> bool:
    if kind == "parameters":
        return "value" in item or "default" in item or "valueFrom" in item
    sources = ("raw", "s3", "http", "git", "gcs", "oss", "hdfs", "artifactory", "azure", "from", "plugin")
    return bool(item.get("optional")) or any(k in item for k in sources)


def _find_cycle(parents: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for parent in parents.get(node, []):
            if state.get(parent) == 1:
                return stack[stack.index(parent):] + [parent]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(parents, key=str):
        if node not in state:
            found = visit(node)
            if found:
                return list(reversed(found))
    return None


def _ancestors(task: dict[str, Any], parents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(parents.get(str(task.get("name")), []))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += parents.get(name, [])
    return seen


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _strings(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _strings(sub, f"{path}[{i}]")


# --- kustomize ---------------------------------------------------------------------------------------


def _check_kustomization(doc: dict[str, Any], base: Path | None) -> list[tuple[str, str, str]]:
    problems: list[tuple[str, str, str]] = []
    for key in ("bases", "commonLabels", "patchesJson6902", "patchesStrategicMerge"):
        if key in doc:
            problems.append((key, "deprecated", f"{key!r} is deprecated in kustomize; use resources/labels/patches"))
    if base is None:
        return problems
    for key in ("resources", "components", "configurations"):
        for i, entry in enumerate(doc.get(key) or []):
            if isinstance(entry, str) and "://" not in entry and not (base / entry).exists():
                problems.append((f"{key}[{i}]", "missing-resource", f"{entry!r} does not exist beside the file"))
    return problems


# --- command line ------------------------------------------------------------------------------------


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="mlops lint", description=__doc__)
    p.add_argument("files", nargs="*", type=Path, help=f"YAML files or folders (default: {DEFAULT_ROOT}/**)")
    p.add_argument("--schemas", type=Path,
                   help="the schemas folder (default: $MLOPS_SCHEMAS, else ../shared/schemas beside the repo)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    targets = args.files or [DEFAULT_ROOT]
    files: list[Path] = []
    for target in targets:
        if target.is_dir():
            files += sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif target.is_file():
            files.append(target)
        else:
            print(f"mlops lint: error: {target}: no such file or folder", file=sys.stderr)
            return 2
    if not files:
        print(f"mlops lint: error: no YAML files in {', '.join(map(str, targets))}", file=sys.stderr)
        return 2
    folder = locate(args.schemas)
    schemas = None
    if folder is not None and args.schemas is not None and not folder.is_dir():
        print(f"mlops lint: error: --schemas {folder}: no such folder", file=sys.stderr)
        return 2
    try:
        schemas = Schemas(folder) if folder is not None else None
    except FileNotFoundError as err:
        print(f"mlops lint: {err}: semantic checks only", file=sys.stderr)
    if folder is None:
        print("mlops lint: no schemas found (--schemas DIR, $MLOPS_SCHEMAS or ../shared/schemas): "
              "semantic checks only", file=sys.stderr)
    problems = lint_files(files, schemas)
    if schemas is not None and schemas.unchecked:
        print(f"mlops lint: Kubernetes kinds not schema-checked ({', '.join(sorted(schemas.unchecked))}): "
              "kubernetes-validate is not installed; install it with the lint extra: "
              "uv pip install -e '.[lint]' (or pip install 'argo-mlops[lint]')", file=sys.stderr)
    for problem in problems:
        print(problem)
    if problems:
        print(f"mlops lint: {len(problems)} problem(s) in {len({p.file for p in problems})} of {len(files)} file(s)",
              file=sys.stderr)
        return 1
    print(f"mlops lint: {len(files)} file(s) OK" + ("" if schemas else " (semantic checks only)"))
    return 0


def _depends_on(depends: str | None, dependencies: list[str] | None) -> list[str]:
    """The task names a `depends` expression (or `dependencies` list) refers to, in order; a result Argo does not
    know (`A.Succeded`) or logic it cannot evaluate is a LangError."""
    if not depends:
        return list(dict.fromkeys(dependencies or []))
    names = list(_depends.dependencies(depends))
    logic = _depends.expand(depends, {n: _depends.ContinueOn() for n in names})  # validates every result
    _depends.evaluate(logic, {n: _depends.task_results("Succeeded") for n in names})  # and the syntax
    return names
