"""Run an Argo Workflow on this machine from Python: a Hera `Workflow`/`WorkflowTemplate` (anything with
`to_dict()`), a dict, or a YAML file, with Argo's node phases and outputs back (docs/local-runner.md).

    from workflows.local.api import run
    result = run(workflow, parameters={"message": "hi"}, templates=["manifests/generated"])
    assert result.phase == "Succeeded"
    assert result.nodes["print"].outputs["result"] == "hi"

What cannot run here is refused before anything starts (`Refused`, every place listed). `prepare` is the part
`mlops run --from` shares: the documents read, `-p` applied as `argo submit -p` applies it, a WorkflowTemplate
submitted as `argo submit --from workflowtemplate/<name>` would be, the workflowTemplateRef merged, the checks run.

The run itself is the engine's (workflows/local/engine/): `execute` calls the controller's entry point
`operator.run_workflow` with the executor's `LocalExecutor`, and writes run.json from its result.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from steps._core.errors import UsageError
from workflows.local.engine.nodes import NodeTree, Outputs
from workflows.local.record import outputs_document, workflow_document, write_workflow_json
from workflows.local.refusals import Refusal, Report, check
from workflows.local.templates import (
    DEFAULT_STORE,
    WORKFLOW_TEMPLATE,
    Resolver,
    TemplateNotFound,
    TemplateStore,
    with_workflow_template,
)

RUNNABLE = ("Workflow", WORKFLOW_TEMPLATE, "ClusterWorkflowTemplate")
CRON_WORKFLOW = "CronWorkflow"
SUBMITTABLE = ("Workflow", WORKFLOW_TEMPLATE, CRON_WORKFLOW)  # what `mlops run --from` runs
RUNS = Path(".mlops/runs")
GENERATOR = "argo-mlops.io/generator"  # the annotation `mlops compile` puts on what it renders
ENGINE = "workflows.local.engine.operator"  # run_workflow: the controller's entry point
EXECUTOR = "workflows.local.engine.executor"  # LocalExecutor: pods as sandboxed processes
RESUME = "workflows.local.engine.resume"  # ResumeError: no suspended run in the folder


class LoadError(UsageError):
    """The workflow cannot be read or chosen (no such file, not YAML, no or several runnable documents)."""


class Refused(UsageError):
    """What cannot run here, every place at once; nothing was started."""

    def __init__(self, refusals: Sequence[Refusal]):
        self.refusals = list(refusals)
        super().__init__("cannot run here:\n" + "\n".join(f"  {r}" for r in self.refusals))


class ResumeError(UsageError):
    """`--resume`: the run folder holds no run stopped at a suspend."""


class EngineUnavailable(UsageError):
    """The new engine's entry point is not there (yet)."""


@dataclass
class Prepared:
    """A workflow ready to run: the spec that runs (workflowTemplateRef merged, `-p` applied), where its
    templateRefs resolve, the ConfigMaps the controller sees, and what the checks found."""

    workflow: dict[str, Any]  # what the checks saw: the workflowTemplateRef merged
    store: TemplateStore
    config_maps: dict[str, dict[str, Any]]
    report: Report
    parameters: dict[str, str] = field(default_factory=dict)
    submitted: dict[str, Any] = field(default_factory=dict)  # what runs: the Workflow as submitted, -p applied

    @property
    def name(self) -> str:
        return str((self.workflow.get("metadata") or {}).get("name") or "workflow")


@dataclass
class NodeResult:
    name: str
    display_name: str
    type: str
    phase: str
    message: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]  # parameters (by name), artifacts, exitCode, and result when captured
    memoized: bool


@dataclass
class Result:
    """How the workflow ended: its phase and message, its nodes by display name, its output parameters."""

    phase: str
    message: str
    nodes: dict[str, NodeResult]
    outputs: dict[str, str | None]
    run_dir: Path
    tree: NodeTree
    suspended: list[str] = field(default_factory=list)  # phase Running: the indefinite suspends it stopped at
    labels: dict[str, str] = field(default_factory=dict)  # the Workflow's metadata.labels when it stopped
    annotations: dict[str, str] = field(default_factory=dict)  # ... and its metadata.annotations

    @property
    def exit_code(self) -> int:
        """What `mlops run` exits with: 0 when Succeeded, 1 otherwise (refusals exit 2 before this)."""
        return 0 if self.phase == "Succeeded" else 1


