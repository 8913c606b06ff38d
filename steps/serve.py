"""Serve step: the model server, and `fetch`, the model loader of its init container.

    python -m steps.serve fetch --model M@V [--registry LOC] --out DIR
    python -m steps.serve [--model-dir DIR | --model M@V [--registry LOC]] [--host H] [--port P]
                          [--workers N] [--max-batch-size N] [--max-batch-latency-ms MS] ...

Every flag has an environment variable, as a pod spec sets them: MODEL_PATH (--model-dir), HOST, PORT,
WORKERS, MAX_BATCH_SIZE, MAX_BATCH_LATENCY_MS, MAX_ROWS, MAX_BODY_BYTES, DRAIN_SECONDS, PREDICTOR;
INFERENCE_LOG (+ _SAMPLE, _BATCH_ROWS, _FLUSH_SECONDS: sampled rows as Parquet, steps/_serving/inference_log.py);
MODEL_VERSION names the version when the bundle does not. The bundle's sha256 hashes are checked before
anything in it is read; a bundle that fails them, or has no model we can load, is refused (exit 2, never
ready). Logs are JSON lines on stderr. HTTP routes, metrics and batching: steps/_serving/http.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steps._core.documents import BundleManifest
from steps._core.errors import StepError, UsageError
from steps._model import bundle as _bundle
from steps._model import trees as _predictor
from steps._model.bundle import PROFILE_FILE, Bundle, BundleError
from steps._model.skops import MODEL_FILE
from steps._serving.contract import ContractError, RequestContract
from steps._serving.http import ServedModel, Settings, Worker, listen_socket, log
from steps._serving.metrics import Metrics

PREDICTORS = ("auto", "compiled", "skops")
STARTUP_FAILED = 2  # a worker that exits with this could not start: the supervisor gives up, never ready


class ServeError(UsageError):
    """The model cannot be served (tampered or incomplete bundle, no loadable model, bad settings)."""


# --- fetch: the init container ------------------------------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, str]:
    """'fraud-detection@3' -> ('fraud-detection', '3'). An empty version is the pod before its first rollout."""
    model, at, version = ref.partition("@")
    if not at or not model:
        raise UsageError(f"--model {ref!r}: expected <model>@<version>, e.g. fraud-detection@3 or "
                         "fraud-detection@production")
    if not version:
        raise UsageError(f"--model {ref!r}: no version is pinned (an empty version: the pod-template annotation "
                         "model-version is not set yet; the rollout step sets it)")
    return model, version


def fetch(ref: str, registry: str | None, out: Path) -> tuple[Path, dict[str, Any]]:
    """Download a version, verify every sha256, and move it into `out` only once complete."""
    from steps._storage import registry as _registry

    model, version = parse_ref(ref)
    _registry.check_model(model)
    try:
        reg = _registry.Registry.open(registry or None)
        dest = reg.fetch(model, int(version) if version.isdigit() else version, out)
    except _bundle.BundleError as err:
        raise ServeError(f"{ref}: refused: {err}") from err
    manifest = json.loads((dest / _bundle.MANIFEST).read_text())
    return dest, manifest


# --- loading --------------------------------------------------------------------------------------------------


class SkopsPredictor:
    """The bundle's scikit-learn Pipeline (loaded with our trusted types only), after its contract encoder."""

    kind = "skops"

    def __init__(self, bundle: Bundle):
        from steps._model import features as _features
        from steps._model import skops as _model

        pipeline = bundle.pipeline
        path = bundle.path / _model.MODEL_FILE
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) < 2 or not isinstance(steps[0][1], _features.ContractEncoder):
            raise _model.ModelError(f"{path}: not a Pipeline that starts with the contract encoder")
        # Our rows are already contract-encoded: skip the encoder (and pandas) on every call.
        self.model = pipeline[1:]
        classes = [int(c) for c in getattr(self.model, "classes_", [])]
        if 1 not in classes:
            raise _model.ModelError(f"{path}: the model has no positive class 1 (classes {classes})")
        self.positive = classes.index(1)
        if not os.environ.get("OMP_NUM_THREADS"):
            # One thread per worker: OpenMP's spinning threads collapse on shared CPUs (steps._model.skops).
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1)

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        import numpy as np

        matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        scores: list[float] = self.model.predict_proba(matrix)[:, self.positive].tolist()
        return scores


