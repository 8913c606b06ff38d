"""The server's processes: one worker in this process, or a supervisor that forks `workers` workers (sharing
the model's memory pages and one metrics table), restarts any that dies and passes SIGTERM on."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from types import FrameType

from steps._serving.app import ServedModel, Settings
from steps._serving.http import STARTUP_FAILED, Worker, listen_socket
from steps._serving.loader import ServeError
from steps._serving.log import log
from steps._serving.metrics import Metrics


def serve(model: ServedModel, settings: Settings, grpc_port: int | None = None) -> int:
    """Serve until SIGTERM; one process, or a supervisor forking `settings.workers` workers. With `grpc_port`,
    every worker also serves the KServe V2 gRPC service on it."""
    metrics = Metrics.for_model(model, settings.workers, ("http", "grpc") if grpc_port is not None else ("http",))
    # The model and everything loaded so far stay put: no collector passes over them, and forked workers
    # share their pages instead of copying them.
    gc.collect()
    gc.freeze()
    if settings.workers == 1:
        try:
            sock = listen_socket(settings.host, settings.port, reuse_port=False)
        except OSError as err:
            raise ServeError(f"cannot listen on {settings.host}:{settings.port}: {err}") from err
        return Worker(model, metrics, settings, sock, grpc_port=grpc_port).run()
    return supervise(model, metrics, settings, grpc_port)


def supervise(model: ServedModel, metrics: Metrics, settings: Settings, grpc_port: int | None = None) -> int:
    """Fork one worker per slot, restart any that dies, pass SIGTERM on and wait for every worker to drain."""
    # The anchors hold the ports (bound, never listening, so they take no connections) while workers come and go.
    anchors = []
    for wanted in (settings.port, grpc_port):
        if wanted is None:
            continue
        try:
            anchors.append(listen_socket(settings.host, wanted, reuse_port=True))
        except OSError as err:
            for anchor in anchors:
                anchor.close()
            raise ServeError(f"cannot listen on {settings.host}:{wanted}: {err}") from err
    port = anchors[0].getsockname()[1]
    if grpc_port is not None:
        grpc_port = anchors[1].getsockname()[1]
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = STARTUP_FAILED
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                for anchor in anchors:
                    anchor.close()
                metrics.use_slot(slot)
                sock = listen_socket(settings.host, port, reuse_port=True)
                code = Worker(model, metrics, settings, sock, index=slot, grpc_port=grpc_port,
                              reuse_port=True).run()
            except BaseException as err:  # noqa: BLE001 - reported, then the exit code tells the supervisor
                log("worker_failed", "error", worker=slot, error=f"{type(err).__name__}: {err}")
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(settings.workers):
        spawn(slot)
    log("supervising", workers=settings.workers, port=port, grpc_port=grpc_port)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        if stopping:
            code = code or max(0, exit_code)
            continue
        if exit_code == STARTUP_FAILED:
            log("worker_cannot_start", "error", worker=slot, exit_code=exit_code)
            stop(signal.SIGTERM, None)
            code = STARTUP_FAILED
            continue
        log("worker_died", "error", worker=slot, exit_code=exit_code)
        time.sleep(0.2)  # no tight loop if something kills every new worker
        spawn(slot)
    for anchor in anchors:
        anchor.close()
    log("stopped", workers=settings.workers, exit_code=code)
    return code
