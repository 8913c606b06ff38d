"""What `mlops run` prints (workflows/local/progress.py): node lines, coloured only on a terminal, Argo's node
tree, and for our own templates what the reports say: the registered version, how the rollout ended, each gate's
verdict, the reports."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from steps._core.documents import NodeRecord
from workflows.local.engine.nodes import Node, NodeTree, fnv32a, node_id
from workflows.local.progress import Progress, report_lines, tree_lines
from workflows.local.record import pod_name


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Progress(Terminal()).paint("Failed", "Failed") == "\033[31mFailed\033[0m"
    assert Progress(io.StringIO()).paint("Failed", "Failed") == "Failed"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Progress(Terminal()).paint("Failed", "Failed") == "Failed"


def summary(tmp_path: Path, rollout_phase: str, rollout_message: str = "", archived: bool = False) -> str:
    """The report lines for run.json's tasks of a training run: the gate's report a folder, or the repository's
    tar.gz of it as the engine stores it."""
    reports = tmp_path / "artifacts" / "k1" / "gate-report"
    reports.mkdir(parents=True)
    (reports / "gate.json").write_text(json.dumps({
        "model": "churn", "passed": False, "candidate": {"pr_auc": 0.21}, "failed": ["pr_auc"],
        "gates": [{"name": "pr_auc", "passed": False, "value": 0.21, "bound": 0.5, "bound_kind": "minimum",
                   "note": "below the minimum"}]}))
    artifact = reports
    if archived:
        artifact = reports.with_name("gate-report.tgz")
        with tarfile.open(artifact, "w:gz") as tar:
            tar.add(reports, arcname=reports.name)

    def task(phase: str, message: str = "", parameters: dict[str, str] | None = None,
             artifacts: dict[str, str] | None = None, log: str = "") -> NodeRecord:
        return {"template": "t", "phase": phase, "message": message, "exitCode": None, "attempts": 1,
                "duration": None, "outputs": {"parameters": parameters or {}, "artifacts": artifacts or {}},
                "log": log}

    tasks = {"gate": task("Succeeded", artifacts={"gate-report": str(artifact)}),
             "register": task("Succeeded", parameters={"version": "3"}),
             "rollout": task(rollout_phase, rollout_message, log=str(tmp_path / "pods" / "rollout" / "log"))}
    return "\n".join(report_lines(tasks, {"model": "churn"})) + "\n"


@pytest.mark.parametrize("archived", [False, True], ids=["folder", "tar-gz"])
def test_the_summary_names_the_version_the_gates_and_where_the_reports_are(tmp_path: Path, archived: bool) -> None:
    out = summary(tmp_path, "Failed", "exit code 1", archived)
    assert "Registered: churn v3 (rejected)" in out
    assert f"Rollout: churn v3 not promoted: exit code 1 (see {tmp_path / 'pods' / 'rollout' / 'log'})" in out
    assert "Gate: REJECTED (failed: pr_auc)" in out
    assert "  metrics: pr_auc=0.21" in out
    assert re.search(r"^  FAIL +pr_auc: 0\.21 minimum 0\.5 \(below the minimum\)$", out, flags=re.MULTILINE), out
    shown = tmp_path / "artifacts" / "k1" / ("gate-report.tgz" if archived else "gate-report")
    assert f"  gate.gate-report: {shown} (gate.json)" in out


def test_the_summary_says_when_the_rollout_promoted_the_version(tmp_path: Path) -> None:
    assert "Rollout: churn v3 promoted to production" in summary(tmp_path, "Succeeded")
    # An omitted rollout (the gate said no) says nothing about a rollout.
    assert "Rollout:" not in summary(tmp_path / "omitted", "Omitted")


# --- the node tree, as `argo get` prints it -------------------------------------------------------------------


def _steps_tree(hello2a: str = "Succeeded") -> NodeTree:
    """The tree of Argo's steps example (docs/walk-through/steps.md): hello1, then hello2a and hello2b in parallel."""
    tree = NodeTree("steps-z2zdn")

    def add(name: str, display: str, type_: str, phase: str, parent: Node | None, boundary: str | None,
            template: str | None, start: float, finish: float, message: str = "") -> Node:
        node = Node(node_id(tree.workflow, name), name, display, type_, phase, message, template_name=template,
                    boundary_id=boundary, started_at=start, finished_at=finish)
        return tree.add(node, parent)

    root = add("steps-z2zdn", "steps-z2zdn", "Steps", "Succeeded", None, None, "hello-hello-hello", 100, 106)
    g0 = add("steps-z2zdn[0]", "[0]", "StepGroup", "Succeeded", root, root.id, None, 100, 102)
    add("steps-z2zdn[0].hello1", "hello1", "Pod", "Succeeded", g0, root.id, "print-message", 100, 102)
    g1 = add("steps-z2zdn[1]", "[1]", "StepGroup", "Succeeded", root, root.id, None, 103, 106)
    add("steps-z2zdn[1].hello2a", "hello2a", "Pod", hello2a, g1, root.id, "print-message", 103, 106,
        "" if hello2a == "Succeeded" else "Error (exit code 1)")
    add("steps-z2zdn[1].hello2b", "hello2b", "Pod", "Succeeded", g1, root.id, "print-message", 103, 106)
    return tree


def test_the_node_tree_is_printed_as_argo_get_prints_it() -> None:
    pods = {n.display_name: pod_name("steps-z2zdn", n) for n in _steps_tree().nodes.values()}
    assert pods["hello1"] == f"steps-z2zdn-print-message-{fnv32a('steps-z2zdn[0].hello1')}"
    lines = tree_lines(_steps_tree())
    table = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert [row[0] for row in table] == ["STEP", "✔ steps-z2zdn", "├───✔ hello1", "└─┬─✔ hello2a", "└─✔ hello2b"]
    assert lines[3].startswith(" └─┬─✔ hello2a") and lines[4].startswith("   └─✔ hello2b")
    assert table[2] == ["├───✔ hello1", "print-message", pods["hello1"], "2s"]
    assert table[1] == ["✔ steps-z2zdn", "hello-hello-hello"]  # no pod, no duration for a Steps node
    header = lines[0]
    assert [header.index(c) for c in ("TEMPLATE", "PODNAME", "DURATION")] == [
        lines[2].index("print-message"), lines[2].index(pods["hello1"]), lines[2].index("2s")]


def test_a_failed_node_shows_its_glyph_and_message() -> None:
    lines = tree_lines(_steps_tree(hello2a="Failed"))
    assert lines[3].startswith(" └─┬─✖ hello2a")
    assert re.split(r"\s{2,}", lines[3])[-2:] == ["3s", "Error (exit code 1)"]
