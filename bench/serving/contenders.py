"""The servers under test. A contender is a command line, a readiness path, an inference path and a protocol;
adding one is one entry in CONTENDERS (or `--contender-json` on the command line).

Command, cwd and env values are templates over: {python} (this interpreter), {repo}, {workdir}, {venvs},
{bundle} (the model bundle folder), {joblib} (the same estimator saved with joblib), {model} (the model's
name), and {port}, {port2}, {port3} (free ports chosen for each start).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serving.wire import BINARY, GRPC, GRPC_INFER

MLSERVER_VERSION = "1.7.1"


class ContenderError(RuntimeError):
    """A contender cannot be set up or is described wrongly; the message names the contender and the field."""


@dataclass(frozen=True)
class Context:
    """What a contender's templates and set-up can use; the ports are filled in for each start."""

    repo: Path
    workdir: Path
    venvs: Path
    model: str
    joblib: Path
    bundle: Path | None
    batch: dict[str, float]  # max_batch_size, max_batch_time (seconds) for the batching configurations

    def fields(self, ports: tuple[int, int, int] = (0, 0, 0)) -> dict[str, str]:
        return {"python": sys.executable, "repo": str(self.repo), "workdir": str(self.workdir),
                "venvs": str(self.venvs), "model": self.model, "joblib": str(self.joblib),
                "bundle": str(self.bundle or ""), "port": str(ports[0]), "port2": str(ports[1]),
                "port3": str(ports[2])}


@dataclass(frozen=True)
class Contender:
    name: str
    command: tuple[str, ...]
    ready_path: str  # GET; the first 200 is "ready"
    infer_path: str  # POST, one row per request
    # "v2" (Open Inference Protocol JSON, one input per feature) | "v1" ({"instances": [...]}) | "v2-binary"
    # (the OIP HTTP binary tensor extension, as tritonclient.http sends it) | "grpc" (KServe V2 gRPC ModelInfer)
    protocol: str = "v2"
    cwd: str = "{workdir}"
    env: dict[str, str] = field(default_factory=dict)
    needs_bundle: bool = False  # serves the bundle folder (our server), not the joblib file
    judged: bool = False  # checked against the targets (ratios to the baseline)
    description: str = ""
    setup: Callable[[Contender, Context], None] | None = None  # once per session, before any start
    python: str = "{python}"  # whose package versions the report lists
    grpc_target: str = "127.0.0.1:{port2}"  # host:port of the gRPC service (protocol "grpc")
    metrics_url: str = "http://127.0.0.1:{port}/metrics"  # the server's Prometheus metrics (gRPC answer counts)
    packages: tuple[str, ...] = ("scikit-learn", "numpy", "pandas")


def render(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        raise ContenderError(f"template {template!r}: unknown or malformed placeholder ({err}); "
                             f"use {', '.join('{' + k + '}' for k in values)}") from err


def package_versions(python: str, packages: tuple[str, ...]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, platform, sys\n"
            "v = {'python': platform.python_version()}\n"
            "for p in sys.argv[1:]:\n"
            "    try: v[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))")
    done = subprocess.run([python, "-c", code, *packages], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    return dict(json.loads(done.stdout))


# --- MLServer ---------------------------------------------------------------------------------------------


def mlserver_requirements() -> list[str]:
    """MLServer pinned, with the very libraries we score with, so both servers run the same trees and the same
    pandas. uvloop 0.22 keeps MLServer's inference worker from ever loading the model (seen here)."""
    import joblib
    import numpy
    import pandas
    import sklearn

    return [f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}", "uvloop<0.22",
            f"scikit-learn=={sklearn.__version__}", f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}",
            f"joblib=={joblib.__version__}", "pyyaml"]