def load_model(bundle_dir: Path, predictor: str = "auto", max_rows: int = 1000,
               version: str | None = None, verified: BundleManifest | None = None) -> ServedModel:
    """Verify the bundle's hashes (unless `verified` is the manifest a fetch just verified), then load its
    contract, profile and model. Raises ServeError."""
    started = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    if predictor not in PREDICTORS:
        raise ServeError(f"PREDICTOR {predictor!r}: must be one of {', '.join(PREDICTORS)}")
    if not bundle_dir.is_dir():
        raise ServeError(f"model directory {bundle_dir}: not a folder (MODEL_PATH / --model-dir)")
    try:
        bundle = Bundle.open(bundle_dir, verified)
        profile = bundle.read_json(PROFILE_FILE)
    except BundleError as err:
        raise ServeError(f"bundle {bundle_dir}: refused: {err}") from err
    files = bundle.files
    try:
        contract = RequestContract(bundle.manifest["contract"], profile, max_rows=max_rows)
    except ContractError as err:
        raise ServeError(f"bundle {bundle_dir}: {err}") from err

    model: Any
    if predictor in ("auto", "compiled") and _predictor.TREES_FILE in files:
        try:
            model = _predictor.load(bundle_dir / _predictor.TREES_FILE, contract.names)
        except _predictor.TreesError as err:
            raise ServeError(f"bundle {bundle_dir}: {err}") from err
        description = model.describe()
    elif predictor == "compiled":
        raise ServeError(f"bundle {bundle_dir}: PREDICTOR=compiled, but it has no {_predictor.TREES_FILE} "
                         f"(files: {', '.join(sorted(files))})")
    elif MODEL_FILE in files:
        from steps._model import skops as _model

        try:
            model = SkopsPredictor(bundle)
        except _model.ModelError as err:
            raise ServeError(f"bundle {bundle_dir}: {err}") from err
        description = {"predictor": "skops", "estimator": type(model.model[-1]).__name__}
    else:
        raise ServeError(f"bundle {bundle_dir}: no model to serve: neither {_predictor.TREES_FILE} nor "
                         f"{MODEL_FILE} is among its files ({', '.join(sorted(files))})")
    found = bundle.version
    if found is not None and version and str(found) != version:
        log("version_mismatch", "warning", bundle_version=found, model_version_env=version)
    served_version = str(found) if found is not None else (version or "unregistered")
    description["load_seconds"] = round(time.perf_counter() - started, 3)
    return ServedModel(name=bundle.model, version=served_version, threshold=bundle.threshold, contract=contract,
                       predictor=model, inline=model.kind == "compiled", description=description)


# --- running --------------------------------------------------------------------------------------------------


def serve(model: ServedModel, settings: Settings) -> int:
    """Serve until SIGTERM; one process, or a supervisor forking `settings.workers` workers."""
    metrics = Metrics(model.name, model.version, model.contract.names, model.contract.bin_labels, settings.workers)
    # The model and everything loaded so far stay put: no collector passes over them, and forked workers
    # share their pages instead of copying them.
    gc.collect()
    gc.freeze()
    if settings.workers == 1:
        try:
            sock = listen_socket(settings.host, settings.port, reuse_port=False)
        except OSError as err:
            raise ServeError(f"cannot listen on {settings.host}:{settings.port}: {err}") from err
        return Worker(model, metrics, settings, sock).run()
    return _supervise(model, metrics, settings)


def _supervise(model: ServedModel, metrics: Metrics, settings: Settings) -> int:
    """Fork one worker per slot, restart any that dies, pass SIGTERM on and wait for every worker to drain."""
    try:
        # Holds the port (bound, never listening, so it takes no connections) while workers come and go.
        anchor = listen_socket(settings.host, settings.port, reuse_port=True)
    except OSError as err:
        raise ServeError(f"cannot listen on {settings.host}:{settings.port}: {err}") from err
    port = anchor.getsockname()[1]
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = STARTUP_FAILED
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                anchor.close()
                metrics.use_slot(slot)
                sock = listen_socket(settings.host, port, reuse_port=True)
                code = Worker(model, metrics, settings, sock, index=slot).run()
            except BaseException as err:  # noqa: BLE001 - reported, then the exit code tells the supervisor
                log("worker_failed", "error", worker=slot, error=f"{type(err).__name__}: {err}")
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(settings.workers):
        spawn(slot)
    log("supervising", workers=settings.workers, port=port)
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
    anchor.close()
    log("stopped", workers=settings.workers, exit_code=code)
    return code


