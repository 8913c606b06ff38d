"""run.html, a local run's page, opened in a real browser as Argo's artifact viewer would serve it: the phase first,
the DAG in dependency order with each node's phase and duration, every log and artifact linked to a file that is
there, the title, description, labels and outputs the Workflow carries. On real `mlops run training` folders (a run
that succeeds and one whose candidate is rejected) and on a small DAG with a retried failure and a skipped task."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.browser import NARROW, WIDE, PageCheck, check_report
from tests.support.workflows import container, run_file, workflow
from workflows.local.engine.sandbox import bwrap
from workflows.local.runpage import RUN_HTML, TITLE, markdown, plain, write_run_page

TASKS = ["validate", "train", "gate", "register", "rollout"]


def mlops_run(cwd: Path, dataset: Path) -> Path:
    """`mlops run training` as a user runs it; returns its run folder."""
    before = set((cwd / ".mlops" / "runs").glob("*")) if (cwd / ".mlops" / "runs").exists() else set()
    subprocess.run([sys.executable, "-m", "workflows.cli", "run", "training", "-p", f"dataset={dataset}",
                    "--registry", str(cwd / "registry")], cwd=cwd, capture_output=True, text=True, timeout=600,
                   env={**os.environ, "NO_COLOR": "1"}, check=False)
    (run_dir,) = set((cwd / ".mlops" / "runs").glob("*")) - before
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real runs in one project: v1 succeeds; then a candidate trained on shuffled labels is rejected."""
    from steps._core.data import generate, write_frame

    cwd = tmp_path_factory.mktemp("project")
    frame = generate(6000, seed=5)
    write_frame(frame, cwd / "data.parquet")
    frame["is_fraud"] = frame["is_fraud"].sample(frac=1.0, random_state=3).to_numpy()
    write_frame(frame, cwd / "shuffled.parquet")
    return {"Succeeded": mlops_run(cwd, cwd / "data.parquet"), "Failed": mlops_run(cwd, cwd / "shuffled.parquet")}


def checked(run_dir: Path) -> list[PageCheck]:
    assert write_run_page(run_dir) == run_dir / RUN_HTML
    checks = check_report(run_dir, RUN_HTML)
    for check in checks:
        assert check.problems() == [], (check.width, check.problems())
    assert [c.width for c in checks] == [NARROW, WIDE]
    return checks


def after_title(check: PageCheck) -> str:
    return check.text.split("\n", 1)[1].lstrip()


def node_rows(text: str) -> list[str]:
    """The node names in the Nodes table, top to bottom (each row starts with its name)."""
    table = text[text.index("\nNodes\n"):text.index("\nParameters\n")]
    return [m.group(1) for m in re.finditer(r"^(?:↳ )?([\w.()-]+)\s*$", table, re.MULTILINE)
            if m.group(1) in TASKS or "(" in m.group(1)]


@pytest.mark.slow
def test_the_page_of_a_succeeded_training_run_shows_its_dag_logs_and_artifacts(runs: dict[str, Path]) -> None:
    run_dir = runs["Succeeded"]
    narrow, _ = checked(run_dir)
    document = json.loads((run_dir / "run.json").read_text())
    # The title annotation's text (markdown marks dropped), else the workflow's name, as in Argo's UI.
    assert narrow.title == plain((document.get("annotations") or {}).get(TITLE) or document["name"])
    assert after_title(narrow).startswith("Succeeded in "), narrow.text[:300]
    assert narrow.svgs >= 1  # the graph
    assert node_rows(narrow.text) == TASKS  # dependency order
    html = (run_dir / RUN_HTML).read_text()
    # Every pod's log is linked (the checker fetched each link: none is missing).
    logs = re.findall(r"href='(pods/[^']+/log)'", html)
    assert sorted(logs) == sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("pods/*/log"))
    assert len(logs) >= len(TASKS)
    for artifact in ("validated", "validation-report", "bundle", "holdout", "gate-report"):
        assert re.search(rf"href='artifacts/[^']+'>{artifact}\b", html), artifact
    assert "version=1" in narrow.text and "passed=true" in narrow.text  # the tasks' output parameters
    assert re.search(r"register\s+Retry · register\s+Succeeded", narrow.text)