def ensure_venv(venv: Path, requirements: list[str]) -> Path:
    """A venv holding exactly `requirements`, made with uv when there is one (much faster), else venv + pip.
    Kept between runs; remade when the requirement list changes."""
    marker = venv / ".bench-requirements"
    wanted = "\n".join(requirements) + "\n"
    if marker.is_file() and marker.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    uv = shutil.which("uv")
    if uv:
        # Compiled bytecode, as in a built image: without it every start recompiles the libraries' sources.
        steps = [[uv, "venv", "-q", "--python", base_python, str(venv)],
                 [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                  *requirements]]
    else:
        steps = [[base_python, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements]]
    for command in steps:
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise ContenderError(f"making {venv}: {' '.join(command[:3])} exited {done.returncode}: "
                                 f"{done.stderr.strip()[-1500:]}")
    marker.write_text(wanted)
    return venv


def _mlserver_setup(contender: Contender, ctx: Context) -> None:
    ensure_venv(ctx.venvs / "mlserver", mlserver_requirements())
    batching = "nobatch" not in contender.name
    folder = ctx.workdir / contender.name
    model_folder = folder / ctx.model
    model_folder.mkdir(parents=True, exist_ok=True)
    # Production-like server settings: no debug logging; one inference worker, the default, on one core.
    server = {"debug": False, "host": "127.0.0.1", "parallel_workers": 1, "load_models_at_startup": True}
    model_settings: dict[str, Any] = {
        "name": ctx.model,
        "implementation": "mlserver_sklearn.SKLearnModel",
        # predict_fn makes a plain V2 request answer predict_proba (the scores), not predict (the labels).
        "parameters": {"uri": str(ctx.joblib), "version": "1", "extra": {"predict_fn": "predict_proba"}},
    }
    if batching:
        model_settings["max_batch_size"] = int(ctx.batch["max_batch_size"])
        model_settings["max_batch_time"] = float(ctx.batch["max_batch_time"])
    (folder / "settings.json").write_text(json.dumps(server, indent=2) + "\n")
    (model_folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")


def _mlserver(name: str, description: str, protocol: str = "v2") -> Contender:
    return Contender(
        name=name,
        command=("{venvs}/mlserver/bin/mlserver", "start", "{workdir}/" + name),
        ready_path="/v2/health/ready",
        infer_path=GRPC_INFER if protocol == GRPC else "/v2/models/{model}/infer",
        protocol=protocol,
        cwd="{workdir}/" + name,  # MLServer keeps its metrics files under the working folder
        # Ports by environment, so the settings files stay the same for every start. The repository on the
        # path because a bundle's pipeline holds our contract encoder (steps._model.features), which unpickling imports.
        env={"MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": "{port2}", "MLSERVER_METRICS_PORT": "{port3}",
             "PYTHONPATH": "{repo}"},
        description=description,
        setup=_mlserver_setup,
        python="{venvs}/mlserver/bin/python",
        packages=("mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "pandas", "uvicorn", "uvloop",
                  "fastapi", *(("grpcio", "protobuf") if protocol == GRPC else ())),
        metrics_url="http://127.0.0.1:{port3}/metrics",
    )


_OURS_ENV = {"WORKERS": "1", "MAX_BATCH_SIZE": "32", "MAX_BATCH_LATENCY_MS": "5"}


def _ours(name: str, description: str, protocol: str, infer_path: str, ready_path: str = "/v2/health/ready",
          grpc: bool = False) -> Contender:
    """Our server (issue 3): `python -m steps.serve --model-dir DIR --port P [--grpc-port P2]`, serving the bundle."""
    return Contender(
        name=name,
        command=("{python}", "-m", "steps.serve", "--model-dir", "{bundle}", "--port", "{port}",
                 *(("--grpc-port", "{port2}") if grpc else ())),
        ready_path=ready_path,
        infer_path=infer_path,
        protocol=protocol,
        cwd="{repo}",
        env=_OURS_ENV,
        needs_bundle=True,
        judged=True,
        description=description,
        packages=("httptools", "uvloop", "orjson", "scikit-learn", "skops",
                  *(("grpcio", "protobuf") if grpc else ())),
    )


# --- the registry ----------------------------------------------------------------------------------------

# MLServer 1.7.1 has no binary tensor extension over HTTP: tritonclient.http's default request gets 422
# ("JSON decode error": it parses every body as JSON), so there is no mlserver-binary; its gRPC service takes
# raw_input_contents as tritonclient.grpc sends them.
CONTENDERS: dict[str, Contender] = {
    "mlserver-batch": _mlserver("mlserver-batch", f"MLServer {MLSERVER_VERSION} + mlserver-sklearn, "
                                "adaptive batching on, 1 inference worker"),
    "mlserver-nobatch": _mlserver("mlserver-nobatch", f"MLServer {MLSERVER_VERSION} + mlserver-sklearn, "
                                  "adaptive batching off, 1 inference worker"),
    "mlserver-grpc": _mlserver("mlserver-grpc", f"MLServer {MLSERVER_VERSION} + mlserver-sklearn over gRPC, "
                               "adaptive batching on, 1 inference worker", protocol=GRPC),
    "argo-mlops": _ours("argo-mlops", "argo-mlops steps.serve, Open Inference Protocol V2 endpoint, 1 worker",
                        "v2", "/v2/models/{model}/infer"),
    "argo-mlops-v1": _ours("argo-mlops-v1", "argo-mlops steps.serve, V1 endpoint, 1 worker", "v1",
                           "/v1/models/{model}:predict", ready_path="/v1/health/ready"),
    "argo-mlops-binary": _ours("argo-mlops-binary", "argo-mlops steps.serve, V2 endpoint with the binary tensor "
                               "extension (tritonclient.http's default request), 1 worker", BINARY,
                               "/v2/models/{model}/infer"),
    "argo-mlops-grpc": _ours("argo-mlops-grpc", "argo-mlops steps.serve, KServe V2 gRPC (--grpc-port), 1 worker",
                             GRPC, GRPC_INFER, grpc=True),
}

DEFAULT_CONTENDERS = ("mlserver-batch", "mlserver-nobatch")
_JSON_FIELDS = {"name", "command", "ready_path", "infer_path", "protocol", "cwd", "env", "needs_bundle",
                "judged", "description", "grpc_target", "metrics_url"}
PROTOCOLS = ("v2", "v1", BINARY, GRPC)


def from_json(text: str) -> Contender:
    """An ad-hoc contender from `--contender-json`, e.g.
    {"name": "mine", "command": ["{python}", "-m", "steps.serve", "--model-dir", "{bundle}", "--port", "{port}"],
     "ready_path": "/v2/health/ready", "infer_path": "/v2/models/{model}/infer", "needs_bundle": true}"""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ContenderError(f"--contender-json: not JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ContenderError(f"--contender-json: must be a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - _JSON_FIELDS
    if unknown:
        raise ContenderError(f"--contender-json: unknown keys {sorted(unknown)}; allowed: {sorted(_JSON_FIELDS)}")
    for key in ("name", "command", "ready_path", "infer_path"):
        if key not in raw:
            raise ContenderError(f"--contender-json: missing required key {key!r}")
    command = raw["command"]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ContenderError(f"--contender-json: command must be a non-empty list of strings, got {command!r}")
    if raw.get("protocol", "v2") not in PROTOCOLS:
        raise ContenderError(f"--contender-json: protocol must be one of {PROTOCOLS}, got {raw['protocol']!r}")
    return Contender(**{**raw, "command": tuple(command), "env": dict(raw.get("env", {}))})


def scores(protocol: str, response: Any, positive_index: int) -> list[float]:
    """The positive-class scores in a response, whichever way a server lays them out."""
    if protocol == "v1":
        return [float(p["score"]) for p in response["predictions"]]
    outputs = response["outputs"]
    preferred = ("score", "scores", "probability", "probabilities", "predict_proba")
    chosen = next((o for o in outputs if o.get("name") in preferred), None)
    chosen = chosen or next((o for o in outputs if str(o.get("datatype", "")).startswith("FP")), outputs[0])
    data, shape = list(chosen["data"]), list(chosen.get("shape") or [len(chosen["data"])])
    if len(shape) == 2 and shape[1] > 1:  # one column per class, as predict_proba
        return [float(v) for v in data[positive_index::shape[1]]]
    return [float(v) for v in data]
