"""Deploy step: the long-lived local deployment that the rollout step's local target drives.

    mlops deploy [--model M] [--registry LOC] [--port P] [--host H] [--print-scrape-config]
    python -m steps.deploy (the same)

One router on one port in front of two `python -m steps.serve` processes, as Argo Rollouts puts a stable and a
canary ReplicaSet behind one Service:
- /v1/... and /v2/... (predict, infer, health, metadata) go to the stable or the canary server by weight (a
  smooth weighted round robin, so 10% means every tenth request); the answer says who served it in the headers
  X-Model-Role and X-Model-Version.
- /metrics/stable and /metrics/canary: each server's own Prometheus metrics (what the analysis reads); an empty
  exposition while that role has no server, so a Prometheus scraping them stays up between canaries.
  `--print-scrape-config` prints the Prometheus scrape configuration that adds the `role` label to them, as the
  PodMonitor's relabelling does in the cluster.
- the control endpoint: GET /control/status; POST /control/stable {"version"} (start and health-check a new
  stable), /control/canary {"version", "weight"}, /control/weight {"weight"}, /control/promote (the canary
  becomes stable), /control/abort (the canary stops; the stable keeps serving). Bodies and answers are JSON.
  Only for `Authorization: Bearer <token>` (else 401): a token made at each start, kept while it runs in
  ~/.mlops/deploy/<port>.token (readable by its user only), where the rollout step and `mlops demo` find it from
  the port of their URL ($MLOPS_DEPLOY_TOKEN_FILE names another file: a copy, for a URL not of this machine).
- limits, each answered and the connection closed: request line and headers 64 KiB (431), body 16 MiB (413),
  256 connections (503), a request arriving within 30 s (408); idle keep-alive connections closed after 75 s; a
  model server that does not answer within 30 s: 504. Ambiguous framing (Content-Length with Transfer-Encoding, two
  Content-Lengths, a bad chunk) and protocol upgrades: 400.

`python -m steps.rollout --target local` runs the policy's canary schedule against it: set_weight, the pause and
the analysis of each step (durations multiplied by the time scale), the analysis computed from the canary server's
/metrics (p95 from the histogram buckets of the window, errors / requests), or, given a Prometheus URL
(`--prometheus`, PROMETHEUS_URL), through the AnalysisTemplate's own PromQL and conditions over a time-scaled rate
window. SIGINT or SIGTERM stops the router and every server. The code: steps/_canary/local/.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from steps._canary.local.deployment import Deployment
from steps._canary.local.router import DEFAULT_PORT, Router
from steps._canary.local.scrape import scrape_config_text
from steps._core.errors import UsageError, run
from steps._storage.registry import Registry


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops deploy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="the model (default: the only policy in gates/)")
    p.add_argument("--registry", default=None, help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--print-scrape-config", action="store_true",
                   help="print the Prometheus scrape configuration for this --host/--port and exit")
    return p


def deploy(model: str, registry: Registry, host: str, port: int, stop: threading.Event) -> None:
    """Serve `model`'s production version (if any) behind the router on host:port until `stop` is set (or an
    interrupt); then the router and every server stop."""
    router = Router(Deployment(model, registry.location), host, port)
    try:
        router.start()
        production = registry.production(model)
        if production is not None:
            router.deployment.set_stable(production)
        print(f"mlops deploy: {model} on {router.url} (stable: "
              f"{f'v{production}' if production is not None else 'none yet'}); control: {router.url}/control/status "
              f"with the bearer token in {router.token_file}", flush=True)
        print(f"mlops deploy: for a Prometheus to scrape it: mlops deploy --print-scrape-config --host {host} "
              f"--port {router.port}", flush=True)
        stop.wait()
    finally:
        with _uninterrupted():
            router.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.print_scrape_config:
        # A wildcard listen address is not an address to scrape: the router also answers on loopback.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host
        print(scrape_config_text(f"{host}:{args.port}"), end="")
        return 0

    def body() -> int:
        model = args.model or _only_model()
        registry = Registry.open(args.registry or None)
        previous = signal.signal(signal.SIGTERM, _interrupt)  # a `kill` stops it as Ctrl-C does
        try:
            deploy(model, registry, args.host, args.port, threading.Event())
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0

    return run("mlops deploy", body)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM ignored meanwhile (in the main thread): a second Ctrl-C must not cut the servers' stop
    short and leave one running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _only_model() -> str:
    names = sorted(p.stem for p in Path("gates").glob("*.yaml"))
    if len(names) != 1:
        raise UsageError(f"{len(names)} policies in gates/: choose one with --model ({', '.join(names) or 'none'})")
    return names[0]


if __name__ == "__main__":
    sys.exit(main())