@pytest.mark.slow
def test_the_page_of_a_rejected_candidate_says_failed_first_and_names_the_failed_task(runs: dict[str, Path]) -> None:
    narrow, wide = checked(runs["Failed"])
    for check in (narrow, wide):
        assert after_title(check).startswith("Failed in "), check.text[:300]
        assert "failed: register" in check.text.split("\n")[2]
    assert node_rows(narrow.text) == TASKS
    assert re.search(r"rollout\s+Skipped · rollout\s+Omitted", narrow.text)
    assert "passed=false" in narrow.text


@pytest.mark.slow
def test_the_title_description_labels_and_outputs_come_from_run_json(runs: dict[str, Path], tmp_path: Path) -> None:
    """What the Workflow carries on Argo (workflowMetadata's annotations and labels, the entrypoint's outputs), as
    run.json records it: the page shows the title, the description as markdown, the labels and the outputs."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs["Succeeded"], run_dir, symlinks=True)
    document = json.loads((run_dir / "run.json").read_text())
    gate_key = document["tasks"]["gate"]["outputs"]["artifacts"]["gate-report"].split("/artifacts/", 1)[1]
    document["annotations"] = {
        "workflows.argoproj.io/title": "**fraud-detection**: manual retrain",
        "workflows.argoproj.io/description": "Trained on `data.parquet` by hand.\n\n- baseline: none\n"
                                             "- see [the gate report](artifacts/" + gate_key + ")\n\n"
                                             "<script>alert(1)</script> [x](javascript:alert(1))"}
    document["labels"] = {"app.kubernetes.io/name": "fraud-detection", "argo-mlops.io/trigger": "manual",
                          "argo-mlops.io/version": "1", "argo-mlops.io/result": "promoted"}
    document["outputs"] = {"parameters": [{"name": "version", "value": "1"}, {"name": "passed", "value": "true"},
                                          {"name": "outcome", "value": "promoted"}]}
    (run_dir / "run.json").write_text(json.dumps(document))
    narrow, _ = checked(run_dir)
    assert narrow.title == "fraud-detection: manual retrain"
    assert after_title(narrow).startswith("Succeeded in ")
    assert "Trained on data.parquet by hand." in narrow.text and "baseline: none" in narrow.text
    html = (run_dir / RUN_HTML).read_text()
    assert "<code>data.parquet</code>" in html and "<li>baseline: none</li>" in html
    assert "<script>" not in html and "javascript:" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "argo-mlops.io/trigger=manual" in narrow.text and "argo-mlops.io/result=promoted" in narrow.text
    outputs = narrow.text[narrow.text.index("\nOutputs\n"):narrow.text.index("\nGraph\n")]
    assert re.search(r"version\s+parameter\s+1", outputs) and re.search(r"outcome\s+parameter\s+promoted", outputs)


@pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")
def test_a_dag_with_a_retried_failure_and_parallel_branches(tmp_path: Path) -> None:
    """Branches side by side after their common parent, a failure's attempts listed under it, the task that needed
    it omitted, the exit handler last; with no title annotation the workflow's name is the title."""
    ok = container("ok", "print('fine')")
    bad = container("bad", "import sys; print('broken'); sys.exit(3)", retryStrategy={"limit": 1})
    doc = workflow([{"name": "first", "template": "ok"},
                    {"name": "left", "template": "bad", "dependencies": ["first"]},
                    {"name": "right", "template": "ok", "dependencies": ["first"]},
                    {"name": "last", "template": "ok", "dependencies": ["left", "right"]}], [ok, bad], onExit="ok")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    ran = run_file(path, tmp_path)
    narrow, _ = checked(ran.result.run_dir)
    assert narrow.title == "tiny"
    assert after_title(narrow).startswith("Failed in ") and "failed: left" in narrow.text
    rows = [m.group(1) for m in re.finditer(r"^(?:↳ )?(first|left|right|last|left\(\d\))\s*$",
                                            narrow.text[narrow.text.index("\nNodes\n"):], re.MULTILINE)]
    assert rows == ["first", "left", "left(0)", "left(1)", "right", "last"]
    html = (ran.result.run_dir / RUN_HTML).read_text()
    assert len(re.findall(r">log</a>", html)) == 6  # first, left (its last attempt), its two attempts, right, exit
    # The exit handler comes last, its box named by what it runs.
    assert ">onExit: ok</text>" in html
    table = narrow.text[narrow.text.index("\nNodes\n"):]
    assert table.rindex("tiny.onExit") > table.index("last")
    assert re.search(r"last\s+Skipped", narrow.text) or re.search(r"last\s+\S+\s+Omitted", narrow.text)


