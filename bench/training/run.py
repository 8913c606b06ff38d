"""`mlops run training` against its floor, in one session on one machine.

At `--rows` (1M by default) of `mlops data generate`: `--repeats` interleaved repetitions (ABBA order) of
  - the floor: a fresh process reads the same Parquet, fits the policy's HistGradientBoosting (its parameters and
    seed, default threads) on the training share and scores the holdout (bench/training/floor.py);
  - the pipeline: `mlops run training -p dataset=<the Parquet>` into a fresh local registry (validate, train, gate,
    register, rollout, all for real): its wall time, each task's time and peak resident memory (run.json's
    maxRSSBytes where the runner records it, and polled from /proc either way);
the ratio of the median pipeline to the median floor. With `--big-rows` (10M): one pipeline run at that size, each
task's peak memory, under a memory guard that stops the run past `--guard-gib` and says where. With `--profile`:
one more pipeline run under py-spy, the top frames per step. Every run records the load average before and after.

`--commit REV` measures that commit (exported with `git archive`, imported first through PYTHONPATH) instead of the
working tree, so a measurement names exactly what it measured while others edit the checkout; `--against REV` adds
that commit's pipeline to every repetition (before and after, interleaved in one session).

    .venv/bin/python -m bench.training.run [--rows 1000000] [--repeats 3] [--big-rows 10000000] [--profile]
                                           [--commit HEAD] [--against REV] [--out bench/training/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.runner.run import machine
from bench.training import measure, report
from bench.training import profile as _profile

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV = ROOT / ".venv" / "bin"
POLICY = "gates/fraud-detection.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repetitions of floor and pipeline (0: none)")
    parser.add_argument("--big-rows", type=int, default=0, help="one pipeline run at this size (e.g. 10000000)")
    parser.add_argument("--guard-gib", type=float, default=14.0, help="stop a run whose processes hold more")
    parser.add_argument("--profile", action="store_true", help="one more pipeline run at --rows under py-spy")
    parser.add_argument("--commit", metavar="REV_OR_DIR",
                        help="measure this commit (git archive) or exported tree instead of the working tree")
    parser.add_argument("--against", metavar="REV_OR_DIR",
                        help="also run this commit's (or exported tree's) pipeline in each repetition: before and "
                             "after in one session")
    parser.add_argument("--against-repeats", type=int, default=None,
                        help="run --against's pipeline in the first N repetitions only (default: every one)")
    parser.add_argument("--one-thread-floor", action="store_true",
                        help="also the floor on one thread (OMP_NUM_THREADS=1) in each repetition")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench" / ".work" / "training",
                        help="where the generated Parquet files are kept between runs")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    source, commit, dirty = _source(args.commit, work / "source")
    env = {**os.environ, "PYTHONPATH": str(source)}
    guard = int(args.guard_gib * 2**30)
    result: dict[str, Any] = {
        "machine": {**machine(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset")},
        "commit": commit, "working_tree_changes": dirty,
        "command": ".venv/bin/python -m bench.training.run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    policy = source / POLICY
    kinds = ["floor", "pipeline"]
    if args.against:
        against, result["against_commit"], _ = _source(args.against, work / "against")
        against_env = {**os.environ, "PYTHONPATH": str(against)}
        kinds.append("against")
    if args.one_thread_floor:
        kinds.append("floor-1-thread")
    if args.repeats:
        data = _dataset(args.rows, args.data_dir, env, guard)
        runs = []
        for rep in range(args.repeats):
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]  # each contender first in turn
            for kind in order:
                if kind == "against" and args.against_repeats is not None and rep >= args.against_repeats:
                    continue
                if kind.startswith("floor"):
                    run = _floor(data, policy, work, env if kind == "floor" else {**env, "OMP_NUM_THREADS": "1"})
                else:
                    run = _pipeline(data, work, env if kind == "pipeline" else against_env, guard, f"{kind}-{rep}")
                runs.append({"kind": kind, "repetition": rep + 1, **run})
                _say(f"{kind} {rep + 1}/{args.repeats}: {run['wall_seconds']:.1f} s "
                     f"(load {run['load_before'][0]:.2f} -> {run['load_after'][0]:.2f})")
        result["scale"] = _medians(args.rows, runs)
        _save(args.out, result)  # each part as soon as it is measured: a later part may not finish
    if args.profile:
        data = _dataset(args.rows, args.data_dir, env, guard)
        samples = work / "profile"
        samples.mkdir()
        run = _pipeline(data, work, env, guard, "profile", profile_dir=samples)
        result["profile"] = {"rows": args.rows, "rate_hz": _profile.RATE, "run": run,
                             "load_before": run["load_before"], "load_after": run["load_after"],
                             "steps": _profile.summarize(samples)}
        _save(args.out, result)
        sampled = {k: v["sampled_seconds"] for k, v in result["profile"]["steps"].items()}
        _say(f"profile (sampled seconds per step): {sampled}")
    if args.big_rows:
        data = _dataset(args.big_rows, args.data_dir, env, guard)
        big = _pipeline(data, work, env, guard, "big")
        result["big"] = {"rows": args.big_rows, "guard_gib": args.guard_gib, **big}
        _say(f"{args.big_rows} rows: {big['wall_seconds']:.1f} s, returncode {big['returncode']} "
             f"{big['stopped_by_guard']}")
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _save(args.out, result)
    if args.out.resolve().parent == HERE:
        _say(f"wrote {report.write(HERE)}")
    print(json.dumps(result.get("scale", {}).get("summary", {}), indent=2))
    return 0


def _source(commit: str | None, target: Path) -> tuple[Path, str, bool]:
    """The checkout to measure, its commit, and whether it differs from that commit (uncommitted changes)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    if commit is None:
        return ROOT, git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    if Path(commit).is_dir():  # a tree exported before (its BASELINE.txt says what it is)
        label = Path(commit) / "BASELINE.txt"
        return Path(commit), label.read_text().strip() if label.exists() else str(commit), False
    sha = git("rev-parse", commit)
    target.mkdir()
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha, False


