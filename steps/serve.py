"""Serve step: the model server, and `fetch`, the model loader of its init container.

    python -m steps.serve fetch --model M@V [--registry LOC] --out DIR
    python -m steps.serve [--model-dir DIR | --model M@V [--registry LOC]] [--host H] [--port P]
                          [--grpc-port P] [--workers N] [--max-batch-size N] [--max-batch-latency-ms MS] ...

Every flag has an environment variable, as a pod spec sets them: MODEL_PATH (--model-dir), HOST, PORT,
GRPC_PORT (the KServe V2 gRPC service, steps/_serving/grpc/; off unless given), WORKERS, MAX_BATCH_SIZE,
MAX_BATCH_LATENCY_MS, MAX_ROWS, MAX_BODY_BYTES, DRAIN_SECONDS, PREDICTOR;
INFERENCE_LOG (+ _SAMPLE, _BATCH_ROWS, _FLUSH_SECONDS: sampled rows as Parquet, steps/_serving/inference_log.py);
MODEL_VERSION names the version when the bundle does not. The answers follow the bundle's task
(steps/_serving/outputs.py): binary `score` and `label`; multiclass `label` and `probabilities` over exactly the
classes (V2: one [n, k] tensor, the classes in the model metadata); regression `value`. The bundle's sha256
hashes are checked before anything in it is read; a bundle that fails them, or has no model we can load, is
refused (exit 2, never ready). Logs are JSON lines on stderr. What runs: steps/_serving/ (loader, app and its
routes, the task's outputs, batcher, http transport and its connections, supervisor, metrics, inference log).
The limits on a request's head and the timeouts a client meets are Settings' defaults (steps/_serving/app.py;
steps/_serving/connection.py says what each refusal answers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from steps._core.documents import BundleManifest
from steps._core.errors import StepError, UsageError
from steps._serving import loader, supervisor
from steps._serving.app import Settings
from steps._serving.loader import PREDICTORS
from steps._serving.log import log

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
    p.add_argument("--grpc-port", default=_env("GRPC_PORT", ""),
                   help="also serve the KServe V2 gRPC API (inference.GRPCInferenceService) on this port "
                        "(env GRPC_PORT; off)")
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


def _grpc_port(args: argparse.Namespace, settings: Settings) -> int | None:
    """--grpc-port (GRPC_PORT): None (no gRPC) when empty, else a port other than --port (0: any free one)."""
    text = args.grpc_port.strip()
    if not text:
        return None
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"--grpc-port {text!r}: must be a port number (flag or environment GRPC_PORT)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--grpc-port {text!r}: must be 0 to 65535")
    if port and port == settings.port:
        raise UsageError(f"--grpc-port {port}: the same port as --port; HTTP and gRPC need one each")
    return port


def _fetch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m steps.serve fetch",
                                description="Download a model version, verify every sha256, write it atomically.")
    p.add_argument("--model", required=True, help="<model>@<version>, e.g. fraud-detection@3")
    p.add_argument("--registry", default="", help="registry location (default $MLOPS_REGISTRY or .mlops/registry)")
    p.add_argument("--out", required=True, type=Path, help="the folder to write the bundle to")
    args = p.parse_args(argv)
    dest, manifest = loader.fetch(args.model, args.registry, args.out)
    log("fetched", model=manifest["model"], model_version=manifest.get("version"), out=str(dest),
        files=len(manifest["files"]))
    return 0


def _serve_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    grpc_port = _grpc_port(args, settings)
    if args.model and args.model_dir and "MODEL_PATH" not in os.environ:
        raise UsageError("give --model-dir or --model, not both")
    if not args.model and not args.model_dir:
        raise UsageError("no model: give --model-dir DIR (or MODEL_PATH), or --model M@V [--registry LOC]")
    version = os.environ.get("MODEL_VERSION") or None
    if not args.model:
        return _serve(args.model_dir, None, args.predictor, settings, version, grpc_port)
    # The fetched copy is this process's own: removed when the server stops (workers never get here).
    workdir = Path(tempfile.mkdtemp(prefix="serve-model-"))
    try:
        bundle_dir, manifest = loader.fetch(args.model, args.registry, workdir / "bundle")
        return _serve(bundle_dir, manifest, args.predictor, settings, version, grpc_port)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _serve(bundle_dir: Path, verified: BundleManifest | None, predictor: str, settings: Settings,
           version: str | None, grpc_port: int | None = None) -> int:
    # Through the module: tests/support/faults patches loader.load_model to inject faults into the model.
    model = loader.load_model(bundle_dir, predictor, settings.max_rows, version, verified)
    log("loaded", model=model.name, model_version=model.version, bundle=str(bundle_dir), **model.description)
    return supervisor.serve(model, settings, grpc_port)


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
