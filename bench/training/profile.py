"""Where each step's time goes: during one `mlops run training`, each step's Python process (`python -m
steps.<name>`) is sampled by py-spy from the moment the bench's poller sees it (bench/training/measure.py; py-spy's
own --subprocesses misses processes that bubblewrap starts and then turns into Python), then per step the functions
holding the most samples on their own (self) and, among argo-mlops' own functions, those most often on the stack
(inclusive), as shares of the step's samples. py-spy is not a dependency of the project:
`.venv/bin/pip install py-spy`."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
RATE = 50  # samples per second


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def sample(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on a running process until it exits, raw (collapsed) stacks to `out`; --nonblocking: the process is
    never paused, so the profile costs it no time (at the price of a rare torn stack)."""
    return subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking",
                             "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def summarize(folder: Path, top: int = 8) -> dict[str, Any]:
    """Per step (the `<step>-<pid>.txt` files of `folder`): sampled seconds, the share spent importing modules,
    the top functions by self samples, and argo-mlops' functions (below the step's entry point) by inclusive
    samples."""
    steps: dict[str, dict[str, Any]] = {}
    for raw in sorted(folder.glob("*.txt")):
        name = raw.stem.rsplit("-", 1)[0]
        step = steps.setdefault(name, {"samples": 0, "imports": 0, "self": Counter(), "inclusive": Counter()})
        entry = {f"<module> (steps/{name}.py)", f"main (steps/{name}.py)", "run (steps/_core/errors.py)"}
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            names = [_name(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            step["samples"] += count
            if any(n.startswith("_find_and_load ") for n in names):
                step["imports"] += count
            if names:
                step["self"][names[-1]] += count
            for frame in set(names) - entry:
                if frame.split(" (", 1)[-1].startswith(("steps/", "workflows/")):
                    step["inclusive"][frame] += count
    return {name: {"sampled_seconds": round(s["samples"] / RATE, 1),
                   "import_share": round(s["imports"] / s["samples"], 3),
                   "self": [[f, round(c / s["samples"], 3)] for f, c in s["self"].most_common(top)],
                   "inclusive_own_code": [[f, round(c / s["samples"], 3)]
                                          for f, c in s["inclusive"].most_common(top)]}
            for name, s in sorted(steps.items()) if s["samples"]}


def _name(frame: str) -> str:
    """`function (path)` with the path from the package on (site-packages/ or the checkout cut off)."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", "/steps/", "/workflows/", "/bench/"):
        if marker in path:
            cut = path.split(marker, 1)[1]
            path = cut if marker in ("site-packages/", "/lib/python3.11/") else marker.strip("/") + "/" + cut
            break
    return f"{match.group('func')} ({path})"
