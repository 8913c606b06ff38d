"""One DAG task of a local run: its inputs, its container's command line (Argo's substitution, container
paths mapped into the run folder), its environment, the process with retries and deadline, its outputs."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.local import expr as _expr
from workflows.local.support import is_python

KILL_GRACE_SECONDS = 3.0


class TaskError(Exception):
    """The task cannot run as written (an unresolved variable, a missing ConfigMap key): it ends in Error."""


@dataclass
class TaskState:
    name: str
    template: str
    dependencies: list[str]
    phase: str = "Pending"  # Pending, Running, then Succeeded, Failed, Error, Skipped or Omitted
    message: str = ""
    exit_code: int | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    parameters: dict[str, str] = field(default_factory=dict)  # output parameters
    artifacts: dict[str, str] = field(default_factory=dict)  # output artifacts: name -> local path
    log: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started


@dataclass
class Context:
    """What the tasks of one run share."""

    workflow_name: str
    volumes: list[dict[str, Any]]  # spec.volumes
    run_dir: Path
    cwd: Path
    config_maps: dict[str, dict[str, str]]
    local_config_maps: set[str]  # made on this machine: their values are local, never rewritten
    tokens: dict[str, str]  # token -> a value given locally (see Runner)
    global_lookup: Callable[[str], str | None]  # workflow.* variables
    report: Callable[[str, str, str], None]  # (task, text, phase): one progress line
    backoff_scale: float = 1.0  # local runs may shorten retry backoffs (`mlops run --backoff-scale`)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def untoken(self, text: str) -> str:
        for token, value in self.tokens.items():
            text = text.replace(token, value)
        return text


@dataclass
class Inputs:
    values: dict[str, str] = field(default_factory=dict)  # inputs.parameters.X (and inputs.parameters)
    path_values: dict[str, str] = field(default_factory=dict)  # inputs.artifacts.X.path -> local path
    declared_paths: dict[str, str] = field(default_factory=dict)  # an input artifact's container path -> local


@dataclass
class _Outputs:
    path_values: dict[str, str] = field(default_factory=dict)  # outputs.{parameters,artifacts}.X.path -> local
    declared_paths: dict[str, str] = field(default_factory=dict)  # container path -> local path
    parameters: dict[str, str] = field(default_factory=dict)  # name -> local path
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> local path


def resolve_inputs(ctx: Context, task: dict[str, Any], template: dict[str, Any], state: TaskState,
                   scope: Callable[[str], str | None], producers: dict[str, TaskState]) -> Inputs:
    """The template's inputs from the task's arguments (substituted in `scope`), values and defaults.

    `producers` are the task's ancestors: the only tasks whose artifacts it may take."""
    arguments = task.get("arguments") or {}
    try:
        given = {p["name"]: _expr.substitute(str(p.get("value", "")), scope) for p in arguments.get("parameters") or []}
    except _expr.UnresolvedVariable as err:
        raise TaskError(f"arguments: {err}") from err
    inputs = Inputs()
    for param in (template.get("inputs") or {}).get("parameters") or []:
        name = param["name"]
        value = given.get(name, param.get("value", param.get("default")))
        if value is None:
            raise TaskError(f"input parameter {name!r} is not given (no argument, value or default)")
        allowed = [str(v) for v in param.get("enum") or []]
        if allowed and ctx.untoken(str(value)) not in allowed:
            raise TaskError(f"input parameter {name!r}: {ctx.untoken(str(value))!r} is not one of {', '.join(allowed)}")
        inputs.values[f"inputs.parameters.{name}"] = str(value)
    inputs.values["inputs.parameters"] = json.dumps(
        [{"name": k.split(".", 2)[2], "value": ctx.untoken(v)} for k, v in inputs.values.items()])
    task_dir = ctx.run_dir / "tasks" / state.name
    by_name = {a["name"]: a for a in arguments.get("artifacts") or []}
    for art in (template.get("inputs") or {}).get("artifacts") or []:
        name = art["name"]
        local = _input_artifact(name, art, by_name.get(name, {}), producers, task_dir)
        inputs.path_values[f"inputs.artifacts.{name}.path"] = local
        if art.get("path"):
            try:
                declared = ctx.untoken(_expr.substitute(str(art["path"]), inputs.values.get))
            except _expr.UnresolvedVariable as err:
                raise TaskError(f"input artifact {name!r} path: {err}") from err
            inputs.declared_paths[declared] = local
    return inputs


