"""What the demo shows of the processes it runs: the workflow the Sensor started, its log's lines and its canary's
steps as they come, and the last lines of a log when something fails."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from workflows.demo.workspace import DemoError

RUN_FOLDER = re.compile(r"^mlops run: \S+ \((\S+)/workflow\.yaml\)")  # `mlops run`'s first line names its folder


def follow_events_run(webhook: str, events: subprocess.Popen[str], events_log: Path, folder: Path,
                      say: Callable[[str, bool], None], timeout: float = 300) -> tuple[str, Path]:
    """Follow the workflow the Sensor of `mlops events serve` (at `webhook`, state in `folder`/events) started:
    its log's lines as they come, and the rollout task's steps, until it ends. Returns its name and log."""
    deadline = time.monotonic() + timeout
    name, shown, log = None, 0, None
    run_folder, rollout_shown = None, 0
    while time.monotonic() < deadline:
        if events.poll() is not None:
            raise DemoError(f"mlops events serve exited ({events.returncode}): {tail(events_log)}")
        with urllib.request.urlopen(f"{webhook}/runs", timeout=5) as answer:
            runs: dict[str, str] = json.load(answer)["runs"]
        if runs and name is None:
            name = next(iter(runs))
            log = folder / "events" / f"{name}.log"
            say(f"workflow {name} (log: {relative(log)})", False)
        if name is not None and log is not None and log.is_file():
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            finished = runs.get(name, "").startswith(("Succeeded", "Failed"))
            upto = len(lines) if finished else max(shown, len(lines) - 1)  # the last line may be partial
            for line in lines[shown:upto]:
                say(line, True)
                found = RUN_FOLDER.search(line)
                if found and run_folder is None:
                    run_folder = folder / found.group(1)  # the run folder: its rollout pod's output
            shown = upto
            # The canary is one long task: show its steps and measurements as they happen.
            if run_folder is not None:
                steps = [line for output in sorted(run_folder.glob("pods/*-rollout-*/main.std*"))
                         for line in output.read_text(encoding="utf-8", errors="replace").splitlines()
                         if line.startswith("rollout:")]
                for line in steps[rollout_shown:]:
                    say("  " + line, True)
                rollout_shown = len(steps)
            if finished:
                if not runs[name].startswith("Succeeded"):
                    raise DemoError(f"the retrain {name} {runs[name]}; see {log}")
                return name, log
        time.sleep(0.3)
    raise DemoError(f"the retrain did not finish within {timeout:.0f}s")


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