# --- reading and preparing --------------------------------------------------------------------------------


def documents(source: Any) -> list[dict[str, Any]]:
    """The documents of a YAML file (Path), a dict, a list of dicts, or an object with `to_dict()` (Hera)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise LoadError(f"{path}: cannot read the workflow YAML: {err}") from err
    if hasattr(source, "to_dict"):
        return [dict(source.to_dict())]
    if isinstance(source, Mapping):
        return [copy.deepcopy(dict(source))]
    if isinstance(source, list) and all(isinstance(d, Mapping) for d in source):
        return [copy.deepcopy(dict(d)) for d in source]
    raise LoadError(f"cannot run a {type(source).__name__}: give a Workflow or WorkflowTemplate (Hera object, "
                    "dict or YAML file)")


def prepare(source: Any, parameters: Mapping[str, str] | None = None, *, name: str | None = None,
            templates: Iterable[str | Path] | None = None,
            configmaps: Iterable[str | Path | Mapping[str, Any]] = (),
            image_commands: Mapping[str, list[str]] | None = None) -> Prepared:
    """Read, choose, apply `-p`, merge and check. Raises LoadError or TemplateStoreError; refusals are in
    `report` (a caller decides: `run` raises Refused)."""
    docs = documents(source)
    chosen = choose(docs, name)
    sources = [Path(t) for t in templates] if templates is not None else (
        [DEFAULT_STORE] if DEFAULT_STORE.is_dir() else [])
    store = TemplateStore.load(sources)
    for doc in docs:
        if doc.get("kind") in RUNNABLE[1:] and (doc.get("kind"), _name(doc)) not in store.resources:
            store.add(doc)
    given_maps = [d for c in configmaps for d in ([dict(c)] if isinstance(c, Mapping) else _config_map_files(Path(c)))]
    maps = {_name(d): d for d in given_maps if d.get("kind") == "ConfigMap"}
    maps.update({_name(d): d for d in docs if d.get("kind") == "ConfigMap"})
    workflow = _as_workflow(chosen)
    if image_commands:
        for doc in [workflow, *store.resources.values()]:
            with_image_commands(doc.get("spec") or {}, image_commands)
    given = dict(parameters or {})
    override_parameters(workflow, given)
    try:
        merged = with_workflow_template(workflow, store)
    except TemplateNotFound as err:
        report = Report()
        report.refuse("workflow", "spec.workflowTemplateRef", str(err))
        return Prepared(workflow, store, maps, report, given, workflow)
    object_store = bool(os.environ.get("AWS_ENDPOINT_URL"))
    report = check(merged, Resolver(merged, store), image_commands=image_commands, object_store=object_store,
                   config_maps=maps)
    return Prepared(merged, store, maps, report, given, workflow)


def _config_map_files(path: Path) -> list[dict[str, Any]]:
    """The documents of a ConfigMap file, or of every YAML file of a folder (as --templates reads one)."""
    if path.is_dir():
        return [d for f in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) for d in documents(f)]
    return documents(path)


def _name(doc: Mapping[str, Any]) -> str:
    """metadata.name, else generateName without its dash (a local run gets no random suffix)."""
    meta = doc.get("metadata") or {}
    return str(meta.get("name") or str(meta.get("generateName") or "").rstrip("-"))


def choose(docs: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    runnable = [d for d in docs if d.get("kind") in SUBMITTABLE]
    if name is not None:
        runnable = [d for d in runnable if _name(d) == name]
    elif len([d for d in runnable if d.get("kind") == "Workflow"]) == 1:
        runnable = [d for d in runnable if d.get("kind") == "Workflow"]
    if len(runnable) != 1:
        which = f"named {name!r}" if name else "(there are several: name one)"
        found = ", ".join(f"{d.get('kind')}/{_name(d)}" for d in docs if d.get("kind") in SUBMITTABLE)
        raise LoadError(f"expected one Workflow, WorkflowTemplate or CronWorkflow {which}; found: {found or 'none'}")
    return runnable[0]


def is_ours(doc: Mapping[str, Any]) -> bool:
    """Rendered by `mlops compile` from a policy (our training, drift and retrain templates)."""
    return GENERATOR in ((doc.get("metadata") or {}).get("annotations") or {})


def _as_workflow(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A Workflow runs as it is; a WorkflowTemplate as `argo submit --from workflowtemplate/<name>` submits it: a
    Workflow named after it with a workflowTemplateRef to it (merged by the caller); a CronWorkflow as
    `argo submit --from cronwf/<name>`: its workflowSpec, named after it."""
    if doc.get("kind") == CRON_WORKFLOW:  # argo submit --from cronwf/<name>: ConvertCronWorkflowToWorkflow
        cron_meta = (doc.get("spec") or {}).get("workflowMetadata") or {}
        labels = {"workflows.argoproj.io/cron-workflow": _name(doc), **(cron_meta.get("labels") or {})}
        scheduled = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations = {"workflows.argoproj.io/scheduled-time": scheduled, **(cron_meta.get("annotations") or {})}
        return {"apiVersion": doc.get("apiVersion", "argoproj.io/v1alpha1"), "kind": "Workflow",
                "metadata": {"name": _name(doc), "labels": labels, "annotations": annotations},
                "spec": copy.deepcopy((doc.get("spec") or {}).get("workflowSpec") or {})}
    if doc.get("kind") != WORKFLOW_TEMPLATE:
        workflow = dict(doc)
        meta = dict(workflow.get("metadata") or {})
        meta.setdefault("name", _name(workflow) or "workflow")
        return {**workflow, "metadata": meta}
    name = _name(doc)  # NewWorkflowFromWorkflowTemplate: its label is added with the workflowTemplateRef's
    return {"apiVersion": doc.get("apiVersion", "argoproj.io/v1alpha1"), "kind": "Workflow",
            "metadata": {"name": name}, "spec": {"workflowTemplateRef": {"name": name}}}


