"""The application side of the model server: the V1 and Open Inference Protocol V2 routes, the served model and
its settings, and the warm-up. It answers through the Responder of steps._serving.exchange, never through the
transport itself, so the transport (steps._serving.http, which says why it is our own) could be swapped."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, cast
from urllib.parse import unquote

from steps._serving import binary
from steps._serving.batcher import Batcher, Job, Predictions, Rows
from steps._serving.codec import JSONError, dumps, loads
from steps._serving.contract import RequestContract, RequestError
from steps._serving.exchange import JSON, Request, Responder
from steps._serving.inference_log import InferenceLog
from steps._serving.log import log
from steps._serving.metrics import CONTENT_TYPE as METRICS_TYPE
from steps._serving.metrics import Metrics
from steps._serving.outputs import (
    TASKS,
    BinaryOutputs,
    Label,
    MulticlassOutputs,
    Outputs,
    PredictionBins,
    RegressionOutputs,
    shift_labels,
)

_INTERNAL_ERROR = b'{"error":"internal error; see the server log","rule":"server"}'


class Predictor(Protocol):
    """binary: P(positive) per row; regression: the value per row; multiclass: k probabilities per row, in the
    order of the contract's classes."""

    kind: str

    def predict(self, rows: Sequence[Sequence[float]]) -> Predictions: ...


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_batch_size: int = 32
    max_batch_latency_ms: float = 5.0
    max_rows: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    # The request's head, as nginx and Envoy bound it: a longer target gets 414, a longer header line, more
    # header bytes or more headers get 431 (and the connection is closed).
    max_request_line_bytes: int = 8 * 1024  # the request target
    max_header_bytes: int = 8 * 1024  # one header line, name and value
    max_header_block_bytes: int = 64 * 1024  # every header line together
    max_headers: int = 100
    drain_seconds: float = 0.0  # after SIGTERM: keep accepting (readiness false) this long, then stop
    grace_seconds: float = 25.0  # then at most this long for in-flight requests (Kubernetes gives 30 s)
    keepalive_seconds: float = 75.0  # idle keep-alive connections are closed after this
    request_timeout_seconds: float = 30.0  # a request still arriving after this gets 408
    send_timeout_seconds: float = 30.0  # a client that reads none of its answers this long is disconnected
    inference_log: str = ""  # where sampled rows go as Parquet (steps._serving.inference_log); empty: off
    inference_log_sample: float = 0.01
    inference_log_batch_rows: int = 10_000
    inference_log_flush_seconds: float = 60.0


@dataclass
class ServedModel:
    name: str
    version: str
    threshold: float | None  # binary only
    contract: RequestContract
    predictor: Predictor
    inline: bool  # predict on the loop's thread (pure Python) or in a helper thread (scikit-learn)
    description: dict[str, Any]
    # The target's classes as the data writes them (binary: negative, positive; multiclass: the probability
    # columns' order; regression: none): a prediction's label is one of them.
    labels: tuple[Label, ...] = (0, 1)
    task: str = "binary"
    bins: PredictionBins | None = None  # the profile's `prediction` bins (bundles trained before: none)
    outputs: Outputs = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}: must be one of {', '.join(TASKS)}")
        if self.task == "binary":
            if self.threshold is None or len(self.labels) != 2:
                raise ValueError(f"a binary model needs a threshold and two labels, got {self.threshold!r} and "
                                 f"{self.labels!r}")
            self.outputs = BinaryOutputs(self.threshold, (self.labels[0], self.labels[1]), self.bins)
        elif self.task == "multiclass":
            if len(self.labels) < 3:
                raise ValueError(f"a multiclass model needs three or more labels, got {self.labels!r}")
            self.outputs = MulticlassOutputs(self.labels, self.bins)
        else:
            self.outputs = RegressionOutputs(self.bins)

    @property
    def prediction_bins(self) -> tuple[str, ...]:
        """The labels of model_prediction_bin_total's bins (none without a `prediction` profile)."""
        return self.bins.labels if self.bins is not None else ()


def parse_json(body: bytes) -> Any:
    """orjson first; the standard library reads what orjson refuses but JSON clients send (NaN, Infinity,
    integers beyond 64 bits), so the contract check can name the field instead of 'malformed JSON'. It also reads
    a lone surrogate ("\\ud800"), which is no text (no answer could carry it): that stays refused."""
    try:
        return loads(body)
    except JSONError as first:
        try:
            value = json.loads(body)
            json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError on a lone surrogate
        except (ValueError, RecursionError):
            raise RequestError(f"the body is not valid JSON: {first}", "json", None, 400) from None
        return value


