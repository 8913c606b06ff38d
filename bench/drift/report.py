"""The drift benchmark's results: medians and decisions from the raw runs (JSON), and their Markdown page."""

from __future__ import annotations

import statistics
from typing import Any

LABELS = {
    "ours-psi": "argo-mlops, PSI 0.15 (policy default, from the profile)",
    "ours-wasserstein-js": "argo-mlops, Evidently's tests, reference Ecdfs from training",
    "ours-wasserstein-js-raw": "argo-mlops, Evidently's tests, reference DataFrame",
    "ours-wasserstein-js-step": "argo-mlops, Evidently's tests, as `steps.drift --current` runs them",
    "ours-ks-chi2": "argo-mlops, alibi-detect's tests, reference Ecdfs from training",
    "ours-ks-chi2-raw": "argo-mlops, alibi-detect's tests, reference DataFrame",
    "evidently": "Evidently DataDriftPreset",
    "alibi-detect": "alibi-detect TabularDrift",
}

# Where ours takes its numeric reference from, by the measurement's suffix.
WHERE = {
    "raw": "DataFrame, in the timed region",
    "step": ("the bundle's reference_ecdf.npz (thinned as train keeps it), and the report's per-bin "
             "distributions too"),
}


def summarise(*, runs: dict[str, list[dict[str, Any]]], comparisons: list[dict[str, Any]],
              counters: dict[str, Any], profile_seconds: list[float], ecdf_seconds: list[float],
              truth: list[str], features: list[str],
              setup: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    tools = {key: _tool(rs, truth) for key, rs in runs.items() if rs}
    compared = []
    for c in comparisons:
        peer, ours = tools.get(c["peer"]), tools.get(c["ours"])
        if not peer or not ours:
            continue
        entry = {**c, "peer_seconds": peer["seconds"]["median"], "ours_seconds": ours["seconds"]["median"],
                 "speedup": peer["seconds"]["median"] / ours["seconds"]["median"]}
        entry["met"] = entry["speedup"] >= c["target"]
        # CPU seconds are less disturbed by other work on a shared machine than wall-clock seconds.
        entry["cpu_speedup"] = peer["cpu_seconds"] / ours["cpu_seconds"]
        threaded = next((key for key in tools if key.startswith(f"{c['ours']}@")), None)
        if threaded:
            entry["threaded"] = {"threads": tools[threaded]["threads"],
                                 "speedup": peer["seconds"]["median"] / tools[threaded]["seconds"]["median"]}
        if "detect" in peer.get("phases", {}):
            entry["speedup_detector_only"] = peer["phases"]["detect"] / ours["seconds"]["median"]
        psi = tools.get("ours-psi")
        if psi:
            entry["speedup_of_ours_psi"] = peer["seconds"]["median"] / psi["seconds"]["median"]
        differ = sorted(set(peer["flagged"]) ^ set(ours["flagged"]))
        entry.update({"same_decisions": not differ, "differ": differ,
                      "peer_exact_vs_truth": peer["vs_truth"]["exact"],
                      "ours_exact_vs_truth": ours["vs_truth"]["exact"]})
        untested = sorted(n for n, p in (peer.get("p_values") or {}).items() if p is None)
        if untested:
            entry["peer_untested"] = untested
            # Where the peer returns no p-value it decides nothing; the decisions compare where it does.
            entry["same_decisions_where_tested"] = not (set(differ) - set(untested))
        compared.append(entry)
    return {
        "setup": setup, "machine": machine, "truth": truth, "features": features,
        "profile_build_seconds": {"median": statistics.median(profile_seconds), "all": profile_seconds},
        "ecdf_build_seconds": {"median": statistics.median(ecdf_seconds), "all": ecdf_seconds},
        "tools": tools, "comparisons": compared, "counters": counters,
    }


def _tool(runs: list[dict[str, Any]], truth: list[str]) -> dict[str, Any]:
    flagged = [sorted(n for n, d in r["decisions"].items() if d) for r in runs]
    seconds = [r["seconds"] for r in runs]
    first = runs[0]
    out: dict[str, Any] = {
        "runs": len(runs),
        "threads": first.get("threads"),
        "seconds": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "all": seconds},
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "peak_increase_mib": statistics.median(r["peak_increase_mib"] for r in runs),
        "rss_before_mib": statistics.median(r["rss_before_mib"] for r in runs),
        "flagged": flagged[0],
        "flagged_same_every_run": all(f == flagged[0] for f in flagged),
        "vs_truth": {"missed": sorted(set(truth) - set(flagged[0])), "extra": sorted(set(flagged[0]) - set(truth)),
                     "exact": set(truth) == set(flagged[0])},
        "scores": first["scores"],
        "p_values": first.get("p_values"),
        "versions": first["versions"],
        "cpu_seconds_all": [r["cpu_seconds"] for r in runs],
        "load_average": [r["load_average"] for r in runs],
        "load_averages_before": [r.get("load_averages_before", [r["load_average"]]) for r in runs],
        "niceness": first.get("niceness"),
        "environment": first.get("environment"),
        "cpu_probe_seconds": [r["cpu_probe_seconds"] for r in runs],
    }
    if "phases" in first:
        phases = {k: statistics.median(r["phases"][k] for r in runs) for k in first["phases"]}
        phases["detect"] = phases.get("init", 0.0) + phases.get("predict", 0.0)
        out["phases"] = phases
    if "present_values_test" in first:
        out["present_values_test"] = first["present_values_test"]
    return out


