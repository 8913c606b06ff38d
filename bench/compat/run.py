"""Argo's own examples through `mlops run --from`: which run, with which result, and which are refused and why.

    .venv/bin/python bench/compat/run.py --examples ARGO/examples [--timeout 60] [--jobs 2]

ARGO is a checkout of github.com/argoproj/argo-workflows (the results committed beside this file name its tag).
Every file of the folder (and its sub-folders) holding a `kind: Workflow` runs in a fresh working folder with
`--templates` pointing at the examples' WorkflowTemplates and ClusterWorkflowTemplates and `--configmaps` at their
ConfigMaps, as a user who cloned Argo would run them. Nothing is adapted: the point is what a user meets.

Each run is classified by its exit code and its last line: Succeeded (0), Failed (1), refused before starting
(2, with the first refusal quoted), or a timeout. `results.json` keeps every run's classification, duration and
the tail of its output; `results.md` is the table, with Argo's own result where the example is meant to fail
(`argo_result`: Argo's e2e suite runs every example without a no-test label and requires Succeeded), so a local
result that differs from Argo's shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

NO_TEST = "workflows.argoproj.io/no-test"


def argo_result(workflow: dict[str, Any]) -> str:
    """Argo's own result, as its e2e suite (test/e2e/examples_test.go) holds it: every example without the no-test
    label must end Succeeded. The others are not run by Argo's CI (an `expected-failure` label marks an example with
    a failing node, not a failing workflow: continue-on-fail Succeeds in functional_test.go), so no result is
    claimed for them."""
    reason = ((workflow.get("metadata") or {}).get("labels") or {}).get(NO_TEST)
    return "Succeeded" if reason is None else f"untested ({reason})"


def _workflows(examples: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(examples.rglob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        found += [(path, d) for d in docs if d.get("kind") == "Workflow"][:1]
    return found


def _classify(code: int | None, output: str) -> tuple[str, str]:
    lines = [line for line in output.splitlines() if line.strip()]
    if code is None:
        return "timeout", lines[-1] if lines else ""
    if code == 0:
        return "Succeeded", ""
    header = next((i for i, line in enumerate(lines) if "cannot run on this machine" in line), None)
    if code == 2 and header is not None:
        return "refused", (lines[header + 1] if header + 1 < len(lines) else lines[header]).strip()
    suspended = next((line for line in lines if line.startswith("Suspended at")), "")
    if suspended:
        return "suspended", suspended.split(":")[0]
    status = next((line for line in reversed(lines) if "Failed" in line or "Error" in line), "")
    return ("Failed" if code == 1 else f"exit {code}"), (status or (lines[-1] if lines else "")).strip()


def run_one(path: Path, workflow: dict[str, Any], examples: Path, mlops: list[str], timeout: float,
            extra: list[str], argo_e2e: bool) -> dict[str, Any]:
    command = [*mlops, "run", "--from", str(path)]
    for folder in ("workflow-template", "cluster-workflow-template"):
        if (examples / folder).is_dir():
            command += ["--templates", str(examples / folder)]
    for config_maps in sorted((examples / "configmaps").glob("*.yaml")):
        command += ["--configmaps", str(config_maps)]
    command += extra
    with tempfile.TemporaryDirectory(prefix="argo-example-", ignore_cleanup_errors=True) as work:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "NO_COLOR": "1"}, start_new_session=True)
        code: int | None
        try:
            output, _ = process.communicate(timeout=timeout)
            code = process.returncode
        except subprocess.TimeoutExpired:
            # Ctrl-C, as a user would stop it: mlops run stops its pods and writes run.json, then we read the rest.
            code = None
            process.send_signal(signal.SIGINT)
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                output += "\n(did not stop within 30 s of Ctrl-C: killed)"
        seconds = time.monotonic() - started
    result, detail = _classify(code, output)
    name = str(path.relative_to(examples))
    argo = argo_result(workflow) if argo_e2e else "not stated"
    return {"example": name, "result": result, "argo": argo, "seconds": round(seconds, 2),
            "detail": detail[:300], "tail": output.splitlines()[-15:]}


def report(results: list[dict[str, Any]], source: str, command: str) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    differ = [r for r in results if r["argo"] == "Succeeded" and r["result"] not in ("Succeeded", "refused")]
    lines = [
        f"# {source.split(' ')[0]}'s workflows through `mlops run --from`",
        "",
        f"Source: {source}. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end. "
        f"Reproduce: `{command}`.",
        "",
        "| result | examples |", "| --- | ---: |",
        *[f"| {k} | {v} |" for k, v in sorted(counts.items())],
        "",
        f"Local results that differ from Argo's: **{len(differ)}**"
        + ("" if not differ else " (" + ", ".join(r["example"] for r in differ) + ")"),
        "",
        "| example | local | Argo | s | first refusal / last status |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for r in results:
        detail = r["detail"].replace("|", "\\|")
        lines.append(f"| {r['example']} | {r['result']} | {r['argo']} | {r['seconds']} | {detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True, help="the examples/ folder of an Argo checkout")
    parser.add_argument("--source", default="argoproj/argo-workflows examples/", help="what to call it in results")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--argo-e2e", action="store_true",
                        help="the folder is Argo's examples/: claim Argo's result from its e2e labels")
    parser.add_argument("--only", nargs="*", help="run only these example files (relative names)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("extra", nargs="*", help="more `mlops run` options after --, e.g. --image-command X=Y")
    args = parser.parse_args(argv)
    examples = args.examples.resolve()
    mlops = [str(Path(sys.executable).with_name("mlops"))]
    paths = _workflows(examples)
    if args.only:
        paths = [(p, w) for p, w in paths if str(p.relative_to(examples)) in set(args.only)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda pw: run_one(pw[0], pw[1], examples, mlops, args.timeout, args.extra,
                                                          args.argo_e2e), paths))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    command = shlex.join([".venv/bin/python", "bench/compat/run.py", *(argv if argv is not None else sys.argv[1:])])
    text = report(results, args.source, command)
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
