"""What `mlops demo` works on: its own folder (emptied at each run, never someone else's), the policy with the
demo profile applied (minutes instead of days), and its three datasets."""

from __future__ import annotations

import copy
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from steps._core.policy import Policy, PolicyError, load_policy

DEFAULT_DIR = Path("mlops-demo")
# The reference model of each task, with a generator of the same name (steps/_core/synthetic.py): the project's own
# gates/fraud-detection.yaml, and the examples packaged in gates/examples/ for the other tasks.
TASK_MODELS = {"binary": "fraud-detection", "regression": "demand-forecast", "multiclass": "ticket-triage"}
TASKS = tuple(TASK_MODELS)
DEFAULT_ROWS = 40_000
MARKER = ".mlops-demo"  # a folder holding it is the demo's own, and may be emptied

# The demo profile: what changes in the policy so that the loop takes minutes, not days. Each entry is a dotted
# policy key, its demo value, and why. Nothing else of the policy changes: the same gates, thresholds and rules.
DEMO_PROFILE: tuple[tuple[str, Any, str], ...] = (
    ("quality.latency_p95_ms.calls", 200, "200 timed single-row calls instead of 1000"),
    ("drift.min_samples", 4000, "decide after 4000 scored rows instead of 10000"),
    ("drift.window", "1m", "a Prometheus window of a minute instead of an hour"),
    ("drift.cooldown", "10m", "one retrain per 10 minutes instead of 6 hours"),
    ("canary.steps", [
        {"set_weight": 10, "pause": "2s", "analysis": True},
        {"set_weight": 30, "pause": "2s", "analysis": True},
        {"set_weight": 60, "pause": "2s", "analysis": False},
        {"set_weight": 100},
    ], "the same schedule, 10 -> 30 -> 60 -> 100, with 2 s pauses instead of 30 min and 1 h"),
    ("canary.analysis.interval", "3s", "a measurement every 3 s instead of every 5 min"),
    ("canary.analysis.min_requests", 20, "20 canary requests per measurement instead of 100"),
)


class DemoError(RuntimeError):
    """The loop did not do what the demo shows (a step failed, or an outcome differs)."""


def prepare_dir(folder: Path) -> None:
    """An empty demo folder: a new one, or the previous demo's, emptied. Never someone else's folder.

    The previous demo's folder is first renamed aside (one atomic step), then deleted: a Ctrl-C while deleting leaves
    a `.<name>.old-*` folder that the next run deletes, never a half-emptied demo folder without its marker."""
    for leftover in folder.parent.glob(f".{folder.name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"--dir {folder}: exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).is_file():
            raise DemoError(f"--dir {folder}: not empty and not a demo folder (no {MARKER}); choose another --dir")
        aside = folder.with_name(f".{folder.name}.old-{secrets.token_hex(4)}")
        folder.rename(aside)
        shutil.rmtree(aside)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `mlops demo`; the next `mlops demo` empties this folder\n", encoding="utf-8")


def builtin_policy(task: str = "binary") -> Path:
    """The policy packaged with argo-mlops for the reference model of `task`: the fraud detector's (binary), else the
    example in gates/examples/."""
    from workflows.render import builtin_policy_dir

    folder = builtin_policy_dir() if task == "binary" else builtin_policy_dir() / "examples"
    path = folder / f"{TASK_MODELS[task]}.yaml"
    if not path.is_file():
        raise DemoError(f"no {task} policy packaged with argo-mlops ({path} is missing): give --policy FILE")
    return path


def demo_policy(source: Path, out: Path) -> Policy:
    """Write `source` with the demo profile applied to `out`, and load it (the strict loader checks the result)."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: not a policy (a YAML mapping)")
    lines = [f"# {source} with `mlops demo`'s profile applied (workflows/demo/workspace.py, DEMO_PROFILE):"]
    for key, value, why in DEMO_PROFILE:
        set_key(raw, key, copy.deepcopy(value))
        lines.append(f"#   {key}: {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_policy(out)


def set_key(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


@dataclass(frozen=True)
class Datasets:
    reference: Path  # v1 trains on it
    current: Path  # recent data: drifted; replayed as traffic, and v2 trains on it
    shuffled: Path  # the reference with its labels shuffled: round 2's bad candidate trains on it


def make_datasets(policy: Policy, folder: Path, rows: int, reference: str | None, current: str | None) -> Datasets:
    """The demo's three datasets: given, or generated by the generator named after the model (else the one of the
    model's task), the current one with that generator's known drift."""
    from steps._core.data import read_dataset, write_frame
    from steps._core.synthetic import GENERATORS, generate_named

    folder.mkdir(parents=True, exist_ok=True)
    if reference and current:
        ref_frame, cur_frame = read_dataset(reference).frame, read_dataset(current).frame
    else:
        name = policy.model_name if policy.model_name in GENERATORS else TASK_MODELS[policy.model.task]
        ref_frame = generate_named(name, rows, seed=1)
        cur_frame = generate_named(name, rows, seed=2, drift=0.8)
        missing = [c for c in [*policy.data.feature_names, policy.data.target] if c not in ref_frame.columns]
        if missing:
            raise DemoError(f"the built-in synthetic data ({name}) lacks {policy.model_name}'s columns "
                            f"({', '.join(missing)}): give --reference DATA and --current DATA")
    shuffled = ref_frame.copy()
    target = policy.data.target
    shuffled[target] = shuffled[target].sample(frac=1.0, random_state=3).to_numpy()
    out = Datasets(folder / "reference.parquet", folder / "current.parquet", folder / "shuffled-labels.parquet")
    write_frame(ref_frame, out.reference)
    write_frame(cur_frame, out.current)
    write_frame(shuffled, out.shuffled)
    return out