def _input_artifact(name: str, art: dict[str, Any], arg: dict[str, Any], producers: dict[str, TaskState],
                    task_dir: Path) -> str:
    source = arg.get("from") or art.get("from")
    if source:
        match = re.fullmatch(r"\{\{\s*tasks\.([^.]+)\.outputs\.artifacts\.([^}\s]+)\s*\}\}", str(source))
        if not match:
            raise TaskError(f"input artifact {name!r}: from {source!r}: only {{{{tasks.T.outputs.artifacts.X}}}} "
                            "runs locally")
        producer, output = match.groups()
        if producer not in producers:
            raise TaskError(f"input artifact {name!r}: task {producer!r} is not an ancestor (add it to depends)")
        path = producers[producer].artifacts.get(output)
        if path is None and not (arg.get("optional") or art.get("optional")):
            raise TaskError(f"input artifact {name!r}: task {producer!r} produced no artifact {output!r}")
        return path or str(task_dir / "inputs" / name)
    raw = (arg.get("raw") or art.get("raw") or {}).get("data")
    local = task_dir / "inputs" / name
    if raw is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(str(raw), encoding="utf-8")
    elif not art.get("optional"):
        raise TaskError(f"input artifact {name!r}: no source (the task passes no `from` and it is not optional)")
    return str(local)


def execute(ctx: Context, template: dict[str, Any], state: TaskState, inputs: Inputs) -> None:
    """Run the container, retrying as its retryStrategy says; sets the state's phase, exit code and outputs."""
    retry = template.get("retryStrategy") or {}
    limit = int(retry.get("limit", 0)) if retry else 0
    first = time.monotonic()
    for attempt in range(limit + 1):
        state.attempts = attempt + 1
        began = time.monotonic()
        _attempt(ctx, template, state, inputs, attempt)
        if state.phase == "Succeeded" or ctx.stop.is_set() or attempt == limit:
            return
        if not should_retry(retry, state, time.monotonic() - began):
            return
        backoff = retry.get("backoff") or {}
        delay = backoff_seconds(backoff, attempt) * ctx.backoff_scale
        max_duration = backoff.get("maxDuration")
        if max_duration is not None and time.monotonic() - first + delay > seconds(max_duration):
            state.message += f"; not retried: backoff.maxDuration {backoff['maxDuration']} reached"
            return
        ctx.report(state.name, f"retrying in {delay:g}s (attempt {attempt + 2} of {limit + 1}; {state.message})",
                   "Retrying")
        if ctx.stop.wait(delay):
            return


