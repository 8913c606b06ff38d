"""What each task used, as the local runner measures it (workflows/local/engine/sandbox.py, os.wait4 of the task's
process): its peak resident memory and CPU time in run.json's tasks, Argo's resourcesDuration on its Pod node, and
on the line `mlops run` prints when the task ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.documents import NodeRecord
from tests.support.workflows import Ran, container, run_file, workflow
from workflows.local.engine.sandbox import Process, bwrap, usage_path
from workflows.local.progress import report_lines

MiB = 2**20
# Writes every byte of 200 MiB, so the pages are resident (not a lazily mapped zero page).
ALLOCATE = "data = b'x' * (200 * 1024 * 1024); print(len(data))"


def _run(tmp_path: Path, doc: dict[str, Any]) -> Ran:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return run_file(path, tmp_path)


# A template with an output parameter needs its own /tmp: its command runs under bubblewrap, whose own process
# the runner waits for, so the command's memory must reach the runner through bwrap's wait.
VARIANTS = [
    pytest.param({}, id="direct"),
    pytest.param({"outputs": {"parameters": [{"name": "n", "valueFrom": {"path": "/tmp/n"}}]}}, id="in-bwrap",
                 marks=pytest.mark.skipif(bwrap() is None, reason="needs bubblewrap")),
]


def _run_as_a_user(tmp_path: Path, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`mlops run --from FILE` in its own process, as a user starts it: Linux counts the pages a forked process
    starts with (its parent's) in its peak, so a task forked by this test process (hundreds of MiB of test
    suite) would show this process's memory, not its own. `mlops run` itself holds about 40 MiB."""
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "workflows", "run", "--from", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    run_json = sorted((tmp_path / ".mlops" / "runs").glob("*/run.json"))[-1]
    return json.loads(run_json.read_text()), output


@pytest.mark.parametrize("outputs", VARIANTS)
def test_run_json_records_each_tasks_peak_memory(tmp_path: Path, outputs: dict[str, Any]) -> None:
    """A task that allocates 200 MiB shows at least 200 MiB, one that allocates nothing far less; both their CPU
    time; their Pod nodes carry Argo's resourcesDuration; the line printed when each ended says the same."""
    write = "open('/tmp/n', 'w').write('1')" if outputs else "pass"
    big = container("big", f"{ALLOCATE}\n{write}", **outputs)
    small = container("small", write, **outputs)
    document, output = _run_as_a_user(tmp_path, workflow([{"name": "big", "template": "big"},
                                                          {"name": "small", "template": "small"}], [big, small]))
    assert document["phase"] == "Succeeded", output
    tasks = document["tasks"]
    assert tasks["big"]["maxRSSBytes"] >= 200 * MiB
    assert tasks["small"]["maxRSSBytes"] < 100 * MiB
    assert tasks["big"]["cpuSeconds"] > 0
    pods = {n["displayName"]: n for n in document["nodes"].values() if n["type"] == "Pod"}
    assert set(pods["big"]["resourcesDuration"]) == {"cpu", "memory"}
    big_line = next(line for line in output.splitlines() if " big " in line and "Succeeded" in line)
    assert "peak memory 2" in big_line and "MiB" in big_line  # 200-299 MiB


def test_a_failed_task_still_records_its_peak_memory(tmp_path: Path) -> None:
    """Memory is what an out-of-memory failure is about: a failing task's record keeps it."""
    failing = container("failing", f"{ALLOCATE}\nraise SystemExit(3)")
    ran = _run(tmp_path, workflow([{"name": "failing", "template": "failing"}], [failing]))
    assert ran.result.phase == "Failed"
    task = json.loads((ran.result.run_dir / "run.json").read_text())["tasks"]["failing"]
    assert task["exitCode"] == 3
    assert task["maxRSSBytes"] >= 200 * MiB


def test_a_process_reports_its_peak_memory_once_reaped(tmp_path: Path) -> None:
    """Process.usage and the usage file beside its stdout, which run.json reads."""
    process = Process([sys.executable, "-c", ALLOCATE], {}, tmp_path / "main.stdout", tmp_path / "main.stderr")
    assert process.wait(60) == 0
    assert process.usage is not None and process.usage["maxRSSBytes"] >= 200 * MiB
    assert json.loads(usage_path(tmp_path / "main.stdout").read_text()) == process.usage
    assert usage_path(tmp_path / "main.stdout").name == "main.usage.json"


def test_the_run_summary_lists_each_tasks_peak_memory() -> None:
    """`mlops run`'s closing summary: one line with every measured task's peak memory and CPU time."""
    def task(**usage: Any) -> NodeRecord:
        record: NodeRecord = {"template": "t", "phase": "Succeeded", "message": "", "exitCode": 0, "attempts": 1,
                              "duration": 1.0, "outputs": {"parameters": {}, "artifacts": {}}, "log": ""}
        record.update(usage)  # type: ignore[typeddict-item]
        return record

    lines = report_lines({"validate": task(maxRSSBytes=int(1.5 * 2**30), cpuSeconds=3.04),
                          "register": task(maxRSSBytes=80 * MiB, cpuSeconds=0.5), "suspend": task()}, {})
    assert "Peak memory (CPU time): validate 1.50 GiB (3.0 s), register 80 MiB (0.5 s)" in lines