def with_image_commands(spec: dict[str, Any], commands: Mapping[str, list[str]]) -> None:
    """`--image-command IMAGE=CMD`: the command of every container of that image that has none (in place), in the
    spec's templates and the inline templates of their steps and tasks, however deep."""
    for template in spec.get("templates") or []:
        _template_image_commands(template, commands)


def _template_image_commands(template: Any, commands: Mapping[str, list[str]]) -> None:
    if not isinstance(template, dict):
        return
    containers = [template.get("container"), template.get("script"), *(template.get("initContainers") or []),
                  *(template.get("sidecars") or []), *((template.get("containerSet") or {}).get("containers") or [])]
    for container in containers:
        if isinstance(container, dict) and not container.get("command") and container.get("image") in commands:
            container["command"] = list(commands[str(container["image"])])
    steps = [step for group in template.get("steps") or [] for step in (group if isinstance(group, list) else [])]
    tasks = (template.get("dag") or {}).get("tasks") or []
    for step in [*steps, *tasks]:
        if isinstance(step, dict):
            _template_image_commands(step.get("inline"), commands)


def override_parameters(workflow: dict[str, Any], given: Mapping[str, str]) -> None:
    """overrideParameters (workflow/util/util.go:312-338): the `-p` parameters first, in their order, each
    replacing the declared one of its name whole; then the others."""
    if not given:
        return
    spec = workflow.setdefault("spec", {})
    arguments = spec.setdefault("arguments", {})
    passed = [{"name": k, "value": v} for k, v in given.items()]
    arguments["parameters"] = passed + [p for p in arguments.get("parameters") or [] if p.get("name") not in given]


# --- running ----------------------------------------------------------------------------------------------


