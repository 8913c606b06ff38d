"""The README's screenshots, from a finished `mlops demo`, each page opened as Argo's artifact viewer serves it (its
Content-Security-Policy, tests/support/browser.py) in headless Chromium at 1280 px, the first screen or two of it:

    .venv/bin/python docs/screenshots.py mlops-demo

writes docs/screenshots/gate.png (the gate report of the drift retrain, v2 against v1), drift.png (the drift check
that called the webhook), registry.png (the registry page) and run.png (the drift retrain's run.html), or into
`--out DIR`. A page that shows a problem (a blocked picture, a console error, overflow, a link to a missing file)
stops the script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
WIDTH, HEIGHT = 1280, 1500  # one tall screen: the verdict and what follows it


def pages(demo: Path) -> dict[str, tuple[Path, str]]:
    """Each screenshot's folder (served as Argo serves an artifact folder) and page in it."""
    retrain = _retrain_run(demo)
    gate = sorted(retrain.glob("artifacts/**/gate-report/index.html")) or sorted(
        retrain.glob("pods/*-gate-*/volumes/emptyDir/tmp/gate-report/index.html"))
    found = {"drift": (demo / "reports" / "drift", "index.html"),
             "registry": (demo / "reports" / "registry", "index.html"),
             "run": (retrain, "run.html")}
    if gate:
        found["gate"] = (gate[-1].parent, "index.html")
    return {name: (folder, page) for name, (folder, page) in sorted(found.items()) if (folder / page).is_file()}


def _retrain_run(demo: Path) -> Path:
    """The run folder of the drift retrain (the version 2 it registered): the demo's most telling run."""
    runs = sorted((demo / ".mlops" / "runs").glob("*/run.json"))
    if not runs:
        raise SystemExit(f"{demo}: no run folder in .mlops/runs: give the folder of a finished `mlops demo`")
    for path in runs:
        document = json.loads(path.read_text(encoding="utf-8"))
        version = ((document.get("tasks") or {}).get("register") or {}).get("outputs", {}).get("parameters", {})
        if version.get("version") == "2":
            return path.parent
    return runs[-1].parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="the folder of a finished `mlops demo` (default name: mlops-demo)")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNGs (default docs/screenshots)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # tests.support.browser: run from a checkout
    from tests.support.browser import browser, check_page, serve_like_argo

    found = pages(args.demo.resolve())
    for name in ("gate", "drift", "registry", "run"):
        if name not in found:
            print(f"screenshots: {name}: no page in {args.demo} (skipped)", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        for name, (folder, page) in found.items():
            target = args.out / f"{name}.png"
            with serve_like_argo(folder) as base:
                check = check_page(chromium, base + page, width=WIDTH, height=HEIGHT, screenshot=target,
                                   full_page=False)
            if check.problems():
                print(f"screenshots: {name}: {folder / page}: {check.problems()}", file=sys.stderr)
                return 1
            print(f"{target}: {folder / page} ({target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
