"""The local runner: executes a rendered Workflow or WorkflowTemplate YAML as Argo would, without a cluster.

Each DAG task is its own process running the container's `command`/`args` (with this Python for `python`),
in the current folder; independent tasks run in parallel. Argo's `{{...}}` substitution, artifact passing
(an artifact is the producing task's local output path), `depends`/`dependencies`, `when`, `retryStrategy`
and `activeDeadlineSeconds` follow Argo's rules; what Argo would do differently is refused by name before
anything runs (`workflows.local.support`). Every path a container sees maps into the run folder:

    <run>/workflow.yaml                      the YAML that runs, byte for byte
    <run>/run.json                           phase, timings and outputs of every task
    <run>/volumes/<volume>/                  configMap volumes, from the ConfigMaps in the same YAML
    <run>/tasks/<task>/log                   the task's stdout and stderr, every attempt
    <run>/tasks/<task>/<volume>/             emptyDir volumes (one per task, as one per pod)
    <run>/tasks/<task>/outputs/              outputs declared outside any volume

Values given on this machine (`-p`, ConfigMaps made locally such as `mlops-config`) are local paths or
text: they are never rewritten as container paths.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from steps._core.errors import UsageError
from workflows.local import expr as _expr
from workflows.local import task as _task
from workflows.local.progress import Progress
from workflows.local.record import RunResult, write_run_json
from workflows.local.support import unsupported
from workflows.local.task import TaskState

RUNNABLE_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")
FINISHED = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")


class RunnerError(UsageError):
    """The workflow cannot start: bad YAML, an unknown parameter, an unsupported feature (exit 2)."""


def read(path: Path) -> bytes:
    """A workflow YAML file's bytes, to parse and to copy into the run folder."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise RunnerError(f"{path}: cannot read the workflow YAML: {err}") from err


