"""Medians over repetitions, paired ratios to the baseline, and the Markdown report (results.md)."""

from __future__ import annotations

from statistics import median
from typing import Any

# Issue 3's targets, as ratios of a judged contender to the baseline (MLServer with adaptive batching).
TARGETS = (
    # (what, concurrency: "max" | 1 | None, metric, comparison, bound)
    ("throughput at the highest concurrency", "max", "throughput_rps", ">=", 3.0),
    ("p99 at the highest concurrency", "max", "p99", "<=", 0.5),
    ("p50 at concurrency 1", 1, "p50", "<=", 0.2),
    ("time to ready", None, "ready_s", "<=", 0.5),
)


def _metric(run: dict[str, Any], concurrency: int | None, metric: str) -> float | None:
    if concurrency is None:
        return float(run[metric]) if metric in run else None
    load = run["loads"].get(str(concurrency))
    if load is None:
        return None
    if metric == "throughput_rps":
        return float(load["throughput_rps"])
    return float(load["latency_ms"][metric])


def summarise(runs: list[dict[str, Any]], names: list[str], concurrencies: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for r in runs if r["contender"] == name]
        if not mine:
            continue
        entry: dict[str, Any] = {"runs": len(mine), "ready_s": _stats([r["ready_s"] for r in mine]),
                                 "exit_s": _stats([r["stop"]["exit_seconds"] for r in mine]),
                                 "killed": sum(bool(r["stop"]["killed"]) for r in mine),
                                 "leftovers": sum(r["stop"]["leftovers"] for r in mine), "loads": {}}
        for c in concurrencies:
            loads = [r["loads"][str(c)] for r in mine if str(c) in r["loads"]]
            entry["loads"][str(c)] = {
                "throughput_rps": _stats([x["throughput_rps"] for x in loads]),
                **{p: _stats([x["latency_ms"][p] for x in loads]) for p in ("p50", "p90", "p99")},
                "errors": sum(x["error_count"] for x in loads),
                "requests": sum(x["requests"] for x in loads),
            }
        memory = [r["memory"] for r in mine]
        entry["memory"] = {
            "processes": int(median(m["processes"] for m in memory)),
            "peak_rss_mib": _stats([m["peak_rss_mib"] for m in memory]),
            "peak_pss_mib": _stats([m["peak_pss_mib"] for m in memory]),
            "largest_process_rss_mib": _stats([max((p["rss_mib"] for p in m["per_process"]), default=0.0)
                                               for m in memory]),
        }
        out[name] = entry
    return out


def ratios(runs: list[dict[str, Any]], names: list[str], baseline: str,
           concurrencies: list[int]) -> dict[str, Any]:
    """Median of per-repetition ratios (contender / baseline in the same repetition): runs of one repetition
    are neighbours in time, so pairing them cancels most of the machine's drift."""
    out: dict[str, Any] = {}
    base = {r["rep"]: r for r in runs if r["contender"] == baseline}
    top = max(concurrencies)
    for name in names:
        if name == baseline:
            continue
        pairs = [(r, base[r["rep"]]) for r in runs if r["contender"] == name and r["rep"] in base]
        if not pairs:
            continue
        entry: dict[str, Any] = {}
        wanted = [("ready_s", None)] + [(f"{m}@{c}", c) for c in concurrencies
                                        for m in ("throughput_rps", "p50", "p99")]
        for key, c in wanted:
            metric = key.split("@")[0]
            values = []
            for mine, theirs in pairs:
                a, b = _metric(mine, c, metric), _metric(theirs, c, metric)
                if a is not None and b:
                    values.append(a / b)
            if values:
                entry[key] = round(median(values), 3)
        mem = [m["memory"]["peak_rss_mib"] / t["memory"]["peak_rss_mib"] for m, t in pairs
               if t["memory"]["peak_rss_mib"]]
        if mem:
            entry["peak_rss_mib"] = round(median(mem), 3)
        entry["targets"] = _targets(entry, top)
        out[name] = entry
    return out


def _targets(entry: dict[str, Any], top: int) -> list[dict[str, Any]]:
    checks = []
    for what, c, metric, op, bound in TARGETS:
        key = metric if c is None else f"{metric}@{top if c == 'max' else c}"
        value = entry.get(key)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        checks.append({"target": what, "ratio": value, "rule": f"{op} {bound}", "met": met})
    return checks


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