# --- command line ---------------------------------------------------------------------------------------------


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.serve", description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=os.environ.get("MODEL_PATH") or None,
                   help="the bundle folder to serve (env MODEL_PATH)")
    p.add_argument("--model", help="a registry reference <model>@<version|production|canary> instead")
    p.add_argument("--registry", default="", help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--host", default=_env("HOST", "0.0.0.0"), help="address to listen on (env HOST; 0.0.0.0)")
    p.add_argument("--port", default=_env("PORT", "8080"), help="port (env PORT; 8080)")
    p.add_argument("--workers", default=_env("WORKERS", "1"), help="worker processes (env WORKERS; 1)")
    p.add_argument("--max-batch-size", default=_env("MAX_BATCH_SIZE", "32"),
                   help="rows per model call (env MAX_BATCH_SIZE; 32)")
    p.add_argument("--max-batch-latency-ms", default=_env("MAX_BATCH_LATENCY_MS", "5"),
                   help="longest wait for a batch to fill while requests are arriving (env MAX_BATCH_LATENCY_MS; 5)")
    p.add_argument("--max-rows", default=_env("MAX_ROWS", "1000"), help="rows per request (env MAX_ROWS; 1000)")
    p.add_argument("--max-body-bytes", default=_env("MAX_BODY_BYTES", str(4 * 1024 * 1024)),
                   help="request body size limit (env MAX_BODY_BYTES; 4 MiB)")
    p.add_argument("--drain-seconds", default=_env("DRAIN_SECONDS", "0"),
                   help="after SIGTERM, keep accepting with readiness false this long (env DRAIN_SECONDS; 0)")
    p.add_argument("--inference-log", default=_env("INFERENCE_LOG", ""),
                   help="folder, file:// or s3:// location for sampled rows as Parquet (env INFERENCE_LOG; off)")
    p.add_argument("--inference-log-sample", default=_env("INFERENCE_LOG_SAMPLE", "0.01"),
                   help="share of scored rows logged (env INFERENCE_LOG_SAMPLE; 0.01)")
    p.add_argument("--inference-log-batch-rows", default=_env("INFERENCE_LOG_BATCH_ROWS", "10000"),
                   help="rows per Parquet file (env INFERENCE_LOG_BATCH_ROWS; 10000)")
    p.add_argument("--inference-log-flush-seconds", default=_env("INFERENCE_LOG_FLUSH_SECONDS", "60"),
                   help="write a file at least this often while rows wait (env INFERENCE_LOG_FLUSH_SECONDS; 60)")
    p.add_argument("--predictor", default=_env("PREDICTOR", "auto"), choices=PREDICTORS,
                   help="auto: the compiled trees when the bundle has them, else skops (env PREDICTOR)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    def number(flag: str, text: str, kind: type, low: float) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"--{flag} {text!r}: must be a {kind.__name__} (flag or environment)") from None
        if value < low:
            raise UsageError(f"--{flag} {text!r}: must be at least {low}")
        return value

    sample = number("inference-log-sample", args.inference_log_sample, float, 0)
    if not 0 < sample <= 1:
        raise UsageError(f"--inference-log-sample {args.inference_log_sample!r}: must be more than 0 and at most 1")
    return Settings(
        host=args.host,
        port=number("port", args.port, int, 0),
        workers=number("workers", args.workers, int, 1),
        max_batch_size=number("max-batch-size", args.max_batch_size, int, 1),
        max_batch_latency_ms=number("max-batch-latency-ms", args.max_batch_latency_ms, float, 0),
        max_rows=number("max-rows", args.max_rows, int, 1),
        max_body_bytes=number("max-body-bytes", args.max_body_bytes, int, 1024),
        drain_seconds=number("drain-seconds", args.drain_seconds, float, 0),
        inference_log=args.inference_log,
        inference_log_sample=sample,
        inference_log_batch_rows=number("inference-log-batch-rows", args.inference_log_batch_rows, int, 1),
        inference_log_flush_seconds=number("inference-log-flush-seconds", args.inference_log_flush_seconds,
                                           float, 0.1),
    )


def _fetch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m steps.serve fetch",
                                description="Download a model version, verify every sha256, write it atomically.")
    p.add_argument("--model", required=True, help="<model>@<version>, e.g. fraud-detection@3")
    p.add_argument("--registry", default="", help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--out", required=True, type=Path, help="the folder to write the bundle to")
    args = p.parse_args(argv)
    dest, manifest = fetch(args.model, args.registry, args.out)
    log("fetched", model=manifest.get("model"), model_version=manifest.get("version"), out=str(dest),
        files=len(manifest.get("files", {})))
    return 0


def _serve_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    if args.model and args.model_dir and "MODEL_PATH" not in os.environ:
        raise UsageError("give --model-dir or --model, not both")
    if args.model:
        workdir = Path(tempfile.mkdtemp(prefix="serve-model-"))
        bundle_dir, _ = fetch(args.model, args.registry, workdir / "bundle")
    elif args.model_dir:
        bundle_dir = args.model_dir
    else:
        raise UsageError("no model: give --model-dir DIR (or MODEL_PATH), or --model M@V [--registry LOC]")
    version = os.environ.get("MODEL_VERSION") or None
    model = load_model(bundle_dir, args.predictor, settings.max_rows, version)
    log("loaded", model=model.name, model_version=model.version, bundle=str(bundle_dir), **model.description)
    return serve(model, settings)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fetching = bool(argv) and argv[0] == "fetch"
    try:
        return _fetch_main(argv[1:]) if fetching else _serve_main(argv)
    except StepError as err:
        log("fetch_failed" if fetching else "cannot_serve", "error", error=str(err), exit_code=err.exit_code)
        print(f"serve: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
