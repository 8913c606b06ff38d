"""`mlops run <template>`: render a model's WorkflowTemplate into a run folder and run that YAML locally.

`training` means `<model>-training` for the model named by `--model`, `-p model=`, or the only policy.
`--from FILE` runs any Argo Workflow or WorkflowTemplate instead: it is checked first (refusals.py: every place
that cannot run here is listed, exit 2, nothing started), then run by the new engine (workflows/local/engine/,
through api.execute) when its controller is there, else by the current runner; `--resume RUN` continues such a
run stopped at an indefinite suspend. Our own rendered templates stay on the current runner. The run folder is
`.mlops/runs/<time>-<workflow name>/`; see `workflows.local.runner` for its layout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from steps._core.errors import UsageError
from steps._core.files import write_bytes, write_text
from steps._core.policy import Policy, PolicyError, load_policy
from steps._storage.store import DEFAULT_LOCATION, default_location
from workflows.local import api, runner
from workflows.local.progress import NodeProgress, Progress, header_lines, print_summary, tree_lines
from workflows.local.runner import RunnerError
from workflows.local.templates import TemplateNotFound

RUNS = Path(".mlops/runs")
WORKFLOW_FILE = "workflow.yaml"
INVOCATION_FILE = "invocation.json"  # what `--from` was given, for `--resume`
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
            raise RunnerError(f"--image-command {item!r}: expected IMAGE=COMMAND")
        commands[image.strip()] = words
    return commands


def parse_parameters(items: list[str]) -> dict[str, str]:
    """`-p name=value` items, as `argo submit -p` reads them. Raises RunnerError naming the item."""
    given: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunnerError(f"-p {item!r}: expected NAME=VALUE")
        given[name.strip()] = value
    return given


# --- the run -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    progress = Progress()
    if args.resume is not None:
        return _resume(args, progress)
    if args.from_file is not None:
        checked = _check_from(args, progress)
        if checked is not None:
            return checked
    run_dir: Path | None = None
    try:
        given = parse_parameters(args.parameters)
        policy: Policy | None = None
        if args.from_file is not None:
            data = runner.read(args.from_file)
            workflow, config_maps = runner.parse(data, args.from_file, args.template)
            run_dir = runner.new_run_dir(RUNS, runner.template_name(workflow))
            workflow_file = run_dir / WORKFLOW_FILE
            write_bytes(workflow_file, data)  # what runs is this file: the bytes just parsed
        else:
            policy = choose_policy(args.policy, args.model or given.get("model"))
            name, text = _render(policy, args.template or "training")
            run_dir = runner.new_run_dir(RUNS, name)
            workflow_file = run_dir / WORKFLOW_FILE
            write_text(workflow_file, text)
            workflow, config_maps = runner.load(workflow_file, name)
        given = _local_defaults(workflow, given, policy, run_dir)
        parameters = runner.resolve_parameters(workflow, given)
        local_maps = {"mlops-config": _mlops_config(args.registry)}
        wf_name = runner.workflow_name(workflow)
        engine = runner.Runner(workflow, parameters=parameters, run_dir=run_dir, name=wf_name, local=set(given),
                               config_maps=config_maps, local_config_maps=local_maps, progress=progress,
                               backoff_scale=args.backoff_scale)
    except (RunnerError, PolicyError) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        _discard(run_dir)  # nothing ran: leave no half-made run behind
        return 2
    except KeyboardInterrupt:
        print("mlops run: interrupted before the workflow started", file=sys.stderr)
        _discard(run_dir)
        return 130
    except BaseException:
        _discard(run_dir)
        raise
    progress.line(f"mlops run: {wf_name} ({workflow_file})")
    try:
        result = engine.run()
    except RunnerError as err:  # raised before any task starts
        print(f"mlops run: error: {err}", file=sys.stderr)
        _discard(run_dir)
        return 2
    print_summary(result, progress, entrypoint=str((workflow.get("spec") or {}).get("entrypoint") or ""))
    return result.exit_code


def _check_from(args: argparse.Namespace, progress: Progress) -> int | None:
    """`--from FILE`: refuse what cannot run (exit 2), run the rest on the new engine when it is there; None
    means: run it on the current runner (our own rendered templates, whose tasks read the local stand-ins of
    mlops-config and the policy that only the current runner provides)."""
    try:
        if api.is_ours(api.choose(api.documents(args.from_file), args.template)):
            return None
        prepared = api.prepare(args.from_file, parse_parameters(args.parameters), name=args.template,
                               templates=args.templates, configmaps=args.configmaps,
                               image_commands=parse_image_commands(args.image_commands))
    except (UsageError, TemplateNotFound) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        return 2
    if prepared.report.refusals:
        print(f"mlops run: {args.from_file}: cannot run on this machine; nothing was started:", file=sys.stderr)
        for refusal in prepared.report.refusals:
            print(f"  {refusal}", file=sys.stderr)
        return 2
    if not api.engine_available():
        return None
    for notice in prepared.report.notices:
        progress.line(f"mlops run: note: {notice}")
    run_dir = api.new_run_dir(RUNS, prepared.name)
    write_bytes(run_dir / WORKFLOW_FILE, args.from_file.read_bytes())
    invocation = {"template": args.template, "parameters": prepared.parameters,
                  "templates": None if args.templates is None else [str(t.resolve()) for t in args.templates],
                  "configmaps": [str(c.resolve()) for c in args.configmaps], "image_commands": args.image_commands}
    write_text(run_dir / INVOCATION_FILE, json.dumps(invocation, indent=2) + "\n")
    return _run_prepared(prepared, run_dir, progress, None)


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
                raise RunnerError(f"--supply {item!r}: expected NODE.NAME=VALUE")
            supplied.setdefault(node, {})[name] = value
        prepared = api.prepare(run_dir / WORKFLOW_FILE, invocation["parameters"], name=invocation["template"],
                               templates=invocation["templates"], configmaps=invocation["configmaps"],
                               image_commands=parse_image_commands(invocation["image_commands"]))
    except (OSError, ValueError, KeyError) as err:
        print(f"mlops run: error: {run_dir} is not a run `mlops run --from` started: {err}", file=sys.stderr)
        return 2
    except (UsageError, TemplateNotFound) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        return 2
    progress.line(f"mlops run: resuming {prepared.name} ({run_dir})")
    return _run_prepared(prepared, run_dir, progress, supplied)


def _run_prepared(prepared: api.Prepared, run_dir: Path, progress: Progress,
                  resume: dict[str, dict[str, str]] | None) -> int:
    """Run it on the engine, then print argo get's summary and tree; the exit code follows the phase."""
    progress.line(f"mlops run: {prepared.name} ({run_dir / WORKFLOW_FILE})")
    interrupted: list[int] = []

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt: the engine stops every pod (Argo's Stop)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = api.execute(prepared, run_dir, progress=NodeProgress(progress), resume=resume)
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
    for line in [*header_lines(prepared.name, result.phase, result.message, parameters, result.outputs), "",
                 *tree_lines(result.tree)]:
        progress.line(line.rstrip())
    if result.suspended:
        progress.line(f"Suspended at {', '.join(result.suspended)}: continue with "
                      f"`mlops run --resume {run_dir}` (--supply NODE.NAME=VALUE sets an output)")
    progress.line(f"Run folder: {run_dir} (workflow.yaml, run.json)")
    if interrupted:
        progress.line("mlops run: Interrupted: every pod was stopped; the workflow Failed, as `argo stop` ends it")
        return 130
    return result.exit_code


def _discard(run_dir: Path | None) -> None:
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


def _render(policy: Policy, wanted: str) -> tuple[str, str]:
    """The template named `wanted` (or `<model>-<wanted>`) and the ConfigMaps it mounts, as one YAML text."""
    from workflows import render

    documents = render.render_documents(policy).values()
    names = [str(d["metadata"]["name"]) for d in documents if d.get("kind") in runner.RUNNABLE_KINDS]
    name = next((n for n in names if n in (wanted, f"{policy.model_name}-{wanted}")), None)
    if name is None:
        raise RunnerError(f"no template {wanted!r} for model {policy.model_name!r} (templates: {', '.join(names)})")
    chosen = [d for d in documents if (d.get("metadata") or {}).get("name") == name or d.get("kind") == "ConfigMap"]
    text = f"# Rendered by `mlops run` from {policy.path}: this is the YAML that runs.\n"
    return name, text + "---\n".join(render.to_yaml(d) for d in chosen)


def _local_defaults(workflow: dict[str, Any], given: dict[str, str], policy: Policy | None,
                    run_dir: Path) -> dict[str, str]:
    """What a local run passes for the parameters not given with -p, where the cluster's defaults do not fit.

    From the policy it was rendered from: `policy`, its file (`dataset` keeps the template's default, the
    policy's data.source). `git-commit`: the checkout's commit when run inside a git work tree. Always: the
    rollout task drives `mlops deploy` (or a short-lived one of its own), not a cluster's Rollout, with the
    canary's pauses and analysis intervals shortened (a measurement still waits for min_requests): by
    $MLOPS_ROLLOUT_TIME_SCALE when set (how `mlops events serve`'s runs get the demo's), else 0.01."""
    runner.check_parameter_names(workflow, given)
    declared = {p["name"] for p in runner.declared_parameters(workflow)}
    defaults: dict[str, Callable[[], str]] = {}
    if policy is not None:
        defaults["policy"] = lambda: _local_path(policy.path)
    commit = checkout_commit()
    if commit:
        defaults["git-commit"] = lambda: commit
    scale = os.environ.get("MLOPS_ROLLOUT_TIME_SCALE") or LOCAL_ROLLOUT_TIME_SCALE
    defaults["rollout-target"] = lambda: "local"
    defaults["rollout-time-scale"] = lambda: scale
    local = dict(given)
    for name, value in defaults.items():
        if name in declared and name not in local:
            local[name] = value()
    return local


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
            raise RunnerError(f"--model {model!r} does not match {policy_file} (model_name {policy.model_name!r})")
        return policy
    paths = find_policies()
    if model:
        match = [p for p in paths if p.stem == model]
        if not match:
            raise RunnerError(f"no policy for model {model!r} (models: {', '.join(p.stem for p in paths) or 'none'})")
        return load_policy(match[0])
    if len(paths) != 1:
        raise RunnerError(f"{len(paths)} policies found: choose one with --model "
                          f"(models: {', '.join(p.stem for p in paths) or 'none'})")
    return load_policy(paths[0])


def _local_path(path: Path) -> str:
    """Relative to the current folder when inside it: shorter in logs, and the same for every task."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _mlops_config(registry: str | None) -> dict[str, str]:
    """The local stand-in for the cluster's ConfigMap `mlops-config`."""
    config = {"registry": registry or default_location()}
    if os.environ.get("AWS_ENDPOINT_URL"):
        config["aws-endpoint-url"] = os.environ["AWS_ENDPOINT_URL"]
    return config
