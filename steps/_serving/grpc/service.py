"""inference.GRPCInferenceService (KServe V2 gRPC) on a worker's event loop, beside the HTTP transport and through
the same App: one model, one batcher (a gRPC request's rows join the HTTP requests' batches), one metrics table
(protocol="grpc") and one readiness (ready after the warm-up, not while draining).

grpc.aio runs on the worker's loop, uvloop included: its completion queue is polled by grpc's own thread, which
hands events to whichever asyncio loop is running. Statuses: a client's mistake is INVALID_ARGUMENT with the HTTP
answer's message (never INTERNAL), a model or version this server does not serve NOT_FOUND, a model failure
INTERNAL. More rows than --max-rows is INVALID_ARGUMENT too, as Triton answers a batch over its maximum: the same
request never succeeds, and clients retry RESOURCE_EXHAUSTED (which grpc itself answers to a message over the
size limit, --max-body-bytes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, cast

import grpc

from steps._serving import app as _app
from steps._serving.batcher import Job, Predictions
from steps._serving.contract import RequestError
from steps._serving.exchange import Request
from steps._serving.grpc import grpc_predict_v2_pb2 as pb
from steps._serving.grpc.messages import json_inputs, output_tensors
from steps._serving.log import log

SERVICE = "inference.GRPCInferenceService"
# gRPC statuses as the HTTP codes KServe maps them to: model_requests_total{protocol="grpc"}'s `code`.
CODES = {grpc.StatusCode.OK: 200, grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
         grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500,
         grpc.StatusCode.UNKNOWN: 500}
_INFER = b"/" + SERVICE.encode() + b"/ModelInfer"


class _NotServed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class _Failed:
    """A batch that failed, as App answers it through the Responder: its JSON error message."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


class _Call:
    """One ModelInfer call waiting for its batch: the App's Responder for it (a failed batch answers through
    `respond`; a scored one through Service._answer), and what its answer carries."""

    __slots__ = ("future", "raw", "request_id", "wanted")

    def __init__(self, future: asyncio.Future[pb.ModelInferResponse | _Failed], raw: bool, wanted: list[str],
                 request_id: str):
        self.future, self.raw, self.wanted, self.request_id = future, raw, wanted, request_id

    @property
    def answered(self) -> bool:
        return self.future.done()

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        if not self.future.done():
            try:
                message = str(_app.parse_json(body)["error"])
            except (RequestError, KeyError, TypeError):
                message = body.decode(errors="replace")
            self.future.set_result(_Failed(message))


