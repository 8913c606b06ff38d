"""`mlops run <template>`: render a model's WorkflowTemplate into a run folder and run that YAML locally.

`training` means `<model>-training` for the model named by `--model`, `-p model=`, or the only policy.
`--from FILE` runs any Argo Workflow or WorkflowTemplate instead. Every run is checked first (refusals.py: every
place that cannot run here is listed, exit 2, nothing started), then run by the engine (workflows/local/engine/,
through api.execute); `--resume RUN` continues a run stopped at an indefinite suspend. Our own templates (rendered
by `mlops compile`) get what their tasks read locally: the policy, a local `mlops-config`, the checkout's commit and
code, local rollout defaults, absolute paths. The run folder is `.mlops/runs/<time>-<workflow name>/`: workflow.yaml,
run.json, pods/<pod>/ (each pod's output and log), artifacts/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from steps._core.errors import UsageError
from steps._core.files import write_bytes, write_text
from steps._core.policy import Policy, PolicyError, load_policy
from steps._storage.store import DEFAULT_LOCATION, default_location
from workflows.local import api
from workflows.local.progress import NodeProgress, Progress, header_lines, report_lines, tree_lines
from workflows.local.record import task_records
from workflows.local.templates import TemplateNotFound

RUNS = Path(".mlops/runs")
WORKFLOW_FILE = "workflow.yaml"
INVOCATION_FILE = "invocation.json"  # what the run was given, for `--resume`
LOCAL_CONFIGMAPS_FILE = "configmaps.yaml"  # the ConfigMaps made on this machine for our own templates
LOCAL_ROLLOUT_TIME_SCALE = "0.01"  # the seed's 30 min pauses take 18 s


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="mlops run", description=__doc__)
    p.add_argument("template", nargs="?", help="`training` (for the model) or a template name; with --from: optional")
    p.add_argument("-p", "--parameter", dest="parameters", action="append", default=[], metavar="NAME=VALUE",
                   help="a workflow parameter, as with `argo submit -p` (repeatable)")
    p.add_argument("--registry", help=f"registry location (default: $MLOPS_REGISTRY, else {DEFAULT_LOCATION})")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE", help="run this rendered YAML")
    p.add_argument("--model", help="the model whose template runs (default: the only policy)")
    p.add_argument("--policy", type=Path, help="the model's policy file (default: gates/<model>.yaml)")
    p.add_argument("--templates", action="append", type=Path, metavar="DIR_OR_FILE",
                   help="where templateRef and workflowTemplateRef resolve (repeatable; default: manifests/generated)")
    p.add_argument("--configmaps", action="append", type=Path, default=[], metavar="FILE_OR_DIR",
                   help="ConfigMaps the workflow reads, as the cluster would hold them (repeatable)")
    p.add_argument("--image-command", dest="image_commands", action="append", default=[], metavar="IMAGE=CMD",
                   help="the command to run for a container of IMAGE that has none (its entrypoint; repeatable)")
    p.add_argument("--resume", type=Path, metavar="RUN",
                   help="continue the run in folder RUN, stopped at an indefinite suspend (as `argo resume`)")
    p.add_argument("--supply", action="append", default=[], metavar="NODE.NAME=VALUE",
                   help="with --resume: the value of a suspend node's output parameter (valueFrom.supplied)")
    p.add_argument("--backoff-scale", type=non_negative, default=1.0, metavar="F",
                   help="multiply every retry backoff by F (e.g. 0.01 for quick local retries; default 1)")
    return p


class RunError(UsageError):
    """The workflow cannot start: an unknown parameter, a bad option, no such template or policy (exit 2)."""


# --- what `mlops run` and `mlops submit` read from their command lines ---------------------------------------


def non_negative(text: str) -> float:
    """An argparse type: a number of at least 0."""
    return _number(text, positive=False)


def positive(text: str) -> float:
    """An argparse type: a number above 0."""
    return _number(text, positive=True)


def _number(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from err
    if positive and value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text!r})")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {text!r})")
    return value


def parse_image_commands(items: list[str]) -> dict[str, list[str]]:
    """`--image-command IMAGE=CMD` items: CMD split as a shell would split it."""
    commands: dict[str, list[str]] = {}
    for item in items:
        image, sep, command = item.partition("=")
        words = shlex.split(command) if sep else []
        if not image.strip() or not words:
            raise RunError(f"--image-command {item!r}: expected IMAGE=COMMAND")
        commands[image.strip()] = words
    return commands


def parse_parameters(items: list[str]) -> dict[str, str]:
    """`-p name=value` items, as `argo submit -p` reads them. Raises RunError naming the item."""
    given: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunError(f"-p {item!r}: expected NAME=VALUE")
        given[name.strip()] = value
    return given


# --- the run -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    progress = Progress()
    if args.resume is not None:
        return _resume(args, progress)
    try:
        prepared, text, local_maps, ours = _prepare(args)
    except (UsageError, TemplateNotFound, PolicyError) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlops run: interrupted before the workflow started", file=sys.stderr)
        return 130
    source = args.from_file if args.from_file is not None else "the rendered template"
    if prepared.report.refusals:
        print(f"mlops run: {source}: cannot run on this machine; nothing was started:", file=sys.stderr)
        for refusal in prepared.report.refusals:
            print(f"  {refusal}", file=sys.stderr)
        return 2
    for notice in prepared.report.notices:
        progress.line(f"mlops run: note: {notice}")
    run_dir = api.new_run_dir(RUNS, prepared.name)
    write_bytes(run_dir / WORKFLOW_FILE, text)  # what runs is this file: the bytes just parsed
    configmaps = [str(c.resolve()) for c in args.configmaps]
    if local_maps:  # made on this machine (mlops-config): kept beside the run, for --resume
        write_text(run_dir / LOCAL_CONFIGMAPS_FILE, "---\n".join(yaml.safe_dump(m, sort_keys=False)
                                                                 for m in local_maps))
        configmaps.append(str((run_dir / LOCAL_CONFIGMAPS_FILE).resolve()))
    invocation = {"template": prepared.name if ours else args.template, "parameters": prepared.parameters,
                  "templates": None if args.templates is None and not ours else
                  [str(t.resolve()) for t in args.templates or []],
                  "configmaps": configmaps, "image_commands": args.image_commands,
                  "backoff_scale": args.backoff_scale, "ours": ours}
    write_text(run_dir / INVOCATION_FILE, json.dumps(invocation, indent=2) + "\n")
    return _run_prepared(prepared, run_dir, progress, None, ours)


def _prepare(args: argparse.Namespace) -> tuple[api.Prepared, bytes, list[dict[str, Any]], bool]:
    """The workflow ready to run, the YAML that runs, the ConfigMaps made here, and whether it is one of our own
    templates (rendered by `mlops compile`): those get the local defaults, the policy, `mlops-config`."""
    given = parse_parameters(args.parameters)
    policy: Policy | None = None
    if args.from_file is not None:
        try:
            text = args.from_file.read_bytes()
        except OSError as err:
            raise RunError(f"{args.from_file}: cannot read the workflow YAML: {err}") from err
        docs, wanted = api.documents(args.from_file), args.template
        chosen = api.choose(docs, wanted)
    else:
        policy = choose_policy(args.policy, args.model or given.get("model"))
        name, rendered = _render(policy, args.template or "training")
        text = rendered.encode("utf-8")
        docs, wanted = [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)], name
        chosen = api.choose(docs, wanted)
    ours = api.is_ours(chosen)
    local_maps: list[dict[str, Any]] = []
    templates = args.templates
    if ours:
        given = resolve_parameters(chosen, _local_defaults(chosen, given, policy))  # every one, as run.json shows
        local_maps = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlops-config"},
                       "data": _mlops_config(args.registry)}]
        templates = templates or []  # the YAML given runs, never an older copy in manifests/generated
    for doc in docs:
        scale_backoff(doc.get("spec") or {}, args.backoff_scale)
    prepared = api.prepare(docs, given, name=wanted, templates=templates,
                           configmaps=[*args.configmaps, *local_maps],
                           image_commands=parse_image_commands(args.image_commands))
    return prepared, text, local_maps, ours


def _resume(args: argparse.Namespace, progress: Progress) -> int:
    """`--resume RUN`: the run stopped at an indefinite suspend goes on, as `argo resume` would, with the same
    workflow, parameters, templates and ConfigMaps; `--supply NODE.NAME=VALUE` sets a suspend node's output."""
    run_dir: Path = args.resume
    try:
        invocation = json.loads((run_dir / INVOCATION_FILE).read_text(encoding="utf-8"))
        supplied: dict[str, dict[str, str]] = {}
        for item in args.supply:
            target, sep, value = item.partition("=")
            node, dot, name = target.rpartition(".")
            if not sep or not dot or not node or not name:
                raise RunError(f"--supply {item!r}: expected NODE.NAME=VALUE")
            supplied.setdefault(node, {})[name] = value
        docs = api.documents(run_dir / WORKFLOW_FILE)
        for doc in docs:
            scale_backoff(doc.get("spec") or {}, float(invocation.get("backoff_scale", 1.0)))
        prepared = api.prepare(docs, invocation["parameters"], name=invocation["template"],
                               templates=invocation["templates"], configmaps=invocation["configmaps"],
                               image_commands=parse_image_commands(invocation["image_commands"]))
    except (OSError, ValueError, KeyError) as err:
        print(f"mlops run: error: {run_dir} is not a run `mlops run` started: {err}", file=sys.stderr)
        return 2
    except (UsageError, TemplateNotFound) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        return 2
    progress.line(f"mlops run: resuming {prepared.name} ({run_dir})")
    return _run_prepared(prepared, run_dir, progress, supplied, bool(invocation.get("ours")))