def run(workflow: Any, parameters: Mapping[str, str] | None = None, *, templates: Iterable[str | Path] | None = None,
        configmaps: Iterable[str | Path | Mapping[str, Any]] = (), run_dir: Path | None = None, name: str | None = None,
        image_commands: Mapping[str, list[str]] | None = None) -> Result:
    """Run it here and return how it ended. Raises Refused (nothing started) or LoadError."""
    prepared = prepare(workflow, parameters, name=name, templates=templates, configmaps=configmaps,
                       image_commands=image_commands)
    if prepared.report.refusals:
        raise Refused(prepared.report.refusals)
    return execute(prepared, run_dir or new_run_dir(RUNS, prepared.name))


def engine_available() -> bool:
    """The engine's controller and executor are both there."""
    return all(importlib.util.find_spec(module) is not None for module in (ENGINE, EXECUTOR))


def execute(prepared: Prepared, run_dir: Path, progress: Callable[[NodeTree], None] | None = None,
            state_dir: Path | None = None, resume: Mapping[str, Mapping[str, str]] | None = None,
            env: Mapping[str, str] | None = None, shared: Sequence[Path] = ()) -> Result:
    """Run a prepared workflow with the engine (its controller's `run_workflow`, its executor's LocalExecutor);
    run.json is written in `run_dir`. `env` and `shared`: variables added to this machine's and host folders every
    container sees (LocalExecutor). Raises EngineUnavailable when either is missing."""
    try:
        operator = importlib.import_module(ENGINE)
        executor_module = importlib.import_module(EXECUTOR)
    except ImportError as err:
        raise EngineUnavailable(f"the local engine is not available: {err}") from err
    resume_module = importlib.import_module(RESUME)
    spec = prepared.workflow.get("spec") or {}
    claims = tuple(str((c.get("metadata") or {}).get("name")) for c in spec.get("volumeClaimTemplates") or [])
    executor = executor_module.LocalExecutor(run_dir, config_maps=prepared.config_maps, claims=claims,
                                             env=dict(env or {}), shared=tuple(shared))
    started, written = time.time(), [0.0]

    def observe(tree: NodeTree) -> None:
        """The caller's progress, and run.json rewritten as the run goes (at most once a second)."""
        if progress is not None:
            progress(tree)
        if time.monotonic() - written[0] >= 1.0:
            written[0] = time.monotonic()
            write_workflow_json(run_dir, workflow_document(tree, "Running", "", None, prepared.parameters,
                                                           time.time() - started, run_dir))

    try:
        outcome = operator.run_workflow(prepared.submitted, run_dir=run_dir, executor=executor,
                                        templates=prepared.store, config_maps=prepared.config_maps,
                                        progress=observe, state_dir=state_dir, resume=resume)
    except resume_module.ResumeError as err:  # nothing suspended to resume in run_dir
        raise ResumeError(str(err)) from err
    tree: NodeTree = outcome.nodes
    write_workflow_json(run_dir, workflow_document(tree, outcome.phase, outcome.message, outcome.outputs,
                                                   prepared.parameters, outcome.finished_at - outcome.started_at,
                                                   run_dir, metadata={"labels": outcome.labels,
                                                                      "annotations": outcome.annotations}))
    result = result_of(tree, outcome.phase, outcome.message, outcome.outputs, run_dir)
    result.suspended = list(outcome.suspended)
    result.labels, result.annotations = dict(outcome.labels), dict(outcome.annotations)
    return result


def result_of(tree: NodeTree, phase: str, message: str, outputs: Outputs | None, run_dir: Path) -> Result:
    nodes = {
        node.display_name: NodeResult(node.name, node.display_name, node.type, node.phase, node.message,
                                      {"parameters": {p.name: p.value for p in node.inputs.parameters}},
                                      outputs_document(node.outputs), node.memoized)
        for node in tree.nodes.values()
    }
    values = {p.name: p.value for p in outputs.parameters} if outputs is not None else {}
    return Result(phase, message, nodes, values, run_dir, tree)


def new_run_dir(runs: Path, name: str) -> Path:
    """`<runs>/<UTC time>-<name>`: sorted by time, named after the workflow."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    for suffix in ["", *(f"-{i}" for i in range(2, 100))]:
        run_dir = runs / f"{stamp}-{name}{suffix}"
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise LoadError(f"{runs}: cannot create a run folder for {name}")