def _attempt(ctx: Context, template: dict[str, Any], state: TaskState, inputs: Inputs, attempt: int) -> None:
    task_dir = ctx.run_dir / "tasks" / state.name
    container = template["container"]
    mounts = _mounts(ctx, template, container, task_dir)
    values = {**inputs.values, "retries": str(attempt), "pod.name": f"{ctx.workflow_name}-{state.name}-{attempt}",
              "node.name": f"{ctx.workflow_name}.{state.name}"}

    def lookup(name: str) -> str | None:
        return values[name] if name in values else ctx.global_lookup(name)

    outputs = _output_paths(ctx, template, mounts, task_dir, lookup)
    paths = {**mounts, **inputs.declared_paths, **outputs.declared_paths}
    path_values = {**inputs.path_values, **outputs.path_values}

    def resolve(text: str) -> str:
        return _container_string(ctx, text, lookup, path_values, paths)

    try:
        command = [resolve(str(a)) for a in container.get("command") or []]
        args = [resolve(str(a)) for a in container.get("args") or []]
        env = _env(ctx, container, resolve, paths)
    except _expr.UnresolvedVariable as err:
        raise TaskError(f"container: {err}") from err
    if is_python(command[0]):
        command[0] = sys.executable
    state.parameters, state.artifacts = {}, {}
    for path in [*outputs.parameters.values(), *outputs.artifacts.values()]:
        _remove(Path(path))  # a failed attempt's outputs must not pass for this one's
    deadline = template.get("activeDeadlineSeconds")
    with open(state.log, "ab") as log:
        log.write(f"--- attempt {attempt + 1}: {' '.join(command + args)}\n".encode())
        log.flush()
        process = subprocess.Popen(command + args, cwd=ctx.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        with ctx.lock:
            ctx.processes[state.name] = process
        if ctx.stop.is_set():
            kill(process)
        try:
            code, timed_out = process.wait(timeout=float(deadline) if deadline is not None else None), False
        except subprocess.TimeoutExpired:
            kill(process)
            code, timed_out = process.wait(), True
        with ctx.lock:
            ctx.processes.pop(state.name, None)
    state.exit_code = code
    if timed_out:
        state.phase, state.message = "Failed", f"exceeded activeDeadlineSeconds ({deadline}s): killed"
        state.exit_code = -1
    elif ctx.stop.is_set() and code != 0:
        state.phase, state.message = "Failed", ctx.stop_reason
    elif code != 0:
        state.phase, state.message = "Failed", f"exit code {code}"
    else:
        state.phase, state.message = "Succeeded", ""
    _collect(template, state, outputs)


def _container_string(ctx: Context, text: str, lookup: Callable[[str], str | None], path_values: dict[str, str],
                      paths: dict[str, str]) -> str:
    """Substitute as Argo does, then map container paths to local ones. Path variables are substituted after
    the rewrite and local values stay tokens until the end, so neither is mistaken for a container path."""
    authored = _expr.substitute(text, lambda n: "{{" + n + "}}" if n in path_values else lookup(n))
    return ctx.untoken(_expr.substitute(rewrite(authored, paths), path_values.get))


def _collect(template: dict[str, Any], state: TaskState, outputs: _Outputs) -> None:
    """Output parameters and artifacts; a missing one turns a task that exited 0 into an Error."""
    succeeded = state.phase == "Succeeded"
    problems = []
    for param in (template.get("outputs") or {}).get("parameters") or []:
        local = outputs.parameters.get(param["name"])
        if local is None:
            continue
        try:
            state.parameters[param["name"]] = Path(local).read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as err:
            default = (param.get("valueFrom") or {}).get("default", param.get("default"))
            if default is not None:
                state.parameters[param["name"]] = str(default)
            elif succeeded:
                problems.append(f"output parameter {param['name']!r}: cannot read {local}: "
                                f"{getattr(err, 'strerror', None) or err}")
    for art in (template.get("outputs") or {}).get("artifacts") or []:
        local = outputs.artifacts[art["name"]]
        if os.path.exists(local):
            state.artifacts[art["name"]] = local
        elif succeeded and not art.get("optional"):
            problems.append(f"output artifact {art['name']!r}: {art.get('path')} was not written ({local})")
    if problems:
        state.phase, state.message = "Error", "; ".join(problems)


def _mounts(ctx: Context, template: dict[str, Any], container: dict[str, Any], task_dir: Path) -> dict[str, str]:
    """mountPath -> local folder: configMap volumes are shared by the run, an emptyDir belongs to one task."""
    volumes = {v["name"]: v for v in [*ctx.volumes, *(template.get("volumes") or [])]}
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise TaskError(f"volumeMount {mount['name']!r}: no volume of that name")
        folder = (ctx.run_dir / "volumes" if "configMap" in volume else task_dir) / volume["name"]
        if mount.get("subPath"):
            folder = folder / mount["subPath"]
        folder.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"].rstrip("/") or "/"] = str(folder)
    return mounts


def _output_paths(ctx: Context, template: dict[str, Any], mounts: dict[str, str], task_dir: Path,
                  lookup: Callable[[str], str | None]) -> _Outputs:
    """Where each declared output lives locally: in its volume when the path is on one, else in outputs/."""
    out = _Outputs()
    section = template.get("outputs") or {}
    for kind in ("parameters", "artifacts"):
        for item in section.get(kind) or []:
            declared = item.get("path") if kind == "artifacts" else (item.get("valueFrom") or {}).get("path")
            if not declared:
                continue
            try:
                declared = ctx.untoken(_expr.substitute(str(declared), lookup))
            except _expr.UnresolvedVariable as err:
                raise TaskError(f"output {item['name']!r} path: {err}") from err
            local = rewrite(declared, mounts)
            if local == declared:
                folder = task_dir / "outputs" / kind
                folder.mkdir(parents=True, exist_ok=True)
                local = str(folder / (item["name"] + Path(declared).suffix))
            out.path_values[f"outputs.{kind}.{item['name']}.path"] = local
            out.declared_paths[declared] = local
            getattr(out, kind)[item["name"]] = local
    return out


def _env(ctx: Context, container: dict[str, Any], resolve: Callable[[str], str],
         paths: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root(), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = ctx.config_maps.get(ref.get("name"), {}).get(ref.get("key"))
            if value is None:
                if ref.get("optional"):
                    env.pop(name, None)
                    continue
                raise TaskError(f"env {name}: ConfigMap {ref.get('name')!r} has no key {ref.get('key')!r} "
                                f"(local ConfigMaps: {', '.join(sorted(ctx.config_maps)) or 'none'})")
            env[name] = value if ref.get("name") in ctx.local_config_maps else rewrite(value, paths)
        elif "secretKeyRef" in source:
            # Locally a Secret's key is the same-named variable of your environment (inherited above).
            ref = source["secretKeyRef"]
            if name not in os.environ and not ref.get("optional"):
                raise TaskError(f"env {name}: Secret {ref.get('name')!r} key {ref.get('key')!r}: set ${name} "
                                "to run this locally")
        else:
            env[name] = resolve(str(var.get("value", "")))
    return env


def rewrite(value: str, paths: dict[str, str]) -> str:
    """A container path (a mount, an artifact or output path, or a path below one) as its local path."""
    for prefix in sorted(paths, key=len, reverse=True):
        base = prefix.rstrip("/")
        if value in (prefix, base):
            return paths[prefix]
        if value.startswith(base + "/"):
            return paths[prefix] + value[len(base):]
    return value


# --- retries -----------------------------------------------------------------------------------------


def should_retry(retry: dict[str, Any], state: TaskState, duration: float) -> bool:
    """Argo's rule: the retryPolicy (default OnFailure, or Always with an expression) allows this phase, and
    the expression (`lastRetry.exitCode`, `.status`, `.duration`, `.message`) holds."""
    policy = retry.get("retryPolicy") or ("Always" if retry.get("expression") else "OnFailure")
    allowed = {"Always": ("Failed", "Error"), "OnFailure": ("Failed",), "OnError": ("Error",)}.get(policy, ())
    if state.phase not in allowed:
        return False
    if not retry.get("expression"):
        return True
    last = {"exitCode": str(state.exit_code if state.exit_code is not None else -1), "status": state.phase,
            "duration": str(int(duration)), "message": state.message}
    try:
        return _expr.evaluate_bool(str(retry["expression"]), {"lastRetry": last})
    except _expr.ExpressionError as err:
        state.message += f"; retryStrategy.expression: {err}"
        return False


def backoff_seconds(backoff: dict[str, Any], attempt: int) -> float:
    """The wait before retry number `attempt + 1`: duration * factor^attempt, capped by `cap`."""
    delay = seconds(backoff.get("duration", 0)) * float(backoff.get("factor", 1) or 1) ** attempt
    return min(delay, seconds(backoff["cap"])) if backoff.get("cap") else delay


def seconds(value: Any) -> float:
    """Argo durations: an integer (seconds) or a Go duration such as 15s, 1m30s, 2h."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise TaskError(f"{value!r} is not a duration such as 30, 15s or 1m30s")
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


# --- processes ---------------------------------------------------------------------------------------


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the task's process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        process.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it ended in the meantime
            os.killpg(process.pid, signal.SIGKILL)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def package_root() -> str:
    """The folder holding the `steps` package, so `python -m steps.<name>` imports from any folder."""
    spec = importlib.util.find_spec("steps")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))).parent)