def load(path: Path, name: str | None = None) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The Workflow/WorkflowTemplate in a YAML file (by name when there are several) and the ConfigMaps beside it."""
    return parse(read(path), path, name)


def parse(data: bytes, path: Path, name: str | None = None) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """`load` of YAML already read from `path`."""
    try:
        docs = [d for d in yaml.safe_load_all(data.decode("utf-8")) if isinstance(d, dict)]
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunnerError(f"{path}: cannot read the workflow YAML: {err}") from err
    runnable = [d for d in docs if d.get("kind") in RUNNABLE_KINDS]
    names = [template_name(d) for d in runnable]
    if name is not None:
        runnable = [d for d, n in zip(runnable, names, strict=True) if n == name]
    if len(runnable) != 1:
        which = f"named {name!r}" if name else "(there are several: name one)"
        raise RunnerError(
            f"{path}: expected one Workflow or WorkflowTemplate {which}; found: {', '.join(names) or 'none'}"
        )
    config_maps = {
        str(d["metadata"]["name"]): {str(k): str(v) for k, v in (d.get("data") or {}).items()}
        for d in docs
        if d.get("kind") == "ConfigMap" and (d.get("metadata") or {}).get("name")
    }
    return runnable[0], config_maps


def declared_parameters(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's `spec.arguments.parameters`, in their order."""
    return list(((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or [])


def check_parameter_names(workflow: dict[str, Any], given: dict[str, str]) -> None:
    """`-p name=...` for a parameter the workflow does not declare is an error, as with `argo submit`."""
    declared = [p["name"] for p in declared_parameters(workflow)]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RunnerError(f"-p {unknown[0]}: the workflow has no parameter {unknown[0]!r} "
                          f"(parameters: {', '.join(declared) or 'none'})")


def resolve_parameters(workflow: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Workflow parameters: the declared values, overridden by `-p name=value` as with `argo submit -p`."""
    check_parameter_names(workflow, given)
    declared = {p["name"]: p for p in declared_parameters(workflow)}
    values = {}
    for name, param in declared.items():
        value = given.get(name, param.get("value", param.get("default")))
        if value is None:
            raise RunnerError(f"parameter {name!r} has no value: pass -p {name}=VALUE")
        allowed = [str(v) for v in param.get("enum") or []]
        if allowed and str(value) not in allowed:
            raise RunnerError(f"parameter {name!r}: {value!r} is not one of {', '.join(allowed)}")
        values[name] = str(value)
    return values


def workflow_name(workflow: dict[str, Any]) -> str:
    """As `argo submit` names it: a Workflow's name, else the template's name plus a random suffix."""
    meta = workflow.get("metadata") or {}
    if workflow.get("kind") == "Workflow" and meta.get("name"):
        return str(meta["name"])
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return f"{template_name(workflow)}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def new_run_dir(runs: Path, name: str) -> Path:
    """`<runs>/<UTC time>-<name>`: sorted by time, named after the template."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    for suffix in ["", *(f"-{i}" for i in range(2, 100))]:
        run_dir = runs / f"{stamp}-{name}{suffix}"
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise RunnerError(f"{runs}: cannot create a run folder for {name}")


def template_name(workflow: dict[str, Any]) -> str:
    """The document's name (or generateName, without its dash): names the run folder."""
    meta = workflow.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "workflow").rstrip("-")


class Runner:
    """Runs one workflow document; `run()` returns once every task has finished or the run was interrupted."""

    def __init__(self, workflow: dict[str, Any], *, parameters: dict[str, str], run_dir: Path, name: str,
                 local: set[str] | frozenset[str] = frozenset(), config_maps: dict[str, dict[str, str]] | None = None,
                 local_config_maps: dict[str, dict[str, str]] | None = None, cwd: Path | None = None,
                 progress: Progress | None = None, backoff_scale: float = 1.0):
        """`local`: names of the parameters given on this machine. `config_maps`: those of the YAML;
        `local_config_maps`: made on this machine (they win). `backoff_scale` multiplies retry backoffs."""
        problems = unsupported(workflow)
        if problems:
            raise RunnerError("the local runner does not support:\n  " + "\n  ".join(problems))
        self.workflow, self.spec = workflow, workflow["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.parameters = parameters
        self.progress = progress or Progress()
        # Local values travel through substitution as opaque tokens, so no path rewrite can touch them.
        self.param_tokens = {n: f"\x00local-{i}\x00" for i, n in enumerate(sorted(local)) if n in parameters}
        self.uid = str(uuid.uuid4())
        self.created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.ctx = _task.Context(
            workflow_name=name,
            volumes=list(self.spec.get("volumes") or []),
            run_dir=run_dir,
            cwd=cwd or Path.cwd(),
            config_maps={**(config_maps or {}), **(local_config_maps or {})},
            local_config_maps=set(local_config_maps or {}),
            tokens={token: parameters[n] for n, token in self.param_tokens.items()},
            global_lookup=self._global,
            report=self.progress.task,
            backoff_scale=backoff_scale,
        )
        self.dag, self.tasks = self._plan()
        self.progress.width = max([12, *(len(n) for n in self.tasks)])

    @property
    def name(self) -> str:
        return self.ctx.workflow_name

    def _plan(self) -> tuple[dict[str, Any], dict[str, TaskState]]:
        entry = self.templates[self.spec["entrypoint"]]
        if "dag" not in entry:
            # A container entrypoint runs as one task; Argo passes it the workflow's arguments by name.
            passed = [{"name": p["name"], "value": f"{{{{workflow.parameters.{p['name']}}}}}"}
                      for p in (entry.get("inputs") or {}).get("parameters") or [] if p["name"] in self.parameters]
            task = {"name": entry["name"], "template": entry["name"], "arguments": {"parameters": passed}}
            return {"tasks": [task]}, {entry["name"]: TaskState(entry["name"], entry["name"], [])}
        names = [t["name"] for t in entry["dag"]["tasks"]]
        states = {}
        for task in entry["dag"]["tasks"]:
            try:
                deps = _expr.depends_tasks(task.get("depends"), task.get("dependencies"))
            except _expr.ExpressionError as err:
                raise RunnerError(f"task {task['name']!r}: {err}") from err
            for dep in deps:
                if dep not in names:
                    raise RunnerError(f"task {task['name']!r} depends on {dep!r}, which is not a task of the DAG")
            states[task["name"]] = TaskState(task["name"], task["template"], deps)
        _topological(states)
        return entry["dag"], states

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        started = self.progress.start = time.monotonic()
        (self.ctx.run_dir / "tasks").mkdir(parents=True, exist_ok=True)
        self._fill_config_map_volumes()
        deadline = self.spec.get("activeDeadlineSeconds")
        deadline_at = started + float(deadline) if deadline is not None else None
        entry = self.templates[self.spec["entrypoint"]]
        limit = entry.get("parallelism") or self.spec.get("parallelism")
        done: queue.Queue[str] = queue.Queue()
        threads: dict[str, threading.Thread] = {}
        self._write_state("Running", "", started)
        interrupted = False
        try:
            while True:
                self._schedule(threads, done, int(limit) if limit else None)
                if not threads:
                    break
                wait = None if deadline_at is None else max(0.0, deadline_at - time.monotonic())
                try:
                    finished = done.get(timeout=wait)
                except queue.Empty:
                    self._halt(f"the workflow exceeded activeDeadlineSeconds ({deadline}s)")
                    continue
                threads.pop(finished).join()
                self._write_state("Running", "", started)
        except KeyboardInterrupt:
            interrupted = True
            self._halt("interrupted (Ctrl-C)")
            for thread in threads.values():
                thread.join(timeout=_task.KILL_GRACE_SECONDS + 2)
        for state in self.tasks.values():
            if state.phase == "Pending":
                state.phase, state.message = "Omitted", self.ctx.stop_reason or "not reached"
            elif state.phase == "Running":  # its thread did not finish in time after the kill
                state.phase, state.message = "Failed", self.ctx.stop_reason
        if interrupted:
            phase, message = "Interrupted", self.ctx.stop_reason
        elif self.ctx.stop_reason:
            phase, message = "Failed", self.ctx.stop_reason
        else:
            phase, message = self._dag_phase()
        self._write_state(phase, message, started)
        return RunResult(self.name, phase, message, self.ctx.run_dir, self.parameters, self.tasks,
                         time.monotonic() - started)

    def _schedule(self, threads: dict[str, threading.Thread], done: queue.Queue[str], limit: int | None) -> None:
        """Start every task whose dependencies have finished, or settle it (Omitted, Skipped, Error) unrun."""
        progressed = True
        while progressed and not self.ctx.stop.is_set():
            progressed = False
            for task in self.dag["tasks"]:
                state = self.tasks[task["name"]]
                if state.phase != "Pending" or any(self.tasks[d].phase not in FINISHED for d in state.dependencies):
                    continue
                if limit is not None and len(threads) >= limit:
                    return
                progressed = True
                if not self._should_start(task, state):
                    continue
                state.phase, state.started = "Running", time.time()
                self.progress.task(state.name, "started")
                thread = threading.Thread(target=self._run_task, args=(task, state, done), daemon=True)
                threads[state.name] = thread
                thread.start()

    def _should_start(self, task: dict[str, Any], state: TaskState) -> bool:
        continue_on = {t["name"]: t.get("continueOn") or {} for t in self.dag["tasks"]}
        try:
            expression = _expr.depends_expression(task.get("depends"), task.get("dependencies"), continue_on)
            runs = _expr.evaluate_depends(expression, {n: s.phase for n, s in self.tasks.items()})
        except _expr.ExpressionError as err:
            return self._settle(state, "Error", str(err))
        if not runs:
            return self._settle(state, "Omitted", "depends condition not met")
        failed = [s.name for s in self.tasks.values()
                  if s.phase in ("Failed", "Error") and not _continues(s, continue_on)]
        # failFast (Argo's default): after a failure only the tasks that handle it (`X.Failed`) still start.
        terms = _expr.depends_terms(task.get("depends"))
        handles = any(f"{f}.{result}" in terms for f in failed for result in ("Failed", "Errored", "AllFailed"))
        if failed and self.dag.get("failFast", True) and not handles:
            return self._settle(state, "Omitted", f"not started: failFast after {', '.join(failed)} failed")
        if task.get("when"):
            try:
                when = self.ctx.untoken(_expr.substitute(str(task["when"]), self._task_scope(state)))
                if not _expr.evaluate_bool(when):
                    return self._settle(state, "Skipped", f'when "{when}" evaluated false')
            except (_expr.ExpressionError, _expr.UnresolvedVariable) as err:
                return self._settle(state, "Error", f"when: {err}")
        return True

    def _settle(self, state: TaskState, phase: str, message: str) -> bool:
        state.phase, state.message = phase, message
        self.progress.task(state.name, f"{phase}: {message}", phase)
        return False

    def _run_task(self, task: dict[str, Any], state: TaskState, done: queue.Queue[str]) -> None:
        try:
            task_dir = self.ctx.run_dir / "tasks" / state.name
            task_dir.mkdir(parents=True, exist_ok=True)
            state.log = str(task_dir / "log")
            template = self.templates[task["template"]]
            producers = {n: self.tasks[n] for n in _ancestors(state.name, self.tasks)}
            inputs = _task.resolve_inputs(self.ctx, task, template, state, self._task_scope(state), producers)
            _task.execute(self.ctx, template, state, inputs)
        except _task.TaskError as err:
            state.phase, state.message = "Error", str(err)
        except Exception as err:  # noqa: BLE001 - a runner bug must not hang the run: report it on the task
            state.phase, state.message = "Error", f"runner error: {type(err).__name__}: {err}"
        finally:
            state.finished = time.time()
            detail = f"{state.phase} in {state.duration:.1f}s" if state.duration is not None else state.phase
            if state.phase != "Succeeded" and state.message:
                detail += f" ({state.message})"
            if state.attempts > 1:
                detail += f" after {state.attempts} attempts"
            self.progress.task(state.name, detail, state.phase)
            if state.phase in ("Failed", "Error") and state.log:
                self._show_log_tail(state)
            done.put(state.name)

    # --- variables -------------------------------------------------------------------------------

    def _global(self, name: str) -> str | None:
        """The `workflow.*` variables, valid everywhere."""
        if name.startswith("workflow.parameters."):
            param = name[len("workflow.parameters."):]
            return self.param_tokens.get(param, self.parameters.get(param))
        meta = self.workflow.get("metadata") or {}
        labels = {**((self.spec.get("workflowMetadata") or {}).get("labels") or {}), **(meta.get("labels") or {})}
        annotations = meta.get("annotations") or {}
        if name.startswith("workflow.labels.") and name != "workflow.labels.json":
            return labels.get(name[len("workflow.labels."):])
        if name.startswith("workflow.annotations.") and name != "workflow.annotations.json":
            return annotations.get(name[len("workflow.annotations."):])
        return {
            "workflow.name": self.name,
            "workflow.namespace": "local",
            "workflow.uid": self.uid,
            "workflow.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "workflow.mainEntrypoint": self.spec["entrypoint"],
            "workflow.creationTimestamp": self.created,
            "workflow.parameters": json.dumps([{"name": k, "value": v} for k, v in self.parameters.items()]),
            "workflow.labels.json": json.dumps(labels),
            "workflow.annotations.json": json.dumps(annotations),
        }.get(name)

    def _task_scope(self, state: TaskState) -> _expr.Lookup:
        """What a DAG task's arguments and `when` see: the workflow's variables and its ancestors' results."""
        ancestors = _ancestors(state.name, self.tasks)
        entry = self.templates[self.spec["entrypoint"]]
        entry_inputs = {f"inputs.parameters.{p['name']}": self._global(f"workflow.parameters.{p['name']}")
                        or p.get("value", p.get("default"))
                        for p in (entry.get("inputs") or {}).get("parameters") or []}

        def lookup(name: str) -> str | None:
            if name.startswith("tasks."):
                _, task, rest = (name.split(".", 2) + ["", ""])[:3]
                if task not in ancestors:
                    return None
                done = self.tasks[task]
                if rest.startswith("outputs.parameters."):
                    return done.parameters.get(rest[len("outputs.parameters."):])
                return {
                    "status": done.phase, "exitCode": None if done.exit_code is None else str(done.exit_code),
                    "id": f"{self.name}-{task}", "startedAt": _iso(done.started), "finishedAt": _iso(done.finished),
                }.get(rest)
            if name in entry_inputs:
                return entry_inputs[name]
            return self._global(name)

        return lookup

    # --- volumes, ending -------------------------------------------------------------------------

    def _fill_config_map_volumes(self) -> None:
        """`<run>/volumes/<volume>/`: each configMap volume's keys as files, from the ConfigMaps we know."""
        volumes = [*self.ctx.volumes, *(v for t in self.templates.values() for v in t.get("volumes") or [])]
        for volume in volumes:
            source = volume.get("configMap")
            if source is None:
                continue
            folder = self.ctx.run_dir / "volumes" / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            data = self.ctx.config_maps.get(source.get("name"))
            if data is None:
                if source.get("optional"):
                    continue
                raise RunnerError(f"volume {volume['name']!r}: ConfigMap {source.get('name')!r} is not in the "
                                  f"workflow's YAML (ConfigMaps: {', '.join(sorted(self.ctx.config_maps)) or 'none'})")
            for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                if item["key"] not in data:
                    raise RunnerError(f"volume {volume['name']!r}: ConfigMap {source['name']!r} has no key "
                                      f"{item['key']!r}")
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]], encoding="utf-8")

    def _halt(self, reason: str) -> None:
        """Start nothing more and kill the running tasks (their whole process groups)."""
        self.ctx.stop_reason = self.ctx.stop_reason or reason
        self.ctx.stop.set()
        self.progress.line(f"mlops run: {reason}: stopping")
        with self.ctx.lock:
            running = list(self.ctx.processes.values())
        for process in running:
            _task.kill(process)

    def _dag_phase(self) -> tuple[str, str]:
        """Argo's rule: the DAG fails when a leaf's branch failed; an Omitted task inherits its parents' branch."""
        continue_on = {t["name"]: t.get("continueOn") or {} for t in self.dag["tasks"]}
        branch: dict[str, str] = {}
        for name in _topological(self.tasks):
            state = self.tasks[name]
            if state.phase == "Omitted":
                bad = [branch[d] for d in state.dependencies if branch[d] in ("Failed", "Error")]
                branch[name] = bad[0] if bad else "Succeeded"
            elif state.phase in ("Failed", "Error") and _continues(state, continue_on):
                branch[name] = "Succeeded"
            else:
                branch[name] = state.phase
        parents = {d for s in self.tasks.values() for d in s.dependencies}
        if any(branch[n] in ("Failed", "Error") for n in self.tasks if n not in parents):
            culprits = [n for n, s in self.tasks.items() if s.phase in ("Failed", "Error")]
            return "Failed", f"failed: {', '.join(culprits)}"
        return "Succeeded", ""

    def _write_state(self, phase: str, message: str, started: float) -> None:
        write_run_json(self.ctx.run_dir, self.name, phase, message, self.parameters, time.monotonic() - started,
                       self.tasks)

    def _show_log_tail(self, state: TaskState, lines: int = 8) -> None:
        try:
            tail = Path(state.log).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            return
        self.progress.line("\n".join(f"{'':>10}| {line}" for line in tail) + f"\n{'':>10}(log: {state.log})")


def _continues(state: TaskState, continue_on: dict[str, dict[str, Any]]) -> bool:
    on = continue_on.get(state.name) or {}
    return bool((state.phase == "Failed" and on.get("failed")) or (state.phase == "Error" and on.get("error")))


def _ancestors(name: str, tasks: dict[str, TaskState]) -> set[str]:
    seen: set[str] = set()
    todo = list(tasks[name].dependencies)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += tasks[current].dependencies
    return seen


def _topological(tasks: dict[str, TaskState]) -> list[str]:
    """Task names, each after its dependencies; a cycle is a RunnerError naming the tasks on it."""
    order: list[str] = []
    remaining = dict(tasks)
    while remaining:
        ready = [n for n, s in remaining.items() if all(d in order for d in s.dependencies)]
        if not ready:
            raise RunnerError(f"dependency cycle among tasks: {', '.join(sorted(remaining))}")
        for name in ready:
            order.append(name)
            del remaining[name]
    return order


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