def _dataset(rows: int, folder: Path, env: dict[str, str], guard: int) -> Path:
    """`mlops data generate --rows N --seed 1`, kept in `folder` (the same file for every run of a size)."""
    path = folder / f"transactions-{rows}.parquet"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.parquet")
        done = measure.run([str(VENV / "mlops"), "data", "generate", "--rows", str(rows), "--seed", "1",
                            "--out", str(partial)], cwd=folder, env=env, guard_bytes=guard)
        if done.returncode != 0:
            raise SystemExit(f"mlops data generate --rows {rows} failed: {done.stopped_by_guard}\n"
                             f"{done.stderr[-2000:]}")
        partial.rename(path)
        _say(f"generated {rows} rows in {done.wall_seconds:.1f} s (peak {done.max_rss_bytes / 2**30:.2f} GiB)")
    return path


def _floor(data: Path, policy: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    argv = [str(VENV / "python"), "-m", "bench.training.floor", "--data", str(data), "--policy", str(policy)]
    done = measure.run(argv, cwd=_fresh(work, "floor"), env={**env, "PYTHONPATH": f"{ROOT}:{env['PYTHONPATH']}"})
    if done.returncode != 0:
        raise SystemExit(f"the floor failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**done.summary(), "phases": json.loads(done.stdout.strip().splitlines()[-1])}


def _mlops(data: Path, registry: Path) -> list[str]:
    return [str(VENV / "mlops"), "run", "training", "-p", f"dataset={data}", "--registry", str(registry)]


def _pipeline(data: Path, work: Path, env: dict[str, str], guard: int, label: str,
              profile_dir: Path | None = None) -> dict[str, Any]:
    cwd = _fresh(work, f"pipeline-{label}")
    done = measure.run(_mlops(data, cwd / "registry"), cwd=cwd, env=env, guard_bytes=guard, profile_dir=profile_dir)
    runs = sorted((cwd / ".mlops" / "runs").glob("*/run.json"), key=lambda p: p.stat().st_mtime)
    document = json.loads(runs[-1].read_text()) if runs else {"tasks": {}}
    tasks = {}
    for name, task in document["tasks"].items():
        tasks[name] = {"seconds": task.get("duration"), "phase": task.get("phase"),
                       "max_rss_bytes": task.get("maxRSSBytes"), "cpu_seconds": task.get("cpuSeconds"),
                       "peak_bytes_polled": done.step_peak_bytes.get(task.get("template") or name)}
    if done.returncode != 0 and not done.stopped_by_guard:
        _say(f"mlops run training failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return {**done.summary(), "tasks": tasks, "phase": document.get("phase"),
            "outside_tasks_seconds": round(done.wall_seconds - sum(t["seconds"] or 0 for t in tasks.values()), 3),
            "output_tail": done.stdout[-1500:] if done.returncode else ""}


def _medians(rows: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    floors = [r for r in runs if r["kind"] == "floor"]
    pipelines = [r for r in runs if r["kind"] == "pipeline" and r["returncode"] == 0]
    floor = statistics.median(r["wall_seconds"] for r in floors)
    summary: dict[str, Any] = {"rows": rows, "floor_seconds": round(floor, 2)}
    if pipelines:
        pipeline = statistics.median(r["wall_seconds"] for r in pipelines)
        names = list(pipelines[0]["tasks"])
        summary.update({
            "pipeline_seconds": round(pipeline, 2), "ratio": round(pipeline / floor, 2),
            "ratios_per_repetition": [round(p["wall_seconds"] / f["wall_seconds"], 2)
                                      for p, f in zip(pipelines, floors, strict=False)],
            "task_seconds": {n: statistics.median(r["tasks"][n]["seconds"] or 0 for r in pipelines) for n in names},
            # CPU seconds of each task's process tree (run.json's cpuSeconds): less sensitive to a busy machine
            "task_cpu_seconds": {n: statistics.median(r["tasks"][n]["cpu_seconds"] or 0 for r in pipelines)
                                 for n in names},
            # the runner's own time between and around the tasks (starting them, moving artifacts)
            "outside_tasks_seconds": statistics.median(r["outside_tasks_seconds"] for r in pipelines),
            "load_1min": [r["load_before"][0] for r in runs] + [runs[-1]["load_after"][0]],
            "task_max_rss_bytes": {n: max((r["tasks"][n]["max_rss_bytes"] or r["tasks"][n]["peak_bytes_polled"] or 0)
                                          for r in pipelines) for n in names},
            "floor_fit_seconds": statistics.median(r["phases"]["fit_seconds"] for r in floors),
            "floor_holdout_roc_auc": floors[0]["phases"]["holdout_roc_auc"],
            "floor_max_rss_bytes": max(r["max_rss_bytes"] for r in floors),
        })
    one_thread = [r["wall_seconds"] for r in runs if r["kind"] == "floor-1-thread"]
    if one_thread:
        summary["floor_one_thread_seconds"] = round(statistics.median(one_thread), 2)
    against = [r for r in runs if r["kind"] == "against" and r["returncode"] == 0]
    if against:
        seconds = statistics.median(r["wall_seconds"] for r in against)
        summary["against"] = {
            "pipeline_seconds": round(seconds, 2), "ratio": round(seconds / floor, 2),
            "task_seconds": {n: statistics.median(r["tasks"][n]["seconds"] or 0 for r in against)
                             for n in against[0]["tasks"]},
            "task_max_rss_bytes": {n: max((r["tasks"][n]["max_rss_bytes"] or r["tasks"][n]["peak_bytes_polled"]
                                           or 0) for r in against) for n in against[0]["tasks"]}}
    return {"summary": summary, "runs": runs}


def _save(out: Path, result: dict[str, Any]) -> None:
    out.write_text(json.dumps({**result, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                              indent=2) + "\n")


def _fresh(work: Path, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    return path


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
