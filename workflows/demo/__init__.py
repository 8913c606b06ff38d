"""`mlops demo`: the whole loop on this machine, no cluster, in about three minutes.

    mlops demo [--task binary|regression|multiclass] [--dir DIR] [--policy FILE] [--reference DATA --current DATA]
               [--rows N]

`--task` picks the reference model of that task: binary the fraud detector (the default), regression a store demand
forecast, multiclass a support-ticket router, each with its generated data and its known drift (their policies are
the examples packaged in gates/examples/; these two runs take about five minutes).

Round 1 (drift): data is generated; v1 is trained, gated, registered and put in production on a local deployment
(`mlops deploy`: a router before a stable and a canary server); traffic whose distribution has drifted is replayed
through it; the drift check reads the servers' metrics (or Prometheus, when PROMETHEUS_URL is set), finds the drift
and calls the local webhook (`mlops events serve`), whose Sensor starts the training workflow on the recent data;
v2 is gated against v1 on the same holdout and goes through the canary schedule (10 -> 30 -> 60 -> 100, analysed
at each step) and is promoted.
Round 2 (manual): a retrain started by hand (`reason=manual`) on data whose labels are shuffled: a gate rejects it,
and the stable version keeps serving all along.
It ends with the registry table and the paths of every report.

Everything is a real process running the same commands you would (`mlops run`, `mlops deploy`, `mlops events
serve`, `mlops drift check`), in DIR (default ./mlops-demo, emptied at the start of each run). The demo profile
(shorter windows, pauses and cooldowns) is written into DIR/gates/ with the policy it changes. Ctrl-C stops every
process the demo started; the registry is never left half-written (each write is create-only or a
compare-and-swap), and a second run starts afresh.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from steps._core.errors import StepError
from steps._core.policy import PolicyError
from workflows.demo.processes import STOP_GRACE_SECONDS, interrupt_on_sigterm, sigint_ignored
from workflows.demo.story import Demo
from workflows.demo.workspace import DEFAULT_DIR, DEFAULT_ROWS, TASKS, DemoError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"the demo's folder, emptied first (default ./{DEFAULT_DIR}); a non-empty folder that is not a "
                   "previous demo's is refused")
    p.add_argument("--task", choices=TASKS, help="the reference model to run the demo with: binary (fraud-detection, "
                   "the default), regression (demand-forecast) or multiclass (ticket-triage); with --policy, the "
                   "policy's model.task must be this one")
    p.add_argument("--policy", type=Path, help="the policy to run the demo with (default: the one packaged with "
                   "argo-mlops for --task, the fraud detector)")
    p.add_argument("--reference", help="training data for v1 (with --current; default: generated)")
    p.add_argument("--current", help="recent, drifted data: replayed as traffic, and v2 trains on it")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                   help=f"rows of each generated dataset (default {DEFAULT_ROWS})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (args.reference is None) != (args.current is None):
        print("mlops demo: error: give both --reference and --current, or neither", file=sys.stderr)
        return 2
    if args.rows < 1000:
        print(f"mlops demo: error: --rows {args.rows}: must be at least 1000", file=sys.stderr)
        return 2
    demo = Demo(args, lambda line: print(line, flush=True))
    code = 1
    # Started in the background by a shell (`mlops demo &`, nohup, CI), SIGINT arrives ignored, and an ignored
    # signal stays ignored in every child: then no command would clean up on the demo's SIGINT. A handled one is
    # reset to the default in the children, which then clean up on it as on Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with interrupt_on_sigterm():
        try:
            code = demo.run()
        except KeyboardInterrupt:
            code = 130
            print("\nmlops demo: interrupted; stopping everything it started", file=sys.stderr, flush=True)
        except (DemoError, PolicyError, StepError) as err:
            code = 1 if isinstance(err, DemoError) else 2
            print(f"mlops demo: error: {err}", file=sys.stderr, flush=True)
            if isinstance(err, DemoError) and demo.model is not None:  # what ran so far, to look into
                try:
                    page = demo.write_page(f"The demo stopped: {err}", "fail")
                    print(f"mlops demo: what ran, with its logs: {page}", file=sys.stderr, flush=True)
                except (OSError, StepError) as page_err:
                    print(f"mlops demo: warning: its page was not written: {page_err}", file=sys.stderr, flush=True)
        finally:
            with sigint_ignored():
                stopped, killed = demo.stop()
            if killed:
                print(f"mlops demo: {killed} processes did not stop on SIGINT within {STOP_GRACE_SECONDS:.0f}s and "
                      "were killed", file=sys.stderr, flush=True)
            if code == 130:
                print(f"mlops demo: stopped {stopped} processes; nothing is left running. The next `mlops demo` "
                      "starts afresh.", file=sys.stderr, flush=True)
    return code