class Service:
    """The six methods of the KServe V2 gRPC API for the App's one model; the model repository extension's two
    answer UNIMPLEMENTED (no handler)."""

    def __init__(self, app: _app.App):
        self.app = app
        model = app.model
        self.output_names = [o["name"] for o in model.outputs.metadata()[0]]

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(method: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], request: Any,
                  response: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request.FromString,
                                                       response_serializer=response.SerializeToString)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": unary(self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
            "ModelMetadata": unary(self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "ModelInfer": unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
        })

    # ---- health and metadata -----------------------------------------------------------------------------

    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.app.is_ready())

    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            self._check_model(request.name, request.version, "name")
        except _NotServed as err:
            await context.abort(err.code, err.message)
        return pb.ModelReadyResponse(ready=self.app.is_ready())

    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="argo-mlops", version=_app.package_version(), extensions=[])

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        try:
            self._check_model(request.name, request.version, "name")
        except _NotServed as err:
            await context.abort(err.code, err.message)
        model = self.app.model
        tensor = pb.ModelMetadataResponse.TensorMetadata
        # The V2 JSON metadata's `parameters` (task, classes, threshold) have no field in the gRPC message.
        return pb.ModelMetadataResponse(
            name=model.name, versions=[model.version], platform=f"argo-mlops/{model.predictor.kind}",
            inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                    for t in model.contract.v2_inputs()],
            outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                     for t in model.outputs.metadata()[0]])

    # ---- inference ---------------------------------------------------------------------------------------

    async def model_infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        req = Request(b"POST", _INFER, None, b"", True, protocol="grpc")
        try:
            return await self._infer(request, context, req)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as err:  # noqa: BLE001 - a bug is INTERNAL and logged; the server keeps serving
            log("handler_failed", "error", error=f"{type(err).__name__}: {err}", protocol="grpc")
            await self._abort(context, req, grpc.StatusCode.INTERNAL, "internal error; see the server log")

    async def _infer(self, request: pb.ModelInferRequest, context: Any, req: Request) -> pb.ModelInferResponse:
        app = self.app
        try:
            self._check_model(request.model_name, request.model_version, "model_name")
            wanted = self._wanted(request)
            rows = app.model.contract.rows_from_v2(json_inputs(request))
        except _NotServed as err:
            await self._abort(context, req, err.code, err.message)
        except RequestError as err:
            await self._abort(context, req, grpc.StatusCode.INVALID_ARGUMENT, err.message)
        if app.batcher is None:
            raise RuntimeError("a prediction arrived before the worker attached the batcher")
        call = _Call(asyncio.get_running_loop().create_future(), bool(request.raw_input_contents), wanted,
                     request.id)
        app.batcher.submit(Job(rows, req, call, True, request.id or None, answer=self._answer))
        result = await call.future
        if isinstance(result, _Failed):  # the App counted it (500)
            await context.abort(grpc.StatusCode.INTERNAL, result.message)
        return cast(pb.ModelInferResponse, result)

    def _answer(self, job: Job, predictions: Predictions) -> None:
        """A scored request's answer (App._finish calls it with the request's share of the batch)."""
        call = cast(_Call, job.out)
        model = self.app.model
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=call.request_id)
        output_tensors(model.outputs.v2(predictions), call.wanted, call.raw, response)
        self.app.metrics.request(200, time.perf_counter() - job.req.started, "grpc")
        if not call.future.done():  # a call the client cancelled is answered to no one
            call.future.set_result(response)

    def _wanted(self, request: pb.ModelInferRequest) -> list[str]:
        wanted = [o.name for o in request.outputs]
        for i, name in enumerate(wanted):
            if name not in self.output_names:
                raise RequestError(f"outputs[{i}].name: {name[:60]!r} is not an output of the model (outputs: "
                                   f"{', '.join(self.output_names)})", "unknown_output", name[:60], 400)
        return wanted

    def _check_model(self, name: str, version: str, field: str) -> None:
        model = self.app.model
        served = f"this server serves model {model.name!r} version {model.version}"
        if not name:
            raise _NotServed(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: required; {served}")
        if name != model.name:
            raise _NotServed(grpc.StatusCode.NOT_FOUND, f"model {name[:100]!r} is not served here; {served}")
        if version and version != model.version:
            raise _NotServed(grpc.StatusCode.NOT_FOUND,
                             f"model {name!r} version {version[:40]!r} is not served here; {served}")

    async def _abort(self, context: Any, req: Request, code: grpc.StatusCode, message: str) -> NoReturn:
        """Counted, then the call ends with `code` (context.abort raises)."""
        self.app.metrics.request(CODES.get(code, 500), time.perf_counter() - req.started, "grpc")
        await context.abort(code, message)
        raise RuntimeError("grpc's context.abort returned")


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(app: _app.App, host: str, port: int, reuse_port: bool,
                max_message_bytes: int) -> tuple[grpc.aio.Server, int]:
    """The gRPC server of `app` listening on host:port (each worker its own, sharing the port with SO_REUSEPORT
    when `reuse_port`), and the port (port 0: the one it chose); a port it cannot bind raises RuntimeError."""
    server = grpc.aio.server(options=[
        # grpc sets SO_REUSEPORT by default: a single worker must not silently share its port with another server.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_message_bytes),
    ])
    server.add_generic_rpc_handlers((Service(app).handler(),))
    bound = server.add_insecure_port(address(host, port))
    await server.start()
    return server, bound
