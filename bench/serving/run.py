"""Serving benchmark: contenders side by side, interleaved, in one run; results as JSON and Markdown.

    .venv/bin/python -m bench.serving.run --quick                        # try it (short, 1 repetition)
    .venv/bin/python -m bench.serving.run                                # full: writes bench/serving/results.*
    .venv/bin/python -m bench.serving.run --contender mlserver-batch --contender argo-mlops
    .venv/bin/python -m bench.serving.run --soak 300 --rate 80% --contender argo-mlops
    .venv/bin/python -m bench.serving.run --soak 120 --rate 80% --mixed --contender argo-mlops

Peer servers live in their own venvs under bench/.venvs/ (made here), never in the project's dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from bench.serving import harness, mixed, model, report, wire
from bench.serving.contenders import (
    CONTENDERS,
    DEFAULT_CONTENDERS,
    Contender,
    ContenderError,
    Context,
    from_json,
    package_versions,
    render,
)
from bench.serving.harness import BenchError
from bench.serving.model import ModelError, ReferenceModel
from steps._core.errors import UsageError
from steps._core.files import write_json
from steps._core.policy import PolicyError, load_policy
from steps._core.prometheus import parse_exposition

REPO = Path(__file__).resolve().parents[2]
PEER_ONLY_NOTE = "Peer only: our server (argo-mlops) is not plugged in yet; MLServer's numbers, measured now."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.serving.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contender", action="append", default=[], choices=sorted(CONTENDERS),
                   help=f"a known contender (repeatable; default: {', '.join(DEFAULT_CONTENDERS)})")
    p.add_argument("--contender-json", action="append", default=[], metavar="JSON",
                   help="an ad-hoc contender: {name, command, ready_path, infer_path[, protocol, cwd, env, "
                        "needs_bundle, judged, description]}; templates as in contenders.py")
    p.add_argument("--baseline", help="the contender ratios are taken to (default: the first one)")
    p.add_argument("--quick", action="store_true", help="short runs, 1 repetition, results under bench/.work")
    p.add_argument("--reps", type=int, help="repetitions (default 5; --quick 1)")
    p.add_argument("--duration", type=float, help="seconds at each concurrency (default 15; --quick 4)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before measuring (default 5; --quick 2)")
    p.add_argument("--concurrency", default="1,32", help="comma-separated connection counts (default 1,32)")
    p.add_argument("--server-cpus", default="0", help="taskset CPU list for the servers (default 0)")
    p.add_argument("--client-cpus", default="1", help="taskset CPU list for wrk and this harness (default 1)")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for servers and wrk alike, e.g. -10 on a machine shared with other work")
    p.add_argument("--policy", type=Path, default=REPO / "gates" / "fraud-detection.yaml")
    p.add_argument("--dataset", help="training data URI (default: steps._core.data.generate)")
    p.add_argument("--rows", type=int, default=20000, help="generated training rows (default 20000)")
    p.add_argument("--seed", type=int, help="data seed (default: the policy's model.seed)")
    p.add_argument("--model-dir", type=Path, help="serve this bundle (from steps.train) instead of training one")
    p.add_argument("--request-rows", type=int, default=64, help="distinct single-row requests (default 64)")
    p.add_argument("--batch-size", type=int, default=32, help="MLServer max_batch_size when batching (default 32)")
    p.add_argument("--batch-time", type=float, default=0.005, help="MLServer max_batch_time, s (default 0.005)")
    p.add_argument("--tolerance", type=float, default=1e-5, help="allowed score difference (default 1e-5)")
    p.add_argument("--verify-parallel", type=int, default=32, help="concurrent requests in the answer check")
    p.add_argument("--ready-timeout", type=float, default=180.0)
    p.add_argument("--stop-timeout", type=float, default=30.0,
                   help="seconds from SIGTERM before SIGKILL (default 30, Kubernetes' grace period)")
    p.add_argument("--workdir", type=Path, default=REPO / "bench" / ".work" / "serving")
    p.add_argument("--venvs", type=Path, default=REPO / "bench" / ".venvs")
    p.add_argument("--out-dir", type=Path,
                   help="where results.json/.md go (default bench/serving; --quick: bench/.work/serving/quick)")
    p.add_argument("--note", help="a line shown at the top of results.md")
    p.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                   help="only rewrite results.md beside RESULTS_JSON from it (with --note, replacing its note)")
    p.add_argument("--soak", type=float, metavar="SECONDS", help="soak mode: paced load for SECONDS")
    p.add_argument("--rate", help="soak rate: requests/s, or N%% of the contender's measured throughput at the "
                                  "highest concurrency in --out-dir's results.json")
    p.add_argument("--soak-connections", type=int, default=64)
    p.add_argument("--mixed", action="store_true",
                   help="soak with good requests interleaved with careless and hostile ones (bench/serving/mixed.py); "
                        "--rate N%% is then of the throughput of this traffic, measured just before")
    p.add_argument("--capacity-seconds", type=float, default=10.0,
                   help="--mixed: seconds of unpaced load that measure the capacity (default 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.render:
            return render_markdown(args.render, args.note)
        _check_args(args)
        harness.require_tools(grpc=any(c.protocol == wire.GRPC for c in _contenders(args)))
        # This process waits on wrk most of the time; keep it, and its threads, off the server's core.
        os.sched_setaffinity(0, _cpu_set(args.client_cpus))
        return soak(args) if args.soak else bench(args)
    except (BenchError, ModelError, ContenderError, PolicyError, UsageError) as err:
        print(f"bench.serving: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, BenchError) else 2


def _check_args(args: argparse.Namespace) -> None:
    if args.quick:
        args.reps = args.reps or 1
        args.duration = args.duration or 4.0
        args.warmup = args.warmup if args.warmup is not None else 2.0
        args.out_dir = args.out_dir or args.workdir / "quick"
    args.reps = args.reps or 5
    args.duration = args.duration or 15.0
    args.warmup = 5.0 if args.warmup is None else args.warmup
    args.out_dir = args.out_dir or REPO / "bench" / "serving"
    for name in ("reps", "duration", "request_rows", "batch_size", "verify_parallel", "soak_connections"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')}: must be positive (got {getattr(args, name)})")
    try:
        args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError as err:
        raise UsageError(f"--concurrency: comma-separated integers, got {args.concurrency!r}") from err
    if not args.concurrency or min(args.concurrency) < 1:
        raise UsageError(f"--concurrency: at least one count >= 1 (got {args.concurrency})")
    for option in ("server_cpus", "client_cpus"):
        _cpu_set(getattr(args, option), option)
    if args.soak is not None and (args.soak <= 0 or not args.rate):
        raise UsageError("--soak SECONDS needs a positive SECONDS and --rate (requests/s or N%)")


def _cpu_set(text: str, option: str = "client_cpus") -> set[int]:
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError as err:
        raise UsageError(f"--{option.replace('_', '-')}: a CPU list like 0 or 0-1 or 0,2, got {text!r}") from err
    available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    if not cpus or not cpus <= available:
        raise UsageError(f"--{option.replace('_', '-')}: CPUs {sorted(cpus)} not all on this machine "
                         f"({sorted(available)})")
    return cpus


def _contenders(args: argparse.Namespace) -> list[Contender]:
    chosen = [CONTENDERS[n] for n in args.contender] + [from_json(t) for t in args.contender_json]
    chosen = chosen or [CONTENDERS[n] for n in DEFAULT_CONTENDERS]
    names = [c.name for c in chosen]
    if len(set(names)) != len(names):
        raise UsageError(f"--contender: each contender once, got {names}")
    if args.baseline and args.baseline not in names:
        raise UsageError(f"--baseline {args.baseline!r}: not among the contenders {names}")
    return chosen


def _prepare(args: argparse.Namespace,
             contenders: list[Contender]) -> tuple[ReferenceModel, Context, dict[str, Any]]:
    policy = load_policy(args.policy)
    seed = policy.model.seed if args.seed is None else args.seed
    print(f"model: building or loading ({policy.model_name}) ...", flush=True)
    ref = model.build(policy, args.workdir / "model", rows=args.rows, seed=seed, dataset=args.dataset,
                      model_dir=args.model_dir, request_rows=args.request_rows)
    print(f"model: {ref.source}; {len(ref.rows)} request rows", flush=True)
    ctx = Context(repo=REPO, workdir=args.workdir, venvs=args.venvs, model=ref.name, joblib=ref.joblib_path,
                  bundle=ref.bundle_dir, batch={"max_batch_size": args.batch_size, "max_batch_time": args.batch_time})
    details = {}
    for c in contenders:
        if c.needs_bundle and ref.bundle_dir is None:
            raise BenchError(f"{c.name} serves a model bundle, and there is none: steps.train is not there yet "
                             "(pass --model-dir with a bundle, or run without this contender)")
        if c.setup:
            print(f"{c.name}: setting up ...", flush=True)
            c.setup(c, ctx)
        values = ctx.fields()
        details[c.name] = {
            "description": c.description, "command": [render(x, values) for x in c.command],
            "env": {k: v for k, v in c.env.items() if "{" not in v}, "protocol": c.protocol,
            "infer_path": render(c.infer_path, values), "ready_path": render(c.ready_path, values),
            "path": wire.path_name(c.protocol),
            "judged": c.judged, "versions": package_versions(render(c.python, values), c.packages),
            "settings": _settings_files(args.workdir / c.name),
        }
    return ref, ctx, details


def _settings_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): json.dumps(json.loads(p.read_text()), separators=(",", ":"))
            for p in sorted(folder.rglob("*settings.json"))}


def _one_run(c: Contender, rep: int, ref: ReferenceModel, ctx: Context,
             args: argparse.Namespace) -> dict[str, Any]:
    log = args.workdir / "logs" / f"{c.name}-rep{rep + 1}.log"
    load_before = harness.loadavg()
    probe = harness.cpu_probe(args.server_cpus, args.nice)
    server = harness.start(c, ctx, log, args.server_cpus, args.nice)
    try:
        ready = harness.wait_ready(server, ctx, args.ready_timeout)
        checked = harness.verify(server, ctx, ref, args.tolerance, args.verify_parallel)
        loads = {}
        with harness.MemorySampler(server.proc.pid) as sampler:
            if args.warmup > 0:
                harness.run_load(server, ctx, ref, connections=max(args.concurrency), duration=args.warmup,
                                 cpus=args.client_cpus, nice=args.nice)
            for conc in args.concurrency:
                loads[str(conc)] = harness.run_load(server, ctx, ref, connections=conc, duration=args.duration,
                                                    cpus=args.client_cpus, nice=args.nice)
        stopped = harness.stop(server, args.stop_timeout)
    except BaseException:
        harness.kill(server)
        raise
    return {"rep": rep, "contender": c.name, "ready_s": round(ready, 3), "verify": checked, "loads": loads,
            "memory": sampler.summary(), "stop": stopped, "loadavg": load_before, "cpu_probe_ms": probe,
            "log": str(log)}


def _prime(c: Contender, ref: ReferenceModel, ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    """An unmeasured first start: it writes the bytecode caches and fills the page cache, as a pod on a warm
    node would find them, and checks the answers before any time is spent on load."""
    print(f"{c.name}: priming start ...", flush=True)
    server = harness.start(c, ctx, args.workdir / "logs" / f"{c.name}-prime.log", args.server_cpus, args.nice)
    try:
        ready = harness.wait_ready(server, ctx, args.ready_timeout)
        checked = harness.verify(server, ctx, ref, args.tolerance, args.verify_parallel)
        harness.stop(server, args.stop_timeout)
    except BaseException:
        harness.kill(server)
        raise
    print(f"  first start ready in {ready:.2f}s; answers match (max difference {checked['max_abs_diff']:.2g})",
          flush=True)
    return {"ready_s": round(ready, 3), "verify": checked}


def bench(args: argparse.Namespace) -> int:
    contenders = _contenders(args)
    names = [c.name for c in contenders]
    baseline = args.baseline or names[0]
    ref, ctx, details = _prepare(args, contenders)
    machine = harness.machine(REPO)
    primed = {c.name: _prime(c, ref, ctx, args) for c in contenders}
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for c in contenders:  # interleaved: A B A B ..., so drift hits every contender alike
            print(f"rep {rep + 1}/{args.reps} {c.name}: running ...", flush=True)
            run = _one_run(c, rep, ref, ctx, args)
            runs.append(run)
            print("  " + _run_line(run), flush=True)
            write_json(args.workdir / "partial-runs.json", runs)  # a crash later keeps what was measured
    policy = load_policy(args.policy)
    results = {
        "note": args.note or (PEER_ONLY_NOTE if not any(details[n]["judged"] for n in names) else ""),
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", "bench.serving.run",
                                                     *(sys.argv[1:] if sys.argv[0].endswith("run.py") else [])]),
        "machine": machine,
        "settings": {"reps": args.reps, "duration_s": args.duration, "warmup_s": args.warmup,
                     "concurrency": args.concurrency, "server_cpus": args.server_cpus,
                     "client_cpus": args.client_cpus, "nice": args.nice, "tolerance": args.tolerance,
                     "stop_timeout_s": args.stop_timeout,
                     "verify_parallel": args.verify_parallel, "wrk": "-t1 --timeout 10s, post.lua",
                     "batch": ctx.batch},
        "model": {**ref.describe(), "estimator": policy.model.estimator, "params": policy.model.params,
                  "training_rows": args.rows if not args.dataset else args.dataset},
        "contenders": names,
        "baseline": baseline,
        "contender_details": details,
        "summary": report.summarise(runs, names, args.concurrency),
        **_ratios(runs, names, baseline, args.concurrency, details),
        "priming_starts": primed,
        "runs": runs,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / "results.json", results)
    _write_markdown(args.out_dir / "results.md", results)
    print(f"wrote {args.out_dir / 'results.json'} and {args.out_dir / 'results.md'}")
    return 0


def render_markdown(results_json: Path, note: str | None) -> int:
    try:
        results = json.loads(results_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"--render {results_json}: not a readable results JSON: {err}") from err
    # Summaries come from the raw runs again, so a change to the report's arithmetic reaches old results too.
    try:
        names, concurrency = results["contenders"], results["settings"]["concurrency"]
        results["summary"] = report.summarise(results["runs"], names, concurrency)
        results.update(_ratios(results["runs"], names, results["baseline"], concurrency,
                               results["contender_details"]))
    except KeyError as err:
        raise UsageError(f"--render {results_json}: lacks {err} (not written by this harness?)") from err
    if note is not None:
        results["note"] = note
    write_json(results_json, results)
    _write_markdown(results_json.with_name("results.md"), results)
    print(f"wrote {results_json.with_name('results.md')}")
    return 0


def _ratios(runs: list[dict[str, Any]], names: list[str], baseline: str, concurrency: list[int],
            details: dict[str, Any]) -> dict[str, Any]:
    protocols = {n: details[n]["protocol"] for n in names}
    judged = {n: bool(details[n]["judged"]) for n in names}
    return {"ratios": report.ratios(runs, names, baseline, concurrency, protocols, judged),
            "within": report.within(runs, names, concurrency, protocols, judged)}


def _write_markdown(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(report.markdown(results))
    tmp.replace(path)


def _run_line(run: dict[str, Any]) -> str:
    parts = [f"ready {run['ready_s']:.2f}s"]
    for c, load in run["loads"].items():
        parts.append(f"c={c}: {load['throughput_rps']:.0f} req/s p50 {load['latency_ms']['p50']:.2f} ms "
                     f"p99 {load['latency_ms']['p99']:.2f} ms errors {load['error_count']}")
    parts.append(f"RSS {run['memory']['peak_rss_mib']:.0f} MiB in {run['memory']['processes']} processes")
    return "; ".join(parts)


# --- soak -------------------------------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> int:
    """Paced load at a fixed rate for a long while: counts 5xx, other non-2xx and socket errors (dropped
    requests), and watches memory from start to end. Exit 1 when anything was lost."""
    contenders = _contenders(args)
    if len(contenders) != 1:
        raise UsageError(f"--soak: pass exactly one --contender (got {[c.name for c in contenders]})")
    c = contenders[0]
    if c.protocol not in ("v1", "v2"):
        raise UsageError(f"--soak: JSON contenders only (v1 or v2); {c.name} speaks {c.protocol}")
    rate = 0.0 if args.mixed and str(args.rate).strip().endswith("%") else _soak_rate(args, c.name)
    ref, ctx, details = _prepare(args, contenders)
    log = args.workdir / "logs" / f"{c.name}-soak.log"
    requests, mix = _mixed_requests(args, ref) if args.mixed else (None, {})
    _prime(c, ref, ctx, args)
    server = harness.start(c, ctx, log, args.server_cpus, args.nice)
    try:
        ready = harness.wait_ready(server, ctx, args.ready_timeout)
        harness.verify(server, ctx, ref, args.tolerance, args.verify_parallel)
        if not rate:  # --mixed N%: of what this traffic reaches unpaced, now
            capacity = harness.run_wrk(server, ctx, ref, connections=args.soak_connections,
                                       duration=args.capacity_seconds, cpus=args.client_cpus, nice=args.nice,
                                       requests=requests)["throughput_rps"]
            rate = _soak_rate(args, c.name, capacity)
            mix["capacity_rps"] = capacity
            print(f"{c.name}: {capacity:.0f} req/s of this traffic unpaced", flush=True)
        print(f"{c.name}: soaking {args.soak:.0f} s at {rate:.0f} req/s over {args.soak_connections} "
              f"connections{' (mixed traffic)' if args.mixed else ''} ...", flush=True)
        with harness.MemorySampler(server.proc.pid, interval=2.0) as sampler:
            load = harness.run_wrk(server, ctx, ref, connections=args.soak_connections, duration=args.soak,
                                   cpus=args.client_cpus, script="soak.lua", extra_args=(f"{rate:.3f}", "1"),
                                   nice=args.nice, requests=requests)
        counted = _server_counters(server)
        stopped = harness.stop(server, args.stop_timeout)
    except BaseException:
        harness.kill(server)
        raise
    statuses = {int(k): v for k, v in load.get("statuses", {}).items()}
    errors = load["errors"]
    memory = sampler.summary()
    result = {
        "contender": c.name, "rate_rps": rate, "seconds": load["seconds"], "connections": args.soak_connections,
        "offered_requests": round(rate * load["seconds"]), "completed": load["requests"],
        "achieved_rps": load["throughput_rps"], "latency_ms": load["latency_ms"], "statuses": statuses,
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "other_non_2xx": sum(v for k, v in statuses.items() if k < 200 or 300 <= k < 500),
        "dropped": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "socket_errors": {k: v for k, v in errors.items() if k != "status"},
        "server_counters": counted,
        "ready_s": round(ready, 3), "memory": memory, "stop": stopped,
        "machine": harness.machine(REPO), "contender_details": details[c.name], "model": ref.describe(),
    }
    problems = []
    if args.mixed:
        result["mix"] = mix
        # The clients' mistakes are expected 4xx, each at its share; none may reach the server's error counter.
        problems = mixed.check(statuses, mix["status_shares"], load["requests"], slack=args.soak_connections)
        if counted.get("model_inference_errors_total", 0) != 0:
            problems.append(f"model_inference_errors_total {counted['model_inference_errors_total']}, not 0")
        if memory["peak_rss_mib"] - memory["first_rss_mib"] > MEMORY_GROWTH_MIB:
            problems.append(f"RSS grew from {memory['first_rss_mib']} to {memory['peak_rss_mib']} MiB")
    elif result["other_non_2xx"]:
        problems.append(f"{result['other_non_2xx']} answers neither 2xx nor 5xx")
    if result["5xx"] or result["dropped"]:
        problems.append(f"5xx {result['5xx']}, dropped {result['dropped']}")
    result["problems"] = problems
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"soak-{c.name}{'-mixed' if args.mixed else ''}.json"
    write_json(out, result)
    print(f"{c.name}: {result['completed']} of ~{result['offered_requests']} offered requests answered "
          f"({result['achieved_rps']:.0f} req/s), 5xx {result['5xx']}, other non-2xx {result['other_non_2xx']}, "
          f"dropped {result['dropped']}; p99 {load['latency_ms']['p99']:.1f} ms; RSS "
          f"{memory['first_rss_mib']:.0f} -> {memory['last_rss_mib']:.0f} MiB (peak {memory['peak_rss_mib']:.0f}); "
          f"server counters {counted}; {'; '.join(problems) or 'no problems'}; wrote {out}")
    return 1 if problems else 0


MEMORY_GROWTH_MIB = 64  # --mixed: the most the server's RSS may grow over a soak


def _mixed_requests(args: argparse.Namespace, ref: ReferenceModel) -> tuple[Path, dict[str, Any]]:
    """The `#raw` request file of mixed traffic, and what it holds."""
    bodies = {protocol: [line for line in path.read_bytes().splitlines() if line]
              for protocol, path in ref.body_files.items()}
    if "v1" not in bodies:
        raise UsageError("--mixed needs the v1 request bodies too")
    path = args.workdir / "mixed.raw"
    return path, mixed.write(path, mixed.kinds(ref.name, bodies["v2"], bodies["v1"]))


def _server_counters(server: harness.Server) -> dict[str, float]:
    """The server's own counters after the load: requests by code and errors (what the canary analysis reads)."""
    try:
        status, text = harness.request(server.base_url, "GET", "/metrics", None)
    except OSError:
        return {}
    if status != 200 or not isinstance(text, str):
        return {}
    out: dict[str, float] = {}
    for name, labels, value in parse_exposition(text, "model_requests_total", "model_inference_errors_total"):
        out[name if "code" not in labels else f"{name}{{code={labels['code']}}}"] = value
    return out


def _soak_rate(args: argparse.Namespace, name: str, capacity: float | None = None) -> float:
    """--rate as requests/s: a number, or a share of `capacity` when given, else of results.json's throughput."""
    text = str(args.rate).strip()
    try:
        if not text.endswith("%"):
            rate = float(text)
        elif capacity is not None:
            rate = float(text[:-1]) / 100 * capacity
        else:
            share = float(text[:-1]) / 100
            measured = json.loads((args.out_dir / "results.json").read_text())
            loads = measured["summary"][name]["loads"]
            top = max(loads, key=int)
            rate = share * loads[top]["throughput_rps"]["median"]
    except FileNotFoundError as err:
        raise UsageError(f"--rate {text}: a share needs a benchmark first ({args.out_dir / 'results.json'} "
                         "is missing)") from err
    except KeyError as err:
        raise UsageError(f"--rate {text}: {args.out_dir / 'results.json'} has no measurement of {name}") from err
    except ValueError as err:
        raise UsageError(f"--rate: requests/s or N%, got {text!r}") from err
    if rate <= 0:
        raise UsageError(f"--rate: must be positive, got {text!r}")
    return rate


if __name__ == "__main__":
    sys.exit(main())