# --- Markdown ---------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    s, m, settings = results["summary"], results["machine"], results["settings"]
    lines = [f"# Serving benchmark: {', '.join(results['contenders'])}", ""]
    if results.get("note"):
        lines += [f"> **{results['note']}**", ""]
    lines += [
        (f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores"
        f"{' (virtual machine)' if m['hypervisor'] else ''}, {m['memory_gib']} GiB, {m['os']}, "
        f"kernel {m['kernel']}, Python {m['python']}, {m['wrk']}; repository at {m['git_commit'] or '?'}"
        f"{' with uncommitted changes' if m['git_dirty'] else ''}; load average at start "
        f"{' '.join(m['loadavg_at_start'])}."),
        "",
        "## Method",
        "",
        (f"- Each server pinned to CPU {settings['server_cpus']} (`taskset`), wrk and this harness on CPU "
        f"{settings['client_cpus']}; one wrk thread, single-row requests rotating over "
        f"{results['model']['request_rows']} rows, keep-alive connections."),
        (f"- {settings['reps']} repetition(s), contenders interleaved in each ({' → '.join(results['contenders'])}); "
        "each run is a fresh start of the server: time to ready (spawn to the first 200 on its readiness "
        f"URL), answers checked against the in-process model (every row, sequential and {settings['verify_parallel']}"
        f" at once, tolerance {settings['tolerance']}), {settings['warmup_s']} s warm-up at concurrency "
        f"{max(settings['concurrency'])}, then {settings['duration_s']} s at each concurrency "
        f"{', '.join(str(c) for c in settings['concurrency'])}, then SIGTERM."),
        ("- Memory: the server's whole process tree, sampled every 0.5 s; peak total RSS (PSS counts the pages "
        "forked workers share once)."),
        ("- Figures are medians over repetitions, with [min–max]; ratios are medians of per-repetition ratios "
        f"to **{results['baseline']}**."),
        (f"- Model: {results['model']['source']} ({results['model']['estimator']}, trained on "
        f"{results['model']['training_rows']} rows); every contender serves the same estimator."),
        "",
        "## Results",
        "",
        "| contender | concurrency | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in s.items():
        for c, load in entry["loads"].items():
            lines.append(f"| {name} | {c} | {_range(load['throughput_rps'], 0)} | {_range(load['p50'], 2)} | "
                         f"{_range(load['p90'], 2)} | {_range(load['p99'], 2)} | {load['errors']} |")
    lines += ["", ("| contender | time to ready (s) | processes | peak RSS, all processes (MiB) | "
              "peak PSS (MiB) | largest process RSS (MiB) | SIGTERM to exit (s) | SIGKILLed | leftover processes |"),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, entry in s.items():
        mem = entry["memory"]
        lines.append(f"| {name} | {_range(entry['ready_s'], 2)} | {mem['processes']} | "
                     f"{_range(mem['peak_rss_mib'], 0)} | {_range(mem['peak_pss_mib'], 0)} | "
                     f"{_range(mem['largest_process_rss_mib'], 0)} | {_range(entry['exit_s'], 2)} | "
                     f"{entry['killed']} of {entry['runs']} | {entry['leftovers']} |")
    if results["ratios"]:
        keys = sorted({k for r in results["ratios"].values() for k in r if k != "targets"}, key=_ratio_order)
        lines += ["", f"### Ratios to {results['baseline']} (median of per-repetition ratios)", "",
                  "| contender | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
        for name, entry in results["ratios"].items():
            lines.append(f"| {name} | " + " | ".join(f"{entry.get(k, '–')}" for k in keys) + " |")
        judged = [n for n in results["ratios"] if results["contender_details"][n]["judged"]]
        if judged:
            lines += ["", "### Issue 3 targets", "", "| contender | target | ratio | rule | met |",
                      "| --- | --- | ---: | --- | --- |"]
            for name in judged:
                for t in results["ratios"][name]["targets"]:
                    met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
                    lines.append(f"| {name} | {t['target']} | {t['ratio']} | {t['rule']} | {met} |")
    lines += ["", "## Contenders", ""]
    for name, detail in results["contender_details"].items():
        versions = ", ".join(f"{k} {v}" for k, v in detail["versions"].items())
        lines += [f"- **{name}**: {detail['description']}. `{' '.join(detail['command'])}`"
                  + (f" with {', '.join(f'{k}={v}' for k, v in detail['env'].items())}" if detail["env"] else "")
                  + f"; {detail['protocol']} request to `{detail['infer_path']}`, ready at `{detail['ready_path']}`."
                  + (f" Versions: {versions}." if versions else "")]
        if detail.get("settings"):
            for file, text in detail["settings"].items():
                lines += [f"  - `{file}`: `{text}`"]
    lines += ["", "## Every run", "", ("CPU probe: a fixed pure-Python loop on the servers' core just before the "
              "run (lower is a faster machine at that moment)."), "",
              "| rep | contender | CPU probe (ms) | load avg | ready (s) | "
              + " | ".join(f"c={c} req/s | c={c} p50 | c={c} p99" for c in settings["concurrency"])
              + " | peak RSS (MiB) | SIGTERM to exit (s) |", "| ---: | --- | ---: | ---: | ---: |"
              + " ---: | ---: | ---: |" * len(settings["concurrency"]) + " ---: | ---: |"]
    for run in results["runs"]:
        cells = []
        for c in settings["concurrency"]:
            load = run["loads"][str(c)]
            cells += [f"{load['throughput_rps']:.0f}", f"{load['latency_ms']['p50']:.2f}",
                      f"{load['latency_ms']['p99']:.2f}"]
        stop = run["stop"]
        probe = run.get("cpu_probe_ms", float("nan"))
        lines.append(f"| {run['rep'] + 1} | {run['contender']} | {probe:.0f} | {run['loadavg']:.2f} | "
                     f"{run['ready_s']:.2f} | " + " | ".join(cells) + f" | {run['memory']['peak_rss_mib']:.0f} | "
                     f"{stop['exit_seconds']:.1f}{' (SIGKILL)' if stop['killed'] else ''} |")
    lines += ["", "Reproduce: `" + results["command"] + "` (raw numbers: `results.json` beside this file).", ""]
    return "\n".join(lines)


def _range(stats: dict[str, float], digits: int) -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(stats['median'])} [{f.format(stats['min'])}–{f.format(stats['max'])}]"


def _ratio_order(key: str) -> tuple[int, int, str]:
    if "@" not in key:
        return (0 if key == "ready_s" else 2, 0, key)
    metric, c = key.split("@")
    return (1, int(c), metric)
