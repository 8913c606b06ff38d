"""results.md from the measurements: results.json (the final run; its 10M-row run and its profile may come from
results-10m.json and results-profile.json), baseline.json (the same harness on the commit before issue 16's changes)
and notes.md (what the profile showed, the plan for data larger than memory).

    .venv/bin/python -m bench.training.report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GiB = 2**30


def render(final: dict[str, Any] | None, baseline: dict[str, Any] | None, notes: str) -> str:
    lines = ["# bench/training: `mlops run training` against its floor", ""]
    lines += ["The floor: one fresh process reads the same Parquet, fits the policy's HistGradientBoosting (its "
              "parameters and seed, default threads) on the training share of the same stratified split and scores "
              "the holdout (`bench/training/floor.py`). The pipeline: `mlops run training -p dataset=<the Parquet>` "
              "into a fresh local registry (validate, train, gate, register, rollout, all for real). Repetitions are "
              "interleaved (floor, pipeline, then pipeline, floor, ...); the ratio is median pipeline / median floor. "
              "Peak memory per task is what the local runner records in run.json (`maxRSSBytes`, os.wait4 of the "
              "task's process: its largest process), with /proc polling of the task's processes beside it. Every "
              "run records the load average (1 min) before and after: the machine is shared.", ""]
    for title, result in (("Final", final), ("Baseline (before issue 16's changes)", baseline)):
        if result:
            lines += _section(title, result)
    if final and final.get("scale", {}).get("summary", {}).get("against"):
        lines += _compare(final["scale"]["summary"]["against"], final["scale"]["summary"],
                          f"`{final['against_commit'][:12]}` in the same session, interleaved")
    elif final and baseline and final.get("scale") and baseline.get("scale"):
        lines += _compare(baseline["scale"]["summary"], final["scale"]["summary"], "the baseline run above")
    for title, result in (("before", baseline), ("after", final)):
        if result and result.get("profile"):
            lines += _profile(title, result)
    return "\n".join(lines + ["", notes.strip(), ""])


def _section(title: str, result: dict[str, Any]) -> list[str]:
    machine = result["machine"]
    dirty = " (plus uncommitted changes)" if result.get("working_tree_changes") else ""
    lines = [f"## {title}", "",
             f"Commit `{result['commit'][:12]}`{dirty}, "
             f"{result['started_at']} to {result['finished_at']}; {machine['cpu']}, {machine['cores']} cores, "
             f"{machine['memory_gib']} GiB, Python {machine['python']}, OMP_NUM_THREADS {machine['OMP_NUM_THREADS']}. "
             f"Reproduce: `{result['command']}`.", ""]
    scale = result.get("scale")
    if scale:
        summary = scale["summary"]
        lines += [f"### {summary['rows']:,} rows", ""]
        if "ratio" in summary:
            lines += [f"**Pipeline {summary['pipeline_seconds']:.1f} s / floor {summary['floor_seconds']:.1f} s = "
                      f"{summary['ratio']:.2f}x** (target <= 2.5x; per repetition: "
                      f"{', '.join(f'{r:.2f}x' for r in summary['ratios_per_repetition'])}). Floor's fit (median): "
                      f"{summary['floor_fit_seconds']:.1f} s, its peak memory "
                      f"{summary['floor_max_rss_bytes'] / GiB:.2f} GiB, its holdout ROC AUC "
                      f"{summary.get('floor_holdout_roc_auc', '-')}."
                      + (f" The floor on one thread: {summary['floor_one_thread_seconds']:.1f} s."
                         if "floor_one_thread_seconds" in summary else ""), ""]
            cpu = summary.get("task_cpu_seconds", {})
            lines += ["| task | seconds (median) | share of the run | CPU s (median) | peak memory (largest over the "
                      "runs) |", "| --- | ---: | ---: | ---: | ---: |"]
            for name, seconds in summary["task_seconds"].items():
                peak = summary["task_max_rss_bytes"].get(name) or 0
                lines.append(f"| `{name}` | {seconds:.1f} | {seconds / summary['pipeline_seconds']:.0%} | "
                             f"{_num(cpu.get(name))} | {peak / GiB:.2f} GiB |")
            if "outside_tasks_seconds" in summary:
                outside = summary["outside_tasks_seconds"]
                lines.append(f"| the runner, outside the tasks | {outside:.1f} | "
                             f"{outside / summary['pipeline_seconds']:.0%} | - | - |")
            lines.append("")
            if summary.get("load_1min"):
                lines += [f"Load average (1 min) at each run's start, then at the end: "
                          f"{', '.join(f'{v:.2f}' for v in summary['load_1min'])}.", ""]
        lines += ["| run | wall s | load before -> after | peak memory (largest process) | tasks (s) |",
                  "| --- | ---: | --- | ---: | --- |"]
        for run in scale["runs"]:
            tasks = ", ".join(f"{n} {t['seconds']:.1f}" for n, t in run.get("tasks", {}).items()
                              if t.get("seconds") is not None)
            lines.append(f"| {run['kind']} {run['repetition']} | {run['wall_seconds']:.1f} | "
                         f"{run['load_before'][0]:.2f} -> {run['load_after'][0]:.2f} | "
                         f"{run['max_rss_bytes'] / GiB:.2f} GiB | {tasks} |")
        lines.append("")
    big = result.get("big")
    if big:
        lines += [f"### {big['rows']:,} rows (memory guard {big['guard_gib']} GiB)", ""]
        done = big["returncode"] == 0 and not big["stopped_by_guard"]
        outcome = (f"completed ({big['phase']}) in {big['wall_seconds']:.0f} s" if done else
                   f"did not complete: {big['stopped_by_guard'] or 'exit code ' + str(big['returncode'])} after "
                   f"{big['wall_seconds']:.0f} s")
        peaks = {n: (t.get("max_rss_bytes") or t.get("peak_bytes_polled") or 0) for n, t in big["tasks"].items()}
        largest = max(peaks, key=lambda n: peaks[n]) if peaks else None
        lines += [(f"{big['note'][0].upper()}{big['note'][1:]}. " if big.get("note") else "")
                  + f"The run {outcome}; load {big['load_before'][0]:.2f} -> {big['load_after'][0]:.2f}. "
                  + (f"Largest step: `{largest}` at {peaks[largest] / GiB:.2f} GiB (target <= 8 GB = 7.45 GiB)."
                     if largest else ""), "",
                  "| task | phase | seconds | peak memory (run.json) | peak memory (polled) | CPU s |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for name, task in big["tasks"].items():
            lines.append(f"| `{name}` | {task['phase']} | {_num(task['seconds'])} | "
                         f"{_gib(task.get('max_rss_bytes'))} | {_gib(task.get('peak_bytes_polled'))} | "
                         f"{_num(task.get('cpu_seconds'))} |")
        lines.append("")
    return lines


def _compare(before: dict[str, Any], after: dict[str, Any], source: str) -> list[str]:
    lines = [f"## Before and after (before: {source})", "", "| | before | after | after / before |",
             "| --- | ---: | ---: | ---: |"]
    for key, label in (("floor_seconds", "floor s"), ("pipeline_seconds", "pipeline s"), ("ratio", "ratio")):
        if key in before and key in after:
            lines.append(f"| {label} | {before[key]:.2f} | {after[key]:.2f} | {after[key] / before[key]:.2f} |")
    for name in after.get("task_seconds", {}):
        b, a = before.get("task_seconds", {}).get(name), after["task_seconds"][name]
        if b:
            lines.append(f"| `{name}` s | {b:.1f} | {a:.1f} | {a / b:.2f} |")
        bm, am = before.get("task_max_rss_bytes", {}).get(name), after.get("task_max_rss_bytes", {}).get(name)
        if bm and am:
            lines.append(f"| `{name}` peak GiB | {bm / GiB:.2f} | {am / GiB:.2f} | {am / bm:.2f} |")
    return [*lines, ""]


def _profile(title: str, result: dict[str, Any]) -> list[str]:
    prof = result["profile"]
    lines = [f"## Profile {title} (py-spy at {prof['rate_hz']} Hz, {prof['rows']:,} rows, commit "
             f"`{result['commit'][:12]}`, load {prof['load_before'][0]:.2f} -> {prof['load_after'][0]:.2f})", "",
             "| step | sampled s | importing | top functions (self share) | own code (inclusive share) |",
             "| --- | ---: | ---: | --- | --- |"]
    if prof.get("note"):
        lines[1:1] = ["", f"{prof['note'][0].upper()}{prof['note'][1:]}."]
    run = prof.get("run")
    if run:
        tasks = ", ".join(f"{n} {t['seconds']:.1f} s / {_gib(t.get('max_rss_bytes') or t.get('peak_bytes_polled'))}"
                          for n, t in run["tasks"].items() if t.get("seconds") is not None)
        ended = f"; it ended {run['phase']}" if run.get("phase") != "Succeeded" else ""
        lines[1:1] = ["", f"The profiled run (py-spy samples without pausing the processes): "
                          f"{run['wall_seconds']:.1f} s, {tasks}{ended}."]
    for name, step in prof["steps"].items():
        own = "; ".join(f"`{f}` {s:.0%}" for f, s in step["self"][:4])
        # The step's own entry frames hold nearly every sample: show the functions below them.
        mine = "; ".join(f"`{f}` {s:.0%}" for f, s in [x for x in step["inclusive_own_code"] if x[1] < 0.75][:4])
        lines.append(f"| `{name}` | {step['sampled_seconds']:.1f} | {step['import_share']:.0%} | {own} | {mine} |")
    return [*lines, ""]


def _gib(value: Any) -> str:
    return f"{value / GiB:.2f} GiB" if value else "-"


def _num(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def write(folder: Path = HERE) -> Path:
    def load(name: str) -> dict[str, Any] | None:
        path = folder / name
        result = json.loads(path.read_text()) if path.exists() else None
        return result if isinstance(result, dict) and "commit" in result else None  # this harness's results only
    notes = (folder / "notes.md").read_text() if (folder / "notes.md").exists() else ""
    final = load("results.json")
    # The 10M-row run and the profile may be measured in their own invocations (neither is a timing against the
    # floor, so neither needs the quiet minutes the 1M-row repetitions do).
    for key, name in (("big", "results-10m.json"), ("profile", "results-profile.json")):
        part = load(name)
        if final is not None and part is not None and key not in final and key in part:
            final[key] = {**part[key], "note": f"measured separately: commit `{part['commit'][:12]}`, "
                                               f"{part['started_at']} to {part['finished_at']}, `{part['command']}`"}
    out = folder / "results.md"
    out.write_text(render(final, load("baseline.json"), notes))
    return out


if __name__ == "__main__":
    print(write())
    sys.exit(0)
