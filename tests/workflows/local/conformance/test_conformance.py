"""The conformance suite run against `mlops run --from` (README.md, "Running a case"): each case's workflow is run
as a user runs it, and its run.json (or its refusal) compared with what Argo v4.1.2 does.

All cases are started at once by a session fixture, a few at a time (most of their time is sleeping), the cases
that listen on the suite's ports one at a time; each case is then its own test. The whole suite is bounded: no case
runs longer than its `run.timeout` (60 s by default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.local import api

HERE = Path(__file__).parent
CASES = HERE / "cases"
ROOT = HERE.parents[3]
PORTS = ("18731", "18732")
WORKERS = 4

# Cases refused up front although Argo runs them: the refusal that stands in the way, and why. Each is an expected
# failure only while that refusal is still made, so a fix (in the case or the lang package) simply passes.
KNOWN: dict[str, tuple[str, str]] = {}  # none today: every case Argo runs passes the checks


def prepared_case(case: str) -> api.Prepared:
    run = _expected(case).get("run") or {}
    return api.prepare(CASES / f"{case}.yaml", run.get("parameters"),
                       templates=[CASES / t for t in run.get("templates") or []],
                       configmaps=[CASES / c for c in run.get("configmaps") or []])


def xfail_if_known(case: str) -> None:
    if case in KNOWN:
        refusal, why = KNOWN[case]
        if any(refusal in str(r) for r in prepared_case(case).report.refusals):
            pytest.xfail(why)


def case_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in CASES.glob("*.yaml") if not p.name.endswith(".expected.yaml"))


@dataclass
class Outcome:
    code: int | None  # None: timed out
    output: str
    document: dict[str, Any] | None  # run.json
    runs: int  # run folders with a run.json
    seconds: float


def command(case: str, spec: dict[str, Any]) -> list[str]:
    run = spec.get("run") or {}
    cmd = [sys.executable, "-P", "-m", "workflows", "run", "--from", str(CASES / f"{case}.yaml")]
    for name, value in (run.get("parameters") or {}).items():
        cmd += ["-p", f"{name}={value}"]
    for path in run.get("templates") or []:
        cmd += ["--templates", str((CASES / path).resolve())]
    for path in run.get("configmaps") or []:
        cmd += ["--configmaps", str((CASES / path).resolve())]
    return cmd


def run_case(case: str, folder: Path, port_lock: threading.Lock) -> Outcome:
    spec = yaml.safe_load((CASES / f"{case}.expected.yaml").read_text())
    timeout = float((spec.get("run") or {}).get("timeout") or 60)
    folder.mkdir(parents=True)
    uses_ports = any(port in (CASES / f"{case}.yaml").read_text() for port in PORTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    with port_lock if uses_ports else _no_lock():
        started = time.monotonic()
        proc = subprocess.Popen(command(case, spec), cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        code: int | None
        try:
            output, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and every task it started
            output, _ = proc.communicate()
            code = None
        seconds = time.monotonic() - started
    documents = sorted((folder / ".mlops" / "runs").glob("*/run.json"))
    document = json.loads(documents[-1].read_text()) if documents else None
    return Outcome(code, output, document, len(documents), seconds)


class _no_lock:  # noqa: N801 - a context manager standing in for a lock
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="session")
def outcomes(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Every selected case, run once, a few at a time; cases using the suite's ports one after another."""
    root = tmp_path_factory.mktemp("conformance")
    lock = threading.Lock()
    engine = api.engine_available()
    selected = {item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_case" and hasattr(item, "callspec")}
    wanted = [c for c in case_names() if c in selected and (engine or "refuse" in _expected(c)["expect"])]
    with ThreadPoolExecutor(WORKERS) as pool:
        yield {case: pool.submit(run_case, case, root / case, lock) for case in wanted}


def _expected(case: str) -> dict[str, Any]:
    return dict(yaml.safe_load((CASES / f"{case}.expected.yaml").read_text()))


@pytest.mark.parametrize("case", [c for c in case_names() if "refuse" not in _expected(c)["expect"]])
def test_case_is_not_refused(case: str) -> None:
    """What Argo runs is not refused up front: the checks (validation, refusals) pass every case that runs."""
    xfail_if_known(case)
    assert [str(r) for r in prepared_case(case).report.refusals] == []


@pytest.mark.parametrize("case", case_names())
def test_case(case: str, outcomes: dict[str, Any]) -> None:
    expect = _expected(case)["expect"]
    xfail_if_known(case)
    if "refuse" not in expect and not api.engine_available():
        pytest.skip("the engine (workflows/local/engine/operator.py and executor.py) is not there yet")
    outcome: Outcome = outcomes[case].result()
    assert outcome.code is not None, f"{case} did not finish within its timeout:\n{outcome.output[-3000:]}"
    if "refuse" in expect:
        assert_refused(expect["refuse"], outcome)
    else:
        assert outcome.document is not None, f"no run.json (exit {outcome.code}):\n{outcome.output[-3000:]}"
        assert_run(expect, outcome.document)
        assert outcome.code == (0 if expect["phase"] == "Succeeded" else 1), outcome.output[-3000:]


def assert_refused(refusals: list[dict[str, str]], outcome: Outcome) -> None:
    assert outcome.code == 2, outcome.output
    assert outcome.runs == 0, "a refused workflow ran"
    for refusal in refusals:
        assert refusal["template"] in outcome.output, (refusal, outcome.output)
        if refusal.get("field"):
            assert refusal["field"] in outcome.output, (refusal, outcome.output)


def assert_run(expect: dict[str, Any], document: dict[str, Any]) -> None:
    nodes = {node["displayName"]: node for node in document["nodes"].values()}
    assert document["phase"] == expect["phase"], (document["phase"], document["message"])
    if "message" in expect:
        assert document["message"] == expect["message"]
    for name, wanted in (expect.get("nodes") or {}).items():
        assert name in nodes, f"no node {name!r} (nodes: {sorted(nodes)})"
        assert_node(name, wanted, nodes[name])
    if expect.get("complete"):
        assert sorted(nodes) == sorted(expect["nodes"])
    for name in expect.get("absent") or []:
        assert name not in nodes
    wanted_outputs = (expect.get("workflow_outputs") or {}).get("parameters") or {}
    for name, value in wanted_outputs.items():
        assert document["globalOutputs"]["parameters"].get(name) == value, name
    for key in ("labels", "annotations"):  # the Workflow's metadata when it ended (workflowMetadata, patches)
        for name, value in (expect.get(key) or {}).items():
            assert document[key].get(name) == value, f"{key}.{name}: {document[key]}"
    for rule in expect.get("order") or []:
        assert_order(rule, nodes)


def assert_node(name: str, wanted: dict[str, Any], node: dict[str, Any]) -> None:
    got = {"phase": node["phase"], "type": node["type"], "message": node["message"]}
    for key in ("phase", "type", "message"):
        if key in wanted:
            assert got[key] == wanted[key], f"{name}.{key}: {got[key]!r} != {wanted[key]!r} ({node['message']!r})"
    for name_, value in ((wanted.get("inputs") or {}).get("parameters") or {}).items():
        assert node["inputs"]["parameters"].get(name_) == value, f"{name}.inputs.parameters.{name_}"
    outputs = wanted.get("outputs") or {}
    for name_, value in (outputs.get("parameters") or {}).items():
        assert node["outputs"]["parameters"].get(name_) == value, f"{name}.outputs.parameters.{name_}"
    if "result" in outputs:
        assert node["outputs"].get("result") == outputs["result"], f"{name}.outputs.result"
    if "exitCode" in outputs:
        assert node["outputs"].get("exitCode") == outputs["exitCode"], f"{name}.outputs.exitCode"
    if "memoized" in wanted:
        assert node["memoized"] == wanted["memoized"], f"{name}.memoized"


def assert_order(rule: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> None:
    if "before" in rule:
        first, then = nodes[rule["before"]], nodes[rule["after"]]
        assert first["finishedAt"] <= then["startedAt"], rule
    for i, a in enumerate(rule.get("not_concurrent") or []):
        for b in (rule.get("not_concurrent") or [])[i + 1:]:
            x, y = nodes[a], nodes[b]
            assert x["finishedAt"] <= y["startedAt"] or y["finishedAt"] <= x["startedAt"], (a, b)
