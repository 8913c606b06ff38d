"""`mlops run <template>`: render a model's WorkflowTemplate into a run folder and run that YAML locally.

`training` means `<model>-training` for the model named by `--model`, `-p model=`, or the only policy.
`--from FILE` runs any rendered YAML instead. The run folder is `.mlops/runs/<time>-<workflow name>/`;
see `workflows.local.runner` for its layout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steps._core.policy import Policy, PolicyError, load_policy
from workflows.local import runner
from workflows.local.runner import Progress, RunnerError, RunResult

RUNS = Path(".mlops/runs")
DEFAULT_REGISTRY = ".mlops/registry"
REFERENCE_ROWS = 200_000
REFERENCE_SEED = 42
LOCAL_ROLLOUT_TIME_SCALE = "0.01"  # the seed's 30 min pauses take 18 s


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="mlops run", description=__doc__)
    p.add_argument("template", nargs="?", help="`training` (for the model) or a template name; with --from: optional")
    p.add_argument("-p", "--parameter", dest="parameters", action="append", default=[], metavar="NAME=VALUE",
                   help="a workflow parameter, as with `argo submit -p` (repeatable)")
    p.add_argument("--registry", help=f"registry location (default: $MLOPS_REGISTRY, else {DEFAULT_REGISTRY})")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE", help="run this rendered YAML")
    p.add_argument("--model", help="the model whose template runs (default: the only policy)")
    p.add_argument("--policy", type=Path, help="the model's policy file (default: gates/<model>.yaml)")
    p.add_argument("--backoff-scale", type=_non_negative, default=1.0, metavar="F",
                   help="multiply every retry backoff by F (e.g. 0.01 for quick local retries; default 1)")
    return p


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from err
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {text!r})")
    return value


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    progress = Progress()
    run_dir: Path | None = None
    try:
        given = _parameters(args.parameters)
        if args.from_file is not None:
            run_dir, name, workflow_file = _from_file(args.from_file, args.template)
        else:
            run_dir, name, workflow_file, given = _rendered(args, given)
        # What runs is the YAML in the run folder, read back from disk.
        workflow, config_maps = runner.load(workflow_file, name)
        given = _local_defaults(workflow, given)
        parameters = runner.resolve_parameters(workflow, given)
        local_maps = {"mlops-config": _mlops_config(args.registry)}
        wf_name = runner.workflow_name(workflow)
        engine = runner.Runner(workflow, parameters=parameters, run_dir=run_dir, name=wf_name, local=set(given),
                               config_maps=config_maps, local_config_maps=local_maps, progress=progress,
                               backoff_scale=args.backoff_scale)
    except (RunnerError, PolicyError) as err:
        print(f"mlops run: error: {err}", file=sys.stderr)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no half-made run behind
        return 2
    except KeyboardInterrupt:
        print("mlops run: interrupted before the workflow started", file=sys.stderr)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        return 130
    progress.line(f"mlops run: {wf_name} ({workflow_file})")
    try:
        result = engine.run()
    except RunnerError as err:  # raised before any task starts
        print(f"mlops run: error: {err}", file=sys.stderr)
        shutil.rmtree(run_dir, ignore_errors=True)
        return 2
    print_summary(result, progress)
    return result.exit_code


def _parameters(items: list[str]) -> dict[str, str]:
    given = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise RunnerError(f"-p {item!r}: expected NAME=VALUE")
        given[name] = value
    return given


def _local_defaults(workflow: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Locally the rollout task drives `mlops deploy` (or a short-lived one of its own), not a cluster's Rollout,
    with the canary's pauses and analysis intervals shortened (a measurement still waits for min_requests): by
    $MLOPS_ROLLOUT_TIME_SCALE when set (how `mlops events serve`'s runs get the demo's), else 0.01."""
    declared = {p["name"] for p in ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []}
    local = dict(given)
    scale = os.environ.get("MLOPS_ROLLOUT_TIME_SCALE") or LOCAL_ROLLOUT_TIME_SCALE
    for name, value in (("rollout-target", "local"), ("rollout-time-scale", scale)):
        if name in declared and name not in local:
            local[name] = value
    return local


def _from_file(path: Path, name: str | None) -> tuple[Path, str | None, Path]:
    workflow, _ = runner.load(path, name)
    run_dir = runner.new_run_dir(RUNS, _template_name(workflow))
    shutil.copyfile(path, run_dir / "workflow.yaml")
    return run_dir, name, run_dir / "workflow.yaml"


