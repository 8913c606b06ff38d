"""`mlops run training` on 100k rows: wall time, each task's share, and the share spent outside the steps' own work.

Each repetition runs the whole pipeline (validate, train, gate, register) into a fresh local registry, so every run
trains and registers for real. A task's own work is its process's wall time (the step's imports included); what is
left of the run's wall time is the runner's: rendering, scheduling, substitution, copying, progress.

    .venv/bin/python bench/training/run.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench.runner.run import machine  # noqa: E402  (the same machine description as the runner benchmark)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)

    from steps._core.data import generate, write_frame

    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    dataset = work / "transactions.parquet"
    write_frame(generate(args.rows, seed=1), dataset)
    runs = []
    for rep in range(args.repeats):
        registry = work / f"registry-{rep}"
        start = time.perf_counter()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "mlops"), "run", "training", "-p", f"dataset={dataset}",
                               "--registry", str(registry)], cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"mlops run training failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        run_dir = max((work / ".mlops" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        tasks = json.loads((run_dir / "run.json").read_text())["tasks"]
        durations = {name: t["duration"] for name, t in tasks.items()}
        runs.append({"wall": wall, "tasks": durations, "outside_steps": wall - sum(durations.values())})
        print(f"repetition {rep + 1}/{args.repeats}: {wall:.1f} s", file=sys.stderr)

    wall = statistics.median(r["wall"] for r in runs)
    outside = statistics.median(r["outside_steps"] for r in runs)
    result = {
        "machine": {**machine(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset (steps use 1)")},
        "rows": args.rows,
        "repeats": args.repeats,
        "runs": runs,
        "median_wall_seconds": wall,
        "median_task_seconds": {n: statistics.median(r["tasks"][n] for r in runs) for n in runs[0]["tasks"]},
        "median_outside_steps_seconds": outside,
        "share_outside_steps": outside / wall,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