def _label(key: str) -> str:
    base, _, threads = key.partition("@")
    return LABELS.get(base, base) + (f", {threads} threads" if threads else "")


def _s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    setup, machine, tools = r["setup"], r["machine"], r["tools"]
    lines = [
        "# Drift check: argo-mlops against Evidently and alibi-detect",
        "",
        (f"Reference `{setup['reference']}`, current `{setup['current']}`: {setup['rows']:,} rows each, the 23 "
        f"features of `{setup['policy']}` (target dropped); the drift shifts exactly "
        f"{len(r['truth'])} features (`steps._core.data.DRIFTED_FEATURES`). Every measurement is a fresh process; "
        "the timed region runs from both datasets in memory (pandas DataFrames read from Parquet) to per-feature "
        f"decisions, loading excluded; tools interleaved in one run; medians of {setup['reps']} repetitions "
        f"(Evidently: {setup['evidently_reps']}){', niceness ' + str(setup['nice']) if setup.get('nice') else ''}. "
        "Peak memory: the process's resident high-water mark during the "
        "timed region (reset just before it), and its increase over the loaded data."),
        "",
        (f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['os']}, "
        f"Python {machine['python']}; {machine['date']}. Load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_at_end'])} (the machine is shared; each run's load "
        "and a CPU probe are in results.json)."),
        "",
        "## Speed and decisions",
        "",
        ("| peer | same tests | our numeric reference | peer s | ours s | speed-up | target | met | CPU-time speed-up "
        "| same decisions |"),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for c in r["comparisons"]:
        where = WHERE.get(c["ours"].rpartition("-")[2], "Ecdfs built at training")
        lines.append(
            f"| {c['peer']} | {c['tests']} | {where} | {_s(c['peer_seconds'])} | {_s(c['ours_seconds'])} | "
            f"{c['speedup']:.0f}x | {c['target']:.0f}x | {'yes' if c['met'] else 'NO'} | "
            f"{c.get('cpu_speedup', float('nan')):.0f}x | "
            f"{_same(c)} |"
        )
    lines.append("")
    for c in r["comparisons"]:
        if c["ours"].endswith(("-raw", "-step")):
            continue
        extra = []
        if "threaded" in c:
            extra.append(f"ours on {c['threaded']['threads']} threads: {c['threaded']['speedup']:.0f}x")
        if "speedup_detector_only" in c:
            extra.append(f"against {c['peer']}'s detector alone (init + predict, without encoding the "
                         f"DataFrames to its numeric matrix): {c['speedup_detector_only']:.0f}x")
        if "speedup_of_ours_psi" in c:
            extra.append(f"ours with the policy's default (PSI from the profile): {c['speedup_of_ours_psi']:.0f}x")
        if c.get("peer_untested"):
            extra.append(f"{c['peer']} returns no p-value (NaN: no drift) for columns with missing values: "
                         f"{', '.join(c['peer_untested'])}")
        if extra:
            lines.append(f"- {c['peer']}: " + "; ".join(extra) + ".")
    lines += [
        "",
        "| tool | median s [min-max] | CPU s | peak RSS MiB | increase MiB | flagged | vs truth |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, t in tools.items():
        truth = "exact" if t["vs_truth"]["exact"] else (
            f"missed {', '.join(t['vs_truth']['missed']) or '-'}; extra {', '.join(t['vs_truth']['extra']) or '-'}")
        lines.append(
            f"| {_label(key)} | {_s(t['seconds']['median'])} [{_s(t['seconds']['min'])}-"
            f"{_s(t['seconds']['max'])}] | {_s(t['cpu_seconds'])} | {t['peak_rss_mib']:.0f} | "
            f"{t['peak_increase_mib']:.0f} | {len(t['flagged'])} | {truth} |"
        )
    lines += ["", (f"Built once at training time, from the reference, and used by ours: the profile "
              f"{_s(r['profile_build_seconds']['median'])} s, the numeric features' Ecdfs "
              f"{_s(r['ecdf_build_seconds']['median'])} s (medians of 3)."), ""]
    phases = tools.get("alibi-detect", {}).get("phases")
    if phases:
        lines += [(f"alibi-detect's time split: encoding the DataFrames {_s(phases['encode'])} s, "
                  f"TabularDrift(x_ref) {_s(phases['init'])} s, predict {_s(phases['predict'])} s."), ""]

    lines += _runs(tools)
    lines += _feature_table(r)
    lines += _counters(r["counters"])
    versions = {key: t["versions"] for key, t in tools.items() if "@" not in key}
    lines += ["", "## Versions", ""]
    for key, v in versions.items():
        lines.append(f"- {key}: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    lines += [
        "",
        "## Notes",
        "",
        ("- Ours: `steps._drift.rule.check`. Binned tests (PSI, Jensen-Shannon, chi-square) read the reference "
        "from the profile and count the current data over its bins (missing values and unseen categories counted). Raw "
        "tests (Wasserstein, KS) compare empirical CDFs over the distinct values (`steps._drift.ecdf.Ecdf`: integers "
        "counted, other numbers sorted once), exact; the reference's Ecdfs are built at training time like the "
        "profile, or, in the `-raw` rows, from the reference DataFrame inside the timed region. One thread; "
        "`@N`: N threads (one per CPU), each working on a feature."),
        ("- Jensen-Shannon is in natural-log units on both sides (Evidently's `jensenshannon` calls scipy with "
        "base e). Evidently drifts at score >= threshold, ours at score > threshold."),
        ("- Our KS p-value above an effective size of 1000 is the Kolmogorov limit with Stephens' correction "
        "(alibi-detect calls scipy's kstwo.sf, which can take seconds per feature at this size); the two agree "
        "within 0.1% at 5 x 10^5."),
        ("- Missing values: ours and Evidently test the present values of a numeric feature; alibi-detect passes "
        "NaN to scipy, which returns NaN. The table shows scipy's ks_2samp (alibi-detect's call) on the present "
        "values of such columns, untimed."),
        "",
        ("Run: `.venv/bin/python -m bench.drift.run` (full) or `--quick`; "
        "`--render bench/drift/results.json` rewrites this page."),
        "",
    ]
    return "\n".join(lines)


def _runs(tools: dict[str, Any]) -> list[str]:
    """Every measurement with the machine's load beside it: the machine is shared, and a busy one stretches the
    short runs most."""
    lines = ["## Every run, with the machine's load", "",
             ("Load average (1, 5, 15 min) just before each measured process started; the CPU probe is a fixed "
              "pure-Python loop timed just before it: a busier or slower CPU takes longer."), "",
             "| tool | run | s | CPU s | load average before | CPU probe s |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]
    for key, t in tools.items():
        loads = t.get("load_averages_before") or [[x] for x in t["load_average"]]
        for i, seconds in enumerate(t["seconds"]["all"]):
            cpu = t.get("cpu_seconds_all", [None] * len(t["seconds"]["all"]))[i]
            lines.append(f"| {key} | {i + 1} | {_s(seconds)} | {'' if cpu is None else _s(cpu)} | "
                         f"{', '.join(f'{x:.2f}' for x in loads[i])} | {t['cpu_probe_seconds'][i]:.3f} |")
    return lines + [""]


def _same(c: dict[str, Any]) -> str:
    if c["same_decisions"]:
        return "yes"
    if c.get("same_decisions_where_tested"):
        return (f"yes on every feature it returns a p-value for; it returns NaN (no drift) for "
                f"{', '.join(c['peer_untested'])}")
    return "no: " + ", ".join(c["differ"])


def _feature_table(r: dict[str, Any]) -> list[str]:
    tools = r["tools"]
    truth = set(r["truth"])
    columns = [("ours-psi", "ours PSI"), ("ours-wasserstein-js", "ours W/JS"), ("evidently", "Evidently W/JS"),
               ("ours-ks-chi2", "ours KS/chi2 p"), ("alibi-detect", "alibi p")]
    columns = [(k, label) for k, label in columns if k in tools]
    lines = ["## Per feature", "",
             "Score (or p-value for the tests) and decision: **bold** = flagged drifted.", "",
             "| feature | shifted | " + " | ".join(label for _, label in columns) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in columns) + " |"]
    for name in r["features"]:
        cells = []
        for key, _ in columns:
            t = tools[key]
            p_values = key in ("ours-ks-chi2", "alibi-detect")
            value = (t.get("p_values") or {}).get(name) if p_values else t["scores"].get(name)
            text = _num(value)
            if key == "alibi-detect" and value is None and name in t.get("present_values_test", {}):
                text += f" (present values: {_num(t['present_values_test'][name]['p_value'])})"
            cells.append(f"**{text}**" if name in t["flagged"] else text)
        lines.append(f"| {name} | {'yes' if name in truth else ''} | " + " | ".join(cells) + " |")
    return lines + [""]


def _counters(c: dict[str, Any]) -> list[str]:
    lines = ["## The check from Prometheus aggregates", "",
             ("Per-bin counter totals (feature -> bin -> value, as a Prometheus query returns them) for 1M and for "
             "100M served rows of the same current distribution, scored in-process from the counters to decisions, "
             f"interleaved, median of {c['reps']}:"), "",
             "| method | 1M rows, ms | 100M rows, ms | 100M / 1M | same flagged features |",
             "| --- | ---: | ---: | ---: | --- |"]
    for method, m in c.items():
        if method == "reps":
            continue
        ms = m["median_ms"]
        keys = list(ms)
        same = m["flagged"][keys[0]] == m["flagged"][keys[1]]
        lines.append(f"| {method} ({m['threshold']}) | {ms[keys[0]]:.2f} | {ms[keys[1]]:.2f} | "
                     f"{m['ratio_100m_to_1m']:.3f} | {'yes' if same else 'no'} ({len(m['flagged'][keys[0]])}) |")
    return lines