class App:
    """Routes a request and answers it through its Responder; predictions go through the batcher, which the
    worker attaches (`batcher`) before the first request."""

    def __init__(self, model: ServedModel, metrics: Metrics):
        self.model, self.metrics = model, metrics
        self.ready = False
        self.draining = False
        self.batcher: Batcher | None = None
        self.inference_log: InferenceLog | None = None
        # The predictions' bins are counted when the metrics table has room for them (Metrics.for_model).
        self.count_predictions = (bool(model.prediction_bins)
                                  and metrics.prediction_bins == list(model.prediction_bins)
                                  and metrics.shift_bins == list(shift_labels(model.task)))
        name = model.name.encode()
        version = model.version.encode()
        self.v1_predict = b"/v1/models/" + name + b":predict"
        self.v2_infer = b"/v2/models/" + name + b"/infer"
        self.v2_infer_versioned = b"/v2/models/" + name + b"/versions/" + version + b"/infer"
        self.output_names = [output["name"] for output in model.outputs.metadata()[0]]
        self._static: dict[bytes, Callable[[Responder, Request], None]] = {
            b"/v1/health/live": self._live, b"/v2/health/live": self._live,
            b"/v1/health/ready": self._ready, b"/v2/health/ready": self._ready,
            b"/metrics": self._metrics, b"/v2": self._server_metadata,
            b"/v1/models/" + name: self._v1_model,
            b"/v2/models/" + name: self._v2_model,
            b"/v2/models/" + name + b"/versions/" + version: self._v2_model,
            b"/v2/models/" + name + b"/ready": self._v2_model_ready,
            b"/v2/models/" + name + b"/versions/" + version + b"/ready": self._v2_model_ready,
        }

    def is_ready(self) -> bool:
        return self.ready and not self.draining

    def handle(self, req: Request, out: Responder) -> None:
        try:
            path = req.path
            if b"%" in path:
                path = unquote(path.decode("latin-1")).encode("latin-1", "replace")
            if path == self.v2_infer or path == self.v1_predict or path == self.v2_infer_versioned:
                self._predict(req, out, v2=path != self.v1_predict)
                return
            handler = self._static.get(path)
            if handler is not None:
                if req.method not in (b"GET", b"HEAD"):
                    self._error(out, req, RequestError(f"{req.method.decode()} {path.decode('latin-1')}: use GET",
                                                       "method", None, 405), count=False)
                    return
                handler(out, req)
                return
            count = path.startswith((b"/v1/models/", b"/v2/models/")) and _is_prediction(path)
            shown = path.decode("latin-1")[:200]
            self._error(out, req, RequestError(f"no route {shown}: this server serves model {self.model.name!r} "
                                               f"version {self.model.version}", "route", None, 404), count=count)
        except Exception as err:  # noqa: BLE001 - a bug answers 500 and is logged; the server keeps serving
            log("handler_failed", "error", error=f"{type(err).__name__}: {err}",
                path=req.path.decode("latin-1")[:200])
            if _is_prediction(req.path):
                self.metrics.request(500, time.perf_counter() - req.started, req.protocol)
            if not out.answered:
                out.respond(500, _INTERNAL_ERROR, JSON, True)

    def rejected(self, path: bytes, status: int) -> None:
        """The transport refused a request before it arrived whole (e.g. 413): a prediction counts."""
        if _is_prediction(path):
            self.metrics.request(status, 0.0)

    # ---- predictions -------------------------------------------------------------------------------------

    def _predict(self, req: Request, out: Responder, v2: bool) -> None:
        body: Any = None
        try:
            if req.method != b"POST":
                raise RequestError(f"{req.method.decode()}: predictions take POST", "method", None, 405)
            ctype = req.content_type
            if ctype is not None:
                media = ctype.split(b";", 1)[0].strip().lower()
                if (media != JSON and not media.endswith(b"+json")
                        and not (media == binary.OCTET_STREAM and req.header_length is not None)):
                    raise RequestError(f"content-type {ctype.decode('latin-1')[:100]!r}: send application/json "
                                       f"(or application/octet-stream with {binary.HEADER})", "content_type",
                                       None, 415)
            if req.content_encoding is not None and req.content_encoding.strip().lower() != b"identity":
                shown = req.content_encoding.decode("latin-1")[:40]
                raise RequestError(f"content-encoding {shown!r}: this server takes uncompressed bodies only (leave "
                                   "request compression off)", "content_encoding", "Content-Encoding", 415)
            length = req.header_length
            body = parse_json(req.body) if length is None else self._binary_body(req.body, length, v2)
            contract = self.model.contract
            rows = contract.rows_from_v2(body) if v2 else contract.rows_from_v1(body)
            # Asked-for outputs or binary answers (the plain JSON answer needs neither lookup's result).
            chosen = (binary.requested(body, self.output_names)
                      if v2 and ("outputs" in body or "parameters" in body) else None)
        except RequestError as err:
            if v2 and req.header_length is None and err.status != 400:
                err = binary.missing_header(body) or err  # binary inputs without the extension's header
            self._error(out, req, err, count=True)
            return
        request_id = body.get("id") if v2 else None
        if self.batcher is None:
            raise RuntimeError("a prediction arrived before the worker attached the batcher")
        answer = None if chosen is None else partial(self._answer_chosen, chosen)
        self.batcher.submit(Job(rows, req, out, v2, request_id if type(request_id) is str else None, answer))

    def _binary_body(self, data: bytes, header_length: int, v2: bool) -> Any:
        """A request with the binary tensor data extension's header: its JSON, the inputs' binary data decoded."""
        if not v2:
            raise RequestError(f"{binary.HEADER}: the binary tensor data extension is for Open Inference Protocol "
                               "V2 requests (/v2/models/<model>/infer)", "binary_header", binary.HEADER, 400)
        head, raw = binary.split(data, header_length)
        try:
            body = parse_json(head)
        except RequestError as err:
            raise RequestError(f"the inference header (the body's first {header_length} bytes, "
                               f"{binary.HEADER}) is not valid JSON: {err.message}", "json", binary.HEADER,
                               400) from None
        binary.attach(body, raw)
        return body

    def scored(self, jobs: list[Job], rows: Rows, predictions: Predictions) -> None:
        """A batch's predictions: counted in the metrics (and the inference log), then each request answered."""
        outputs = self.model.outputs
        problem = outputs.problem(predictions, len(rows))
        if problem is not None:
            self.failed(jobs, ValueError(problem))
            return
        metrics = self.metrics
        try:
            # The score histogram is a binary model's (a multiclass model returns k probabilities per row).
            metrics.batch_done(len(rows), cast(list[float], predictions) if outputs.task == "binary" else None)
            if self.count_predictions:
                outputs.count(predictions, metrics.counts, metrics.prediction_offset)
            self.model.contract.count_bins(rows, metrics.counts, metrics.bin_offsets)
            if self.inference_log is not None:
                self.inference_log.record(rows, predictions)
        except Exception as err:  # noqa: BLE001 - a bug in counting must not leave the batch's requests unanswered
            log("count_failed", "error", error=f"{type(err).__name__}: {err}")
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            try:
                self._finish(job, predictions[start:end] if len(jobs) > 1 else predictions)
            except Exception as err:  # noqa: BLE001 - a bug in one answer is that request's 500, not the batch's
                log("answer_failed", "error", error=f"{type(err).__name__}: {err}")
                if not job.out.answered:
                    self._send(job.out, job.req, 500, _INTERNAL_ERROR, count=True)
            start = end

    def failed(self, jobs: list[Job], err: BaseException) -> None:
        log("model_failed", "error", error=f"{type(err).__name__}: {err}", rows=sum(len(j.rows) for j in jobs))
        body = dumps({"error": f"the model failed on this request ({type(err).__name__}); see the server log",
                      "rule": "server"})
        for job in jobs:
            self._send(job.out, job.req, 500, body, count=True)

    def _answer_chosen(self, chosen: binary.Selection, job: Job, predictions: Predictions) -> None:
        """A V2 answer with the outputs the request asked for, binary where it asked (steps._serving.binary)."""
        model = self.model
        head: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
        if job.request_id is not None:
            head["id"] = job.request_id
        body, header_length = binary.answer(head, model.outputs.v2(predictions), chosen)
        if header_length is None:
            self._send(job.out, job.req, 200, body, count=True)
        else:
            self._send(job.out, job.req, 200, body, binary.OCTET_STREAM, count=True,
                       extra=b"inference-header-content-length: %d\r\n" % header_length)

    def _finish(self, job: Job, predictions: Predictions) -> None:
        if job.answer is not None:
            job.answer(job, predictions)
            return
        model = self.model
        if job.v2:
            answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
            if job.request_id is not None:
                answer["id"] = job.request_id
            answer["outputs"] = model.outputs.v2(predictions)
        else:
            answer = {"predictions": model.outputs.v1(predictions), "model_version": model.version}
        self._send(job.out, job.req, 200, dumps(answer), count=True)

    # ---- the rest ----------------------------------------------------------------------------------------

    def _live(self, out: Responder, req: Request) -> None:
        self._send(out, req, 200, b'{"live":true}')

    def _ready(self, out: Responder, req: Request) -> None:
        ready = self.is_ready()
        self._send(out, req, 200 if ready else 503, b'{"ready":true}' if ready else b'{"ready":false}')

    def _metrics(self, out: Responder, req: Request) -> None:
        self._send(out, req, 200, self.metrics.render(), content_type=METRICS_TYPE)

    def _server_metadata(self, out: Responder, req: Request) -> None:
        self._send(out, req, 200, dumps({"name": "argo-mlops", "version": package_version(),
                                         "extensions": [binary.EXTENSION]}))

    def _v1_model(self, out: Responder, req: Request) -> None:
        self._send(out, req, 200, dumps({"name": self.model.name, "version": self.model.version,
                                         "ready": self.is_ready()}))

    def _v2_model(self, out: Responder, req: Request) -> None:
        model = self.model
        outputs, parameters = model.outputs.metadata()
        self._send(out, req, 200, dumps({
            "name": model.name, "versions": [model.version], "platform": f"argo-mlops/{model.predictor.kind}",
            "inputs": model.contract.v2_inputs(), "outputs": outputs, "parameters": parameters,
        }))

    def _v2_model_ready(self, out: Responder, req: Request) -> None:
        ready = self.is_ready()
        self._send(out, req, 200 if ready else 503, dumps({"name": self.model.name, "ready": ready}))

    def _error(self, out: Responder, req: Request, err: RequestError, count: bool) -> None:
        extra = b"allow: POST\r\n" if err.status == 405 and count else b"allow: GET\r\n" if err.status == 405 else b""
        self._send(out, req, err.status, dumps(err.body()), count=count, extra=extra)

    def _send(self, out: Responder, req: Request, status: int, body: bytes, content_type: bytes = JSON,
              count: bool = False, extra: bytes = b"") -> None:
        if count:
            self.metrics.request(status, time.perf_counter() - req.started, req.protocol)
        out.respond(status, body, content_type, not req.keep_alive or self.draining, extra,
                    req.method == b"HEAD")


