"""Run a conformance case (tests/workflows/local/conformance/) through the engine's entry point and compare the
result with its expectation: the harness the controller's tests share."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from workflows.local.engine.executor import LocalExecutor
from workflows.local.engine.nodes import Node, NodeTree
from workflows.local.engine.operator import Result, run_workflow
from workflows.local.engine.pods import Executor
from workflows.local.templates import TemplateStore

CASES = Path(__file__).resolve().parents[1] / "conformance" / "cases"


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail the test with TimeoutError after `seconds` (the engine stops its pods on the way out)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"not done within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def case_files() -> list[Path]:
    return sorted(p for p in CASES.glob("*.yaml") if not p.name.endswith(".expected.yaml"))


def expectation(case: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(case.with_name(case.stem + ".expected.yaml").read_text()))


def run_case(case: Path, run_dir: Path, state_dir: Path) -> Result:
    spec = expectation(case)
    run = spec.get("run") or {}
    store = TemplateStore.load([CASES / t for t in run.get("templates") or []])
    config_maps: dict[str, Any] = {}
    for path in run.get("configmaps") or []:
        for doc in yaml.safe_load_all((CASES / path).read_text()):
            if doc:
                config_maps[doc["metadata"]["name"]] = doc
    workflow = yaml.safe_load(case.read_text())
    params = {k: str(v) for k, v in (run.get("parameters") or {}).items()}
    return run_workflow(workflow, parameters=params, run_dir=run_dir,
                        executor=_executor(run_dir, workflow, config_maps), templates=store,
                        config_maps=config_maps, state_dir=state_dir)


def _executor(run_dir: Path, workflow: dict[str, Any], config_maps: dict[str, Any]) -> Executor:
    """The local executor (sandbox, volumes, artifacts) as `mlops run` builds it."""
    claims = tuple(str((c.get("metadata") or {}).get("name"))
                   for c in (workflow.get("spec") or {}).get("volumeClaimTemplates") or [])
    return LocalExecutor(run_dir, config_maps=config_maps, claims=claims)


def _outputs(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": {}, "result": None, "exitCode": None}
    if node.outputs is not None:
        out["parameters"] = {p.name: p.value for p in node.outputs.parameters}
        out["result"] = node.outputs.result
        out["exitCode"] = node.outputs.exit_code
    return out


def differences(result: Result, expected: dict[str, Any]) -> list[str]:
    """What differs from the case's expectation (empty when it holds)."""
    expect = expected["expect"]
    found: list[str] = []
    if result.phase != expect.get("phase"):
        found.append(f"workflow phase {result.phase} ({result.message}), expected {expect.get('phase')}")
    if "message" in expect and result.message != expect["message"]:
        found.append(f"workflow message {result.message!r}, expected {expect['message']!r}")
    nodes = _by_display(result.nodes)
    for display, want in (expect.get("nodes") or {}).items():
        node = nodes.get(str(display))
        if node is None:
            found.append(f"no node {display}; nodes: {sorted(nodes)}")
            continue
        for key in ("phase", "type", "message"):
            if key in want and str(want[key]) != getattr(node, key):
                found.append(f"{display}: {key} {getattr(node, key)!r}, expected {want[key]!r}")
        if want.get("memoized") is not None and bool(want["memoized"]) != node.memoized:
            found.append(f"{display}: memoized {node.memoized}")
        for name, value in ((want.get("inputs") or {}).get("parameters") or {}).items():
            got = next((p.value for p in node.inputs.parameters if p.name == name), "<absent>")
            if got != str(value):
                found.append(f"{display}: input {name} {got!r}, expected {value!r}")
        outs = _outputs(node)
        for key, value in (want.get("outputs") or {}).items():
            if key == "parameters":
                for name, v in value.items():
                    if outs["parameters"].get(name, "<absent>") != str(v):
                        found.append(f"{display}: output {name} {outs['parameters'].get(name, '<absent>')!r}, "
                                     f"expected {v!r}")
            elif (None if value is None else str(value)) != outs[key]:
                found.append(f"{display}: {key} {outs[key]!r}, expected {value!r}")
    if expect.get("complete"):
        extra = sorted(set(nodes) - {str(k) for k in expect.get("nodes") or {}})
        if extra:
            found.append(f"unexpected nodes {extra}")
    for display in expect.get("absent") or []:
        if display in nodes:
            found.append(f"node {display} should not exist")
    for name, value in ((expect.get("workflow_outputs") or {}).get("parameters") or {}).items():
        param = result.outputs.parameter(name)
        if param is None or param.value != str(value):
            found.append(f"workflow output {name} {param.value if param else None!r}, expected {value!r}")
    for rule in expect.get("order") or []:
        if "before" in rule:
            a, b = nodes.get(rule["before"]), nodes.get(rule["after"])
            if a is None or b is None or (a.finished_at or 0) > (b.started_at or 0) + 0.5:
                found.append(f"order: {rule}")
        elif "not_concurrent" in rule:
            spans = [(nodes[n].started_at or 0, nodes[n].finished_at or 0) for n in rule["not_concurrent"]
                     if n in nodes]
            spans.sort()
            if any(spans[i][1] > spans[i + 1][0] + 0.05 for i in range(len(spans) - 1)):
                found.append(f"order: {rule}")
    return found


def _by_display(tree: NodeTree) -> dict[str, Node]:
    return {n.display_name: n for n in tree.nodes.values()}


def node(result: Result, name: str) -> Node:
    """The node of that name, which must exist."""
    found = result.nodes.by_name(name)
    assert found is not None, f"no node {name}: {sorted(n.name for n in result.nodes.nodes.values())}"
    return found


def output(found: Node, name: str) -> str | None:
    """An output parameter's value (None when absent)."""
    param = found.outputs.parameter(name) if found.outputs is not None else None
    return param.value if param is not None else None
