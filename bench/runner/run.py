"""Local runner overhead per task, side by side with Metaflow's local runs, interleaved in one session.

Three contenders run a linear chain of N trivial tasks, for two chain lengths:
  - back-to-back: the same N commands (`python -c pass`) run one after another by a shell loop;
  - argo-mlops:   `mlops run --from <WorkflowTemplate>` whose N container tasks run `python -c pass`;
  - metaflow:     `python flow.py run` of a FlowSpec with N empty steps (Metaflow in its own venv).
The marginal cost of one more task is the slope between the two chain lengths. Our overhead per task is our slope
minus the back-to-back slope (the command's own cost); Metaflow's steps are empty, so its whole slope is overhead.
We also report our raw slope, which charges us for the Python start-up Metaflow's slope also includes.

    .venv/bin/python bench/runner/run.py [--repeats 3] [--short 4] [--long 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENVS = ROOT / "bench" / ".venvs"
METAFLOW_PIN = "metaflow==2.19.39"


def metaflow_python() -> Path:
    venv = VENVS / "metaflow"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "uv>=0.5,<1"], check=True)
        subprocess.run([str(venv / "bin" / "uv"), "pip", "install", "-q", "--python", str(python), METAFLOW_PIN],
                       check=True)
    return python


def workflow_yaml(n: int) -> dict:
    """A WorkflowTemplate: a chain of n container tasks, each `python -c pass`."""
    tasks = [{"name": f"t{i}", "template": "noop", **({"depends": f"t{i - 1}"} if i else {})} for i in range(n)]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": f"chain-{n}"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {"name": "noop", "container": {"image": "python:3.11-slim", "command": ["python", "-c", "pass"]}},
            ],
        },
    }


def flow_source(n: int) -> str:
    steps = ["start"] + [f"s{i}" for i in range(1, n - 1)] + ["end"]
    body = ["from metaflow import FlowSpec, step", "", "class Chain(FlowSpec):"]
    for i, name in enumerate(steps):
        body += ["    @step", f"    def {name}(self):"]
        body += [f"        self.next(self.{steps[i + 1]})" if i + 1 < len(steps) else "        pass", ""]
    body += ["if __name__ == '__main__':", "    Chain()", ""]
    return "\n".join(body)


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", type=int, default=4)
    parser.add_argument("--long", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)

    mf_python = metaflow_python()
    mlops = ROOT / ".venv" / "bin" / "mlops"
    work = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    mf_env = {**os.environ, "USERNAME": "bench", "METAFLOW_DEFAULT_DATASTORE": "local",
              "METAFLOW_DEFAULT_METADATA": "local", "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(work / "mf")}
    lengths = (args.short, args.long)
    for n in lengths:
        (work / f"chain-{n}.yaml").write_text(yaml.safe_dump(workflow_yaml(n), sort_keys=False))
        (work / f"flow{n}.py").write_text(flow_source(n))
        (work / f"b2b{n}.sh").write_text("".join(f"{sys.executable} -c pass\n" for _ in range(n)))

    contenders = {
        "back-to-back": lambda n: timed(["bash", str(work / f"b2b{n}.sh")], work),
        "argo-mlops": lambda n: timed([str(mlops), "run", "--from", str(work / f"chain-{n}.yaml")], work),
        "metaflow": lambda n: timed([str(mf_python), str(work / f"flow{n}.py"), "--quiet", "run"], work, mf_env),
    }
    for run in contenders.values():  # warm caches once (imports, .pyc) so no contender pays first-run costs
        run(args.short)
    times: dict[str, dict[int, list[float]]] = {c: {n: [] for n in lengths} for c in contenders}
    for rep in range(args.repeats):  # interleaved: every contender at every length, then the next repetition
        for n in lengths:
            for name, run in contenders.items():
                times[name][n].append(run(n))
        print(f"repetition {rep + 1}/{args.repeats} done", file=sys.stderr)

    med = {c: {n: statistics.median(v) for n, v in by_n.items()} for c, by_n in times.items()}
    slope = {c: (med[c][args.long] - med[c][args.short]) / (args.long - args.short) for c in med}
    ours_overhead = slope["argo-mlops"] - slope["back-to-back"]
    result = {
        "machine": machine(),
        "chain_lengths": list(lengths),
        "repeats": args.repeats,
        "seconds": times,
        "median_seconds": med,
        "slope_seconds_per_task": slope,
        "argo_mlops_overhead_per_task": ours_overhead,
        "metaflow_overhead_per_task": slope["metaflow"],
        "ratio_overhead_ours_to_metaflow": ours_overhead / slope["metaflow"],
        "ratio_raw_slope_ours_to_metaflow": slope["argo-mlops"] / slope["metaflow"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
    return 0


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "metaflow": METAFLOW_PIN, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    sys.exit(main())