@pytest.mark.parametrize(("text", "html"), [
    ("**bold** and *em* and `a<b`", "<p><strong>bold</strong> and <em>em</em> and <code>a&lt;b</code></p>"),
    ("- one\n- two **2**", "<ul><li>one</li><li>two <strong>2</strong></li></ul>"),
    ("1. first\n2. second", "<ol><li>first</li><li>second</li></ol>"),
    ("line one\nline two\n\nnext", "<p>line one line two</p><p>next</p>"),
    ("[docs](https://example.org/a?b=1&c=2)", "<p><a href='https://example.org/a?b=1&amp;c=2'>docs</a></p>"),
    ("see https://github.com/x/y/pull/1.", "<p>see <a href='https://github.com/x/y/pull/1'>"
                                           "https://github.com/x/y/pull/1</a>.</p>"),
    ("[click](javascript:alert(1))", "<p>click)</p>"),
    ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"),
    ("`**not bold**`", "<p><code>**not bold**</code></p>"),
    ("snake_case_name stays", "<p>snake_case_name stays</p>"),
    ("## Heading", "<h4>Heading</h4>"),
], ids=["inline", "list", "ordered", "paragraphs", "link", "bare-url", "unsafe-scheme", "raw-html", "code-first",
        "underscores", "heading"])
def test_markdown_renders_a_safe_subset(text: str, html: str) -> None:
    assert markdown(text) == html


def test_the_title_loses_its_markdown_marks() -> None:
    assert plain("**Build** and `test` [it](x)") == "Build and test it"


@pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")
def test_a_wide_fan_out_is_listed_not_drawn(tmp_path: Path) -> None:
    """Fifteen tasks side by side would be specks at 1000 px: the page says so and the table lists every one."""
    ok = container("ok", "print('fine')")
    doc = workflow([{"name": "each", "template": "ok", "withItems": list(range(15))}], [ok])
    path = tmp_path / "fan.yaml"
    path.write_text(yaml.safe_dump(doc))
    narrow, _ = checked(run_file(path, tmp_path).result.run_dir)
    assert after_title(narrow).startswith("Succeeded in ")
    assert narrow.svgs == 0 and "Not drawn: 15 nodes side by side" in narrow.text
    assert len(re.findall(r"^each\(\d+:\d+\)\s*$", narrow.text, re.MULTILINE)) == 15


def test_the_children_of_two_sibling_steps_are_drawn_under_their_own_parent() -> None:
    from workflows.local.runpage import _under_parents

    # Argo's dag-diamond-steps: B and C each fan out to echo(0:1), echo(1:2); by start time they interleave.
    rows = {0: ["B", "C"], 1: ["b0", "c0", "b1", "c1"]}
    _under_parents(rows, {"B": ["b0", "b1"], "C": ["c0", "c1"], "b0": [], "b1": [], "c0": [], "c1": []})
    assert rows == {0: ["B", "C"], 1: ["b0", "b1", "c0", "c1"]}
