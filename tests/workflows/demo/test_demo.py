"""`mlops demo`, run as a user runs it: from a folder with no checkout in it, as a real process tree.

The first run is interrupted with Ctrl-C (SIGINT) while the drift-triggered retrain is running: every process it
started must be gone and the registry must read cleanly. The second run, in the same folder, starts afresh and goes
through the whole loop to the registry table.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from steps._storage.registry import Registry
from tests.support.browser import check_report
from workflows.demo import workspace

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MARK = "ARGO_MLOPS_DEMO_TEST"  # set in the demo's environment; every process it starts inherits it


@dataclass
class Finished:
    code: int
    out: str
    seconds: float


def start(cwd: Path, mark: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, MARK: mark}
    env.pop("PROMETHEUS_URL", None)

    command = [sys.executable, "-m", "workflows", "demo"]
    if sigint_ignored:  # what a shell does to `mlops demo &`: SIGINT ignored, and inherited so through exec
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def alive_with_mark(mark: str) -> list[str]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if f"{MARK}={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {command[:160]}")
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anywhere")  # not the checkout: the policy and templates come with the package


@pytest.fixture(scope="module")
def interrupted(folder: Path) -> Finished:
    """The demo, Ctrl-C'd in its busiest moment: the Sensor's retrain is canarying v2 on the local deployment.
    Started as a shell starts a background job (SIGINT ignored): its processes must still clean up on SIGINT."""
    mark = uuid.uuid4().hex
    process = start(folder, mark, sigint_ignored=True)
    lines: list[str] = []
    canary_started = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "rollout: step 1: canary v2 at weight 10" in line:
                canary_started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.monotonic()
    assert canary_started.wait(timeout=300), "the canary never started:\n" + "".join(lines[-40:])
    time.sleep(1)  # a deployment with two servers, the Sensor, a training run and its rollout task are up
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    reader.join(timeout=10)
    left = alive_with_mark(mark)
    assert not left, "processes left running after Ctrl-C:\n" + "\n".join(left)
    return Finished(code, "".join(lines), time.monotonic() - started)


@pytest.fixture(scope="module")
def full(folder: Path, interrupted: Finished) -> Finished:
    mark = uuid.uuid4().hex
    started = time.monotonic()
    process = start(folder, mark)
    out, _ = process.communicate(timeout=600)
    assert not alive_with_mark(mark)
    return Finished(process.returncode, out, time.monotonic() - started)


def test_ctrl_c_stops_every_process_and_leaves_the_registry_readable(folder: Path, interrupted: Finished) -> None:
    assert interrupted.code == 130, interrupted.out[-3000:]
    assert "nothing is left running" in interrupted.out
    assert "did not stop on SIGINT" not in interrupted.out, interrupted.out[-2000:]  # each cleaned up, none killed
    registry = Registry.open(str(folder / workspace.DEFAULT_DIR / "registry"))
    versions = registry.versions("fraud-detection")
    # The canary was cut short: v1 stays in production, v2 is a candidate that was never promoted.
    assert [v["version"] for v in versions] == [1, 2] and registry.production("fraud-detection") == 1
    assert versions[1]["status"] in ("canary", "rejected", "staged"), versions[1]


def test_the_demo_runs_the_whole_loop_and_ends_with_the_registry_table(folder: Path, full: Finished) -> None:
    out = full.out
    assert full.code == 0, out[-5000:]
    # Round 1: v1 in production, drift found in the served traffic, the webhook's Sensor retrains, v2 canaried.
    assert "v1 is in production" in out
    assert re.search(r"drift: fraud-detection v1: \d+ of 23 features drifted .*trigger sent", out)
    assert "the Sensor submitted the training workflow" in out
    assert re.search(r"rollout: step 1: canary v2 at weight 10", out) and "weight 30" in out and "weight 60" in out
    assert "v2 passed its gates and the canary, and is in production" in out
    # Round 2: the bad candidate is rejected by a gate while v2 keeps serving without an error.
    assert "round 2" in out and re.search(r"v3 was rejected: .*pr_auc", out)
    assert re.search(r"v2 kept serving throughout: [1-9]\d* answers, 0 errors during round 2", out)
    # The registry table: v1 archived, v2 production, v3 rejected, each with its trigger.
    table = out[out.index("the registry:"):]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\s+(v\d+)\s+.*$", table, re.MULTILINE)}
    assert set(rows) == {"v1", "v2", "v3"}
    assert "archived" in rows["v1"] and "production" in rows["v2"] and "rejected" in rows["v3"]
    assert "automated_drift_detection" in rows["v2"] and "manual" in rows["v3"]
    # Every report it names exists.
    reports = re.findall(r"^  [^:\n]+: (\S+)$", out[out.index("reports:"):], re.MULTILINE)
    assert len(reports) >= 8 and all((folder / r).exists() for r in reports), reports
    assert any(r.endswith("drift/index.html") for r in reports)
    assert any(r.endswith("gate-report/index.html") for r in reports)


def test_the_demo_ends_with_the_path_of_its_page_linking_every_run_and_report(folder: Path, full: Finished) -> None:
    assert full.code == 0
    last = full.out.rstrip().splitlines()[-1]
    assert last.startswith("the demo's page: "), full.out[-2000:]
    index = folder / last.removeprefix("the demo's page: ")
    assert index == folder / workspace.DEFAULT_DIR / "index.html"
    checks = check_report(index.parent, index.name)
    for check in checks:  # nothing blocked, no overflow, no link to a missing file, at 1000 and 1920 px
        assert check.problems() == [], (check.width, check.problems())
    text = checks[0].text
    assert text.split("\n", 1)[1].lstrip().startswith("The loop ran: v2 of fraud-detection is in production")
    assert "v1 archived, v2 production, v3 rejected" in text
    html = index.read_text()
    runs = re.findall(r"href='(\.mlops/runs/[^']+/run\.html)'", html)
    assert len(runs) == 3, runs  # v1 by hand, v2 by the Sensor, v3 by hand
    assert "href='reports/registry/index.html'" in html and "href='reports/drift/index.html'" in html
    assert len(re.findall(r"href='[^']+/gate-report/index\.html'", html)) == 3
    # Each run's page opens as cleanly, its phase first: the rejected v3 failed, the other two succeeded.
    phases = []
    for run in runs:
        narrow, wide = check_report(index.parent, run)
        assert narrow.problems() == [] and wide.problems() == [], (run, narrow.problems(), wide.problems())
        phases.append(narrow.text.split("\n", 1)[1].lstrip().split()[0])
    assert sorted(phases) == ["Failed", "Succeeded", "Succeeded"], phases


def test_the_readme_screenshots_are_shot_from_a_finished_demo(folder: Path, full: Finished, tmp_path: Path) -> None:
    """docs/screenshots.py, as the README runs it, on this demo: four pages, none with a problem, each light."""
    assert full.code == 0
    script = Path(__file__).resolve().parents[3] / "docs" / "screenshots.py"
    shot = subprocess.run([sys.executable, str(script), str(folder / workspace.DEFAULT_DIR), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert shot.returncode == 0, shot.stdout + shot.stderr
    pngs = {p.name: p.stat().st_size for p in tmp_path.glob("*.png")}
    assert set(pngs) == {"gate.png", "drift.png", "registry.png", "run.png"}, shot.stdout + shot.stderr
    assert all(size < 400 * 1024 for size in pngs.values()), pngs


def test_a_second_run_started_afresh_in_the_same_folder(folder: Path, full: Finished) -> None:
    assert full.code == 0
    registry = Registry.open(str(folder / workspace.DEFAULT_DIR / "registry"))
    assert [v["version"] for v in registry.versions("fraud-detection")] == [1, 2, 3]  # not 2, 3, 4


def test_a_folder_that_is_not_a_demo_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code = subprocess.run([sys.executable, "-m", "workflows", "demo", "--dir", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert code.returncode != 0 and "not empty and not a demo folder" in code.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_demo_that_stops_leaves_its_page_with_what_ran(tmp_path: Path) -> None:
    """v1 trained on shuffled labels is rejected, so the loop cannot go on: the demo says why and where its page is,
    and that page (a failed verdict first) links the run that failed, with its logs."""
    from steps._core.data import generate, write_frame

    frame = generate(5000, seed=3)
    write_frame(frame, tmp_path / "current.csv")
    frame["is_fraud"] = frame["is_fraud"].sample(frac=1.0, random_state=3).to_numpy()
    write_frame(frame, tmp_path / "reference.csv")
    done = subprocess.run([sys.executable, "-m", "workflows", "demo", "--reference", "reference.csv",
                           "--current", "current.csv"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 1 and "v1 was not promoted" in done.stderr, done.stderr[-3000:]
    index = tmp_path / workspace.DEFAULT_DIR / "index.html"
    assert f"what ran, with its logs: {index}" in done.stderr
    narrow, wide = check_report(index.parent, index.name)
    assert narrow.problems() == [] and wide.problems() == [], (narrow.problems(), wide.problems())
    assert narrow.text.split("\n", 1)[1].lstrip().startswith("The demo stopped: v1 was not promoted")
    assert len(re.findall(r"href='\.mlops/runs/[^']+/run\.html'", index.read_text())) == 1
    assert "logs/run-v1.log" in narrow.text
