"""Medians over repetitions, paired ratios to the baseline, and the Markdown report (results.md)."""

from __future__ import annotations

from statistics import median
from typing import Any

# The issues' targets, as ratios of a judged contender to its baseline (MLServer with adaptive batching on the same
# path; on a path MLServer does not serve, MLServer over HTTP JSON).
TARGETS = (
    # (issue, what, concurrency: "max" | 1 | None, metric, comparison, bound, only on protocol (None: every one))
    (3, "throughput at the highest concurrency", "max", "throughput_rps", ">=", 3.0, None),
    (3, "p99 at the highest concurrency", "max", "p99", "<=", 0.5, None),
    (3, "p50 at concurrency 1", 1, "p50", "<=", 0.2, None),
    (3, "time to ready", None, "ready_s", "<=", 0.5, None),
    (15, "throughput at the highest concurrency, HTTP JSON", "max", "throughput_rps", ">=", 10.0, "v2"),
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


def baselines(names: list[str], baseline: str, protocols: dict[str, str],
              judged: dict[str, bool]) -> dict[str, str]:
    """Whom each contender is compared with: the baseline when it serves the same path, else the first peer
    (a contender not judged, i.e. MLServer) on that path, else the baseline (e.g. our binary path, which
    MLServer does not serve, against MLServer's JSON)."""
    out = {}
    for name in names:
        if name == baseline:
            continue
        path = protocols.get(name, "v2")
        peer = next((n for n in names if n != name and protocols.get(n, "v2") == path and not judged.get(n)), None)
        out[name] = baseline if protocols.get(baseline, "v2") == path else (peer or baseline)
    return out


def ratios(runs: list[dict[str, Any]], names: list[str], baseline: str, concurrencies: list[int],
           protocols: dict[str, str] | None = None, judged: dict[str, bool] | None = None) -> dict[str, Any]:
    """Median of per-repetition ratios (contender / its baseline in the same repetition): runs of one repetition
    are neighbours in time, so pairing them cancels most of the machine's drift. Each entry names its baseline;
    the targets apply to the contender's path."""
    protocols = protocols or {}
    out: dict[str, Any] = {}
    top = max(concurrencies)
    for name, base in baselines(names, baseline, protocols, judged or {}).items():
        entry = paired(runs, name, base, concurrencies)
        if entry:
            entry["targets"] = _targets(entry, top, protocols.get(name, "v2"), protocols.get(base, "v2"))
            out[name] = {"baseline": base, **entry}
    return out


def within(runs: list[dict[str, Any]], names: list[str], concurrencies: list[int], protocols: dict[str, str],
           judged: dict[str, bool]) -> dict[str, Any]:
    """Our server's other paths against its own HTTP JSON path (the first judged V2 contender), same pairing."""
    ours = next((n for n in names if judged.get(n) and protocols.get(n, "v2") == "v2"), None)
    out: dict[str, Any] = {}
    for name in names:
        if ours and name != ours and judged.get(name) and protocols.get(name, "v2") != "v2":
            entry = paired(runs, name, ours, concurrencies)
            if entry:
                out[name] = {"baseline": ours, **entry}
    return out


def paired(runs: list[dict[str, Any]], name: str, base_name: str, concurrencies: list[int]) -> dict[str, Any]:
    base = {r["rep"]: r for r in runs if r["contender"] == base_name}
    pairs = [(r, base[r["rep"]]) for r in runs if r["contender"] == name and r["rep"] in base]
    entry: dict[str, Any] = {}
    if not pairs:
        return entry
    wanted = [("ready_s", None)] + [(f"{m}@{c}", c) for c in concurrencies for m in ("throughput_rps", "p50", "p99")]
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
    return entry


def _targets(entry: dict[str, Any], top: int, protocol: str, base_protocol: str) -> list[dict[str, Any]]:
    checks = []
    for issue, what, c, metric, op, bound, only in TARGETS:
        if only is not None and (protocol != only or base_protocol != only):
            continue
        key = metric if c is None else f"{metric}@{top if c == 'max' else c}"
        value = entry.get(key)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        checks.append({"issue": issue, "target": what, "ratio": value, "rule": f"{op} {bound}", "met": met})
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
        *_path_notes(results),
        ("- Figures are medians over repetitions, with [min–max]; ratios are medians of per-repetition ratios "
        f"to **{results['baseline']}**, or to MLServer on the contender's own path."),
        (f"- Model: {results['model']['source']} ({results['model']['estimator']}, trained on "
        f"{results['model']['training_rows']} rows); every contender serves the same estimator."),
        "",
        "## Results",
        "",
        "| contender | path | concurrency | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in s.items():
        for c, load in entry["loads"].items():
            lines.append(f"| {name} | {_path(results, name)} | {c} | {_range(load['throughput_rps'], 0)} | "
                         f"{_range(load['p50'], 2)} | "
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
    lines += _ratio_tables(results)
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


def _path_notes(results: dict[str, Any]) -> list[str]:
    protocols = {d.get("protocol") for d in results["contender_details"].values()}
    notes = []
    if "v2-binary" in protocols:
        notes.append("- HTTP binary: tritonclient.http's default request (binary inputs, binary outputs asked for, "
                     "`Inference-Header-Content-Length`, no Content-Type), from `generate_request_body`; wrk "
                     "rotates over the rows as for JSON; answers read with tritonclient's own parser. MLServer "
                     "1.7.1 has no binary extension (it answers 422, JSON decode error), so this path is "
                     "compared with MLServer's HTTP JSON.")
    if "grpc" in protocols:
        notes.append("- gRPC: KServe V2 `ModelInfer`, the ModelInferRequest tritonclient.grpc builds (inputs in "
                     "`raw_input_contents`); h2load (nghttp2) over h2c, one stream per connection (as many requests "
                     "in flight as connections), posting one row's framed request every time (h2load sends one "
                     "body); latency percentiles from its per-request log. Answers checked before the load with "
                     "the real client; under load by the server's own count of answers by gRPC status (errors: "
                     "anything not OK, fewer OK answers than h2load completed, or answers shorter than a correct "
                     "one).")
    return notes


def _path(results: dict[str, Any], name: str) -> str:
    return str(results["contender_details"].get(name, {}).get("path", "HTTP JSON"))


def _ratio_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for title, table in (("Ratios to MLServer on the same path (median of per-repetition ratios; a path MLServer "
                          "does not serve is compared with its HTTP JSON)", results["ratios"]),
                         ("Our server's paths against its own HTTP JSON (same pairing)", results.get("within", {}))):
        if not table:
            continue
        keys = sorted({k for r in table.values() for k in r if k not in ("targets", "baseline")}, key=_ratio_order)
        lines += ["", f"### {title}", "", "| contender | path | to | " + " | ".join(keys) + " |",
                  "| --- | --- | --- |" + " ---: |" * len(keys)]
        for name, entry in table.items():
            base = entry.get("baseline", results["baseline"])
            lines.append(f"| {name} | {_path(results, name)} | {base} ({_path(results, base)}) | "
                         + " | ".join(f"{entry.get(k, '–')}" for k in keys) + " |")
    judged = [n for n in results["ratios"] if results["contender_details"][n]["judged"]]
    if judged:
        lines += ["", "### Targets (issues 3 and 15)", "", "| contender | issue | target | to | ratio | rule | met |",
                  "| --- | ---: | --- | --- | ---: | --- | --- |"]
        for name in judged:
            entry = results["ratios"][name]
            for t in entry["targets"]:
                met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
                lines.append(f"| {name} | {t.get('issue', 3)} | {t['target']} | "
                             f"{entry.get('baseline', results['baseline'])} | {t['ratio']} | {t['rule']} | {met} |")
    return lines


def _range(stats: dict[str, float], digits: int) -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(stats['median'])} [{f.format(stats['min'])}–{f.format(stats['max'])}]"


def _ratio_order(key: str) -> tuple[int, int, str]:
    if "@" not in key:
        return (0 if key == "ready_s" else 2, 0, key)
    metric, c = key.split("@")
    return (1, int(c), metric)