def open_inference_log(model: ServedModel, settings: Settings) -> InferenceLog | None:
    """The sampled inference log when `settings.inference_log` names a location, else None."""
    if not settings.inference_log:
        return None
    return InferenceLog(settings.inference_log, model.name, model.version, model.contract.features,
                        settings.inference_log_sample, model.threshold, settings.inference_log_batch_rows,
                        settings.inference_log_flush_seconds, log=log, task=model.task, classes=model.labels)


def warm_up(model: ServedModel) -> Any:
    """One prediction through the whole path (contract check, encoding, model, the task's check) on a row the
    contract allows; returns it (binary: the score). Raises when the model cannot predict."""
    instance: dict[str, Any] = {}
    for f in model.contract.features:
        if f.type == "categorical":
            instance[f.name] = f.categories[0]
        else:
            value = f.min if f.min is not None else (min(0.0, f.max) if f.max is not None else 0.0)
            instance[f.name] = math.ceil(value) if f.type == "integer" else value
    rows = model.contract.rows_from_v1({"instances": [instance]})
    predictions = model.predictor.predict(rows)
    problem = model.outputs.problem(predictions, 1)
    if problem is not None:
        raise ValueError(f"the warm-up prediction returned {predictions!r}: {problem}")
    return predictions[0]


def _is_prediction(path: bytes) -> bool:
    return path.endswith((b":predict", b"/infer"))


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("argo-mlops")
    except Exception:  # noqa: BLE001 - metadata is optional (a source checkout): say so
        return "unknown"