def _run_prepared(prepared: api.Prepared, run_dir: Path, progress: Progress,
                  resume: dict[str, dict[str, str]] | None, ours: bool = False) -> int:
    """Run it on the engine, then print argo get's summary and tree (and for our own templates what the reports
    say); the exit code follows the phase. Our own templates' `python -m steps.X` imports the current folder's
    code (as `python -m` run there would), and the paths given here are shared with every container (_shared)."""
    progress.line(f"mlops run: {prepared.name} ({run_dir / WORKFLOW_FILE})")
    interrupted: list[int] = []

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt: the engine stops every pod (Argo's Stop)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = api.execute(prepared, run_dir, progress=NodeProgress(progress, run_dir), resume=resume,
                             env=_project_env() if ours else None, shared=_shared(prepared) if ours else ())
    except api.ResumeError as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while the pods were being stopped
        print("mlops run: Interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    progress.line("")
    parameters = ((prepared.workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    for line in [*header_lines(prepared.name, result.phase, result.message, parameters, result.outputs,
                               result.annotations), "",
                 *tree_lines(result.tree)]:
        progress.line(line.rstrip())
    if ours:
        given = {str(p.get("name")): str(p.get("value")) for p in parameters if p.get("value") is not None}
        for line in report_lines(task_records(result.tree, run_dir), given):
            progress.line(line)
    if result.suspended:
        progress.line(f"Suspended at {', '.join(result.suspended)}: continue with "
                      f"`mlops run --resume {run_dir}` (--supply NODE.NAME=VALUE sets an output)")
    progress.line(f"Run folder: {run_dir} (workflow.yaml, run.json)")
    page = _run_page(run_dir)
    if page is not None:
        progress.line(f"Run page: {page}")
    if interrupted:
        progress.line("mlops run: Interrupted: every pod was stopped; the workflow Failed, as `argo stop` ends it")
        return 130
    return result.exit_code


def _run_page(run_dir: Path) -> Path | None:
    """run.html in the run folder (workflows/local/runpage.py), from the run.json just written; a page that cannot
    be written only warns: the run's outcome and its exit code stand."""
    try:
        from workflows.local.runpage import write_run_page

        return write_run_page(run_dir)
    except Exception as err:  # noqa: BLE001 - any failure of the page leaves the run as it ended
        print(f"mlops run: warning: run.html was not written: {type(err).__name__}: {err}", file=sys.stderr)
        return None


def _render(policy: Policy, wanted: str) -> tuple[str, str]:
    """The template named `wanted` (or `<model>-<wanted>`) and the ConfigMaps it mounts, as one YAML text."""
    from workflows import render

    documents = render.render_documents(policy).values()
    names = [str(d["metadata"]["name"]) for d in documents if d.get("kind") in api.RUNNABLE]
    name = next((n for n in names if n in (wanted, f"{policy.model_name}-{wanted}")), None)
    if name is None:
        raise RunError(f"no template {wanted!r} for model {policy.model_name!r} (templates: {', '.join(names)})")
    chosen = [d for d in documents if (d.get("metadata") or {}).get("name") == name or d.get("kind") == "ConfigMap"]
    text = f"# Rendered by `mlops run` from {policy.path}: this is the YAML that runs.\n"
    return name, text + "---\n".join(render.to_yaml(d) for d in chosen)


def _local_defaults(workflow: dict[str, Any], given: dict[str, str], policy: Policy | None) -> dict[str, str]:
    """What a local run of our own template passes for the parameters not given with -p, where the cluster's
    defaults do not fit, and -p values that name a file or folder of the current folder made absolute (containers
    run in their own `/`; the current folder is the one a relative path meant, as `python -m` run there read it).

    From the policy it was rendered from: `policy`, its file (`dataset` keeps the template's default, the
    policy's data.source). `git-commit`: the checkout's commit when run inside a git work tree. Always: the
    rollout task drives `mlops deploy` (or a short-lived one of its own), not a cluster's Rollout, with the
    canary's pauses and analysis intervals shortened (a measurement still waits for min_requests): by
    $MLOPS_ROLLOUT_TIME_SCALE when set (how `mlops events serve`'s runs get the demo's), else 0.01."""
    check_parameter_names(workflow, given)
    declared = {p["name"] for p in declared_parameters(workflow)}
    defaults: dict[str, Callable[[], str]] = {}
    if policy is not None:
        defaults["policy"] = lambda: str(policy.path.resolve())
    commit = checkout_commit()
    if commit:
        defaults["git-commit"] = lambda: commit
    scale = os.environ.get("MLOPS_ROLLOUT_TIME_SCALE") or LOCAL_ROLLOUT_TIME_SCALE
    defaults["rollout-target"] = lambda: "local"
    defaults["rollout-time-scale"] = lambda: scale
    local = {name: absolute(value) for name, value in given.items()}
    for name, value in defaults.items():
        if name in declared and name not in local:
            local[name] = value()
    for param in declared_parameters(workflow):  # a default such as the policy's data.source: a file here
        declared_value = str(param.get("value", ""))
        if param["name"] not in local and absolute(declared_value) != declared_value:
            local[param["name"]] = absolute(declared_value)
    return local


def absolute(value: str) -> str:
    """A relative path of a file or folder here as an absolute path; any other value as it is."""
    if not value or value.startswith("/") or "://" in value or "\n" in value or not Path(value).exists():
        return value
    return str(Path(value).resolve())


def declared_parameters(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's `spec.arguments.parameters`, in their order."""
    return list(((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or [])


def check_parameter_names(workflow: dict[str, Any], given: dict[str, str]) -> None:
    """`-p name=...` for a parameter the workflow does not declare is an error, as with `argo submit`."""
    declared = [p["name"] for p in declared_parameters(workflow)]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RunError(f"-p {unknown[0]}: the workflow has no parameter {unknown[0]!r} "
                       f"(parameters: {', '.join(declared) or 'none'})")


def resolve_parameters(workflow: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Workflow parameters: the declared values, overridden by `-p name=value` as with `argo submit -p`; an
    unknown name, a value outside an enum or a parameter without value is a RunError naming it."""
    check_parameter_names(workflow, given)
    values = {}
    for param in declared_parameters(workflow):
        name = param["name"]
        value = given.get(name, param.get("value", param.get("default")))
        if value is None:
            raise RunError(f"parameter {name!r} has no value: pass -p {name}=VALUE")
        allowed = [str(v) for v in param.get("enum") or []]
        if allowed and str(value) not in allowed:
            raise RunError(f"parameter {name!r}: {value!r} is not one of {', '.join(allowed)}")
        values[name] = str(value)
    return values


def scale_backoff(spec: dict[str, Any], scale: float) -> None:
    """`--backoff-scale F`: every retryStrategy's backoff duration and cap multiplied by F (in place)."""
    if scale == 1.0:
        return
    holders = [spec, *(spec.get("templates") or []), spec.get("templateDefaults") or {}]
    for holder in holders:
        backoff = (holder.get("retryStrategy") or {}).get("backoff") or {}
        for key in ("duration", "cap"):
            if backoff.get(key) not in (None, ""):
                backoff[key] = f"{seconds(backoff[key]) * scale * 1000:.0f}ms"


def seconds(value: Any) -> float:
    """Argo's backoff durations: a number of seconds or a Go duration such as 15s, 1m30s, 2h."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise RunError(f"retryStrategy.backoff {value!r} is not a duration such as 30, 15s or 1m30s")
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def _shared(prepared: api.Prepared) -> tuple[Path, ...]:
    """What our own templates' containers see as this machine has it, even under /tmp (which is each container's
    own): the current folder, the files and folders the parameters name, and the local registry folder."""
    registry = str(((prepared.config_maps.get("mlops-config") or {}).get("data") or {}).get("registry") or "")
    if registry.startswith("/"):
        Path(registry).mkdir(parents=True, exist_ok=True)  # the register step would create it: seen by every pod
    values = [*prepared.parameters.values(), registry]
    return (Path.cwd(), *(Path(v) for v in values if v.startswith("/") and "\n" not in v and Path(v).exists()))


def _project_env() -> dict[str, str]:
    """What our own templates' containers get besides this machine's environment: `python -m steps.X` imports the
    current folder's code first, then the installed project's, as the previous runner gave it."""
    spec = importlib.util.find_spec("steps")
    installed = str(Path(next(iter(spec.submodule_search_locations))).parent) if (
        spec is not None and spec.submodule_search_locations) else ""
    paths = [str(Path.cwd()), installed, os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if p)), "PYTHONUNBUFFERED": "1"}


def checkout_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in `folder` (default: the current one) when it is a git work tree, with `-dirty`
    when files differ from it, as a local run's lineage records it; None outside a work tree or without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if head and changes else head or None


def choose_policy(policy_file: Path | None, model: str | None) -> Policy:
    """`--policy FILE`, else the policy of `--model` (or `-p model=`), else the only one (`mlops submit` too)."""
    from workflows.render import find_policies

    if policy_file is not None:
        policy = load_policy(policy_file)
        if model and model != policy.model_name:
            raise RunError(f"--model {model!r} does not match {policy_file} (model_name {policy.model_name!r})")
        return policy
    paths = find_policies()
    if model:
        match = [p for p in paths if p.stem == model]
        if not match:
            raise RunError(f"no policy for model {model!r} (models: {', '.join(p.stem for p in paths) or 'none'})")
        return load_policy(match[0])
    if len(paths) != 1:
        raise RunError(f"{len(paths)} policies found: choose one with --model "
                          f"(models: {', '.join(p.stem for p in paths) or 'none'})")
    return load_policy(paths[0])


def _mlops_config(registry: str | None) -> dict[str, str]:
    """The local stand-in for the cluster's ConfigMap `mlops-config`."""
    config = {"registry": absolute_location(registry or default_location())}
    if os.environ.get("AWS_ENDPOINT_URL"):
        config["aws-endpoint-url"] = os.environ["AWS_ENDPOINT_URL"]
    return config


def absolute_location(location: str) -> str:
    """A registry location as every container reads it: a local folder as an absolute path (they run in `/`)."""
    return location if "://" in location or location.startswith("/") else str(Path(location).resolve())