def _fill(run_dir: Path, fill: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Run `fill` to complete a new run folder; on any failure remove the folder, so nothing half-made stays."""
    try:
        return fill()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _rendered(args: argparse.Namespace, given: dict[str, str]) -> tuple[Path, str, Path, dict[str, str]]:
    from workflows import render

    policy = choose_policy(args.policy, args.model or given.get("model"))
    wanted = args.template or "training"
    documents = render.render_documents(policy).values()
    names = [str(d["metadata"]["name"]) for d in documents if d.get("kind") in runner.RUNNABLE_KINDS]
    name = next((n for n in names if n in (wanted, f"{policy.model_name}-{wanted}")), None)
    if name is None:
        raise RunnerError(f"no template {wanted!r} for model {policy.model_name!r} (templates: {', '.join(names)})")
    chosen = [d for d in documents if (d.get("metadata") or {}).get("name") == name or d.get("kind") == "ConfigMap"]
    run_dir = runner.new_run_dir(RUNS, name)

    def fill() -> dict[str, str]:
        text = f"# Rendered by `mlops run` from {policy.path}: this is the YAML that runs.\n"
        text += "---\n".join(render.to_yaml(d) for d in chosen)
        (run_dir / "workflow.yaml").write_text(text, encoding="utf-8")
        workflow, _ = runner.load(run_dir / "workflow.yaml", name)
        runner.check_parameter_names(workflow, given)  # before generating data for nothing
        declared = {p["name"] for p in (workflow["spec"].get("arguments") or {}).get("parameters") or []}
        local = dict(given)
        if "policy" in declared and "policy" not in local:
            local["policy"] = _local_path(policy.path)
        if "dataset" in declared and "dataset" not in local:
            local["dataset"] = _local_path(_reference_data(policy, run_dir / "data"))
        return local

    return run_dir, name, run_dir / "workflow.yaml", _fill(run_dir, fill)


def choose_policy(policy_file: Path | None, model: str | None) -> Policy:
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


def _reference_data(policy: Policy, folder: Path) -> Path:
    """No dataset given: generate the reference data (it must fit the policy's contract)."""
    from steps._core.data import generate, write_frame

    frame = generate(REFERENCE_ROWS, seed=REFERENCE_SEED)
    missing = [c for c in [*policy.data.feature_names, policy.data.target] if c not in frame.columns]
    if missing:
        raise RunnerError(f"no dataset given, and the built-in reference data lacks {policy.model_name}'s columns "
                          f"({', '.join(missing)}): pass -p dataset=URI")
    out = folder / f"{policy.model_name}-reference.parquet"
    write_frame(frame, out)
    return out


def _local_path(path: Path) -> str:
    """Relative to the current folder when inside it: shorter in logs, and the same for every task."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _mlops_config(registry: str | None) -> dict[str, str]:
    """The local stand-in for the cluster's ConfigMap `mlops-config`."""
    config = {"registry": registry or os.environ.get("MLOPS_REGISTRY") or DEFAULT_REGISTRY}
    if os.environ.get("AWS_ENDPOINT_URL"):
        config["aws-endpoint-url"] = os.environ["AWS_ENDPOINT_URL"]
    return config


def _template_name(workflow: dict[str, Any]) -> str:
    meta = workflow.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "workflow").rstrip("-")


# --- summary -----------------------------------------------------------------------------------------


def print_summary(result: RunResult, progress: Progress) -> None:
    out = progress.line
    out("")
    out(f"{result.name}: {progress.paint(result.phase, result.phase)} in {result.duration:.1f}s"
        + (f" ({result.message})" if result.message else ""))
    width = max([4, *(len(n) for n in result.tasks)])
    out(f"  {'TASK':<{width}}  {'STATUS':<9}  {'DURATION':>8}  ATTEMPTS  OUTPUTS")
    for name, task in result.tasks.items():
        duration = f"{task.duration:.1f}s" if task.duration is not None else "-"
        outputs = " ".join(f"{k}={_short(v)}" for k, v in task.parameters.items())
        out(f"  {name:<{width}}  {progress.paint(f'{task.phase:<9}', task.phase)}  {duration:>8}  "
            f"{task.attempts or '-':>8}  {outputs}")
    for line in _report_lines(result):
        out(line)
    out(f"Run folder: {result.run_dir} (workflow.yaml, run.json, tasks/<task>/log)")


def _report_lines(result: RunResult) -> list[str]:
    """What the reports say: the registered version, the candidate's metrics and each gate's verdict."""
    lines = []
    gates = [g for t in result.tasks.values() for p in t.artifacts.values() if (g := _gate_report(Path(p)))]
    versions = [t.parameters["version"] for t in result.tasks.values() if t.parameters.get("version")]
    if versions:
        rejected = any(not g.get("passed") for g in gates)
        model = result.parameters.get("model") or next((g["model"] for g in gates if g.get("model")), "model")
        lines.append(f"Registered: {model} v{versions[-1]} ({'rejected' if rejected else 'staged'})")
        rollout = result.tasks.get("rollout")
        if rollout is not None and rollout.phase in ("Succeeded", "Failed"):
            lines.append(f"Rollout: {model} v{versions[-1]} " + (
                "promoted to production" if rollout.phase == "Succeeded"
                else f"not promoted: {rollout.message or 'the canary failed'} "
                     f"(see {result.run_dir / 'tasks' / 'rollout' / 'log'})"))
    for gate in gates:
        lines += _gate_lines(gate)
    artifacts = [(t.name, a, p) for t in result.tasks.values() for a, p in t.artifacts.items()]
    if artifacts:
        lines.append("Reports and artifacts:")
        for task_name, art_name, path in artifacts:
            lines.append(f"  {task_name}.{art_name}: {_describe_artifact(Path(path))}")
    return lines


def _gate_report(path: Path) -> dict[str, Any] | None:
    candidate = path / "gate.json" if path.is_dir() else path
    if candidate.name != "gate.json" or not candidate.is_file():
        return None
    try:
        report = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _gate_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"Gate: {'PASSED' if report.get('passed') else 'REJECTED'}"
             + (f" (failed: {', '.join(report.get('failed') or [])})" if report.get("failed") else "")]
    metrics = report.get("candidate") or {}
    if isinstance(metrics, dict) and metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={_number(v)}" for k, v in metrics.items()))
    for gate in report.get("gates") or []:
        if not isinstance(gate, dict):
            continue
        bound = f" {gate.get('bound_kind', '')} {_number(gate.get('bound'))}" if gate.get("bound") is not None else ""
        note = f" ({_clip(str(gate['note']), 100)})" if gate.get("note") else ""
        lines.append(f"  {'pass' if gate.get('passed') else 'FAIL'}  {gate.get('name')}: "
                     f"{_number(gate.get('value'))}{bound}{note}")
    return lines


def _describe_artifact(path: Path) -> str:
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return f"{path}/ ({shown})"
    return str(path)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _short(value: str) -> str:
    return _clip(value, 16)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
