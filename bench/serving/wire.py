"""The request paths beyond JSON: the Open Inference Protocol's HTTP binary tensor extension and KServe V2 gRPC.

Request bytes come from tritonclient, the most used OIP client, exactly as its defaults send them:
`tritonclient.http.InferenceServerClient.generate_request_body` (binary inputs, `binary_data_output` asked for,
header `Inference-Header-Content-Length`, no Content-Type) and tritonclient.grpc's ModelInferRequest (inputs in
`raw_input_contents`). Both carry MLServer's codec hints as parameters (`content_type: pd` on the request, `str`
on string inputs), which our server ignores, so every server gets the same bytes.

Load: wrk with post.lua's `#binary` file for HTTP binary; h2load (Debian's nghttp2-client) for gRPC, posting the
gRPC-framed request (a 5-byte prefix, then the message) over h2c. h2load reads neither grpc-status nor the
message, so a run also compares the server's own counters of gRPC answers by status (and the DATA bytes h2load
received against a correct answer's size): an answer that is not OK counts as an error.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from steps._core.policy import Policy

# Contender protocols: "v2" and "v1" are JSON over HTTP (model.py writes those bodies); these two are here.
BINARY, GRPC = "v2-binary", "grpc"
PATH_NAMES = {"v2": "HTTP JSON", "v1": "HTTP JSON (V1)", BINARY: "HTTP binary", GRPC: "gRPC"}
BODY_FILES = {BINARY: "bodies-v2-binary.txt", GRPC: "bodies-grpc.hex"}
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_MODEL_READY = "/inference.GRPCInferenceService/ModelReady"
_NUMPY = {"numeric": np.float64, "integer": np.int64, "categorical": np.object_}
_DATATYPE = {"numeric": "FP64", "integer": "INT64", "categorical": "BYTES"}


class WireError(RuntimeError):
    """A request or answer on the binary or gRPC path is not what it should be; the message says which."""


def path_name(protocol: str) -> str:
    return PATH_NAMES.get(protocol, protocol)


# --- request bodies ---------------------------------------------------------------------------------------


def _array(feature_type: str, value: Any) -> np.ndarray:
    if feature_type == "categorical":
        return np.array([str(value).encode()], dtype=np.object_)
    return np.array([value], dtype=_NUMPY[feature_type])


def binary_body(policy: Policy, row: dict[str, Any]) -> tuple[bytes, int]:
    """One row as tritonclient.http sends it by default: (body, Inference-Header-Content-Length)."""
    import tritonclient.http as triton_http

    inputs = []
    for feature in policy.data.features:
        item = triton_http.InferInput(feature.name, [1], _DATATYPE[feature.type])
        item.set_data_from_numpy(_array(feature.type, row[feature.name]))  # binary_data=True, the default
        if feature.type == "categorical":
            item._parameters["content_type"] = "str"  # MLServer's codec hint; tritonclient has no public setter
        inputs.append(item)
    body, header_length = triton_http.InferenceServerClient.generate_request_body(
        inputs, parameters={"content_type": "pd"})
    if header_length is None:
        raise WireError("tritonclient wrote a JSON-only body; expected binary inputs")
    return bytes(body), int(header_length)


def grpc_request(policy: Policy, model_name: str, row: dict[str, Any]) -> bytes:
    """One row as a serialized ModelInferRequest, built the way tritonclient.grpc's infer() builds it."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.grpc._utils import _get_inference_request

    inputs = []
    for feature in policy.data.features:
        item = triton_grpc.InferInput(feature.name, [1], _DATATYPE[feature.type])
        item.set_data_from_numpy(_array(feature.type, row[feature.name]))  # raw_input_contents
        if feature.type == "categorical":
            item._input.parameters["content_type"].string_param = "str"
        inputs.append(item)
    request = _get_inference_request(model_name=model_name, inputs=inputs, model_version="", request_id="",
                                     outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
                                     priority=0, timeout=None, parameters={"content_type": "pd"})
    return bytes(request.SerializeToString())


def grpc_frame(message: bytes) -> bytes:
    """gRPC's length-prefixed message: not compressed (0), 4-byte big-endian length, the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_unframe(data: bytes) -> bytes:
    if len(data) < 5 or data[0] != 0:
        raise WireError(f"not an uncompressed gRPC frame: {data[:16]!r}")
    (length,) = struct.unpack(">I", data[1:5])
    if len(data) != 5 + length:
        raise WireError(f"gRPC frame says {length} bytes, holds {len(data) - 5}")
    return data[5:]


def write_bodies(policy: Policy, model_name: str, rows: list[dict[str, Any]], workdir: Path) -> dict[str, Path]:
    """The request files of both paths: post.lua's `#binary` file (header length, then the body in hex, per
    line) and the serialized gRPC requests (hex, one per line)."""
    binary = workdir / BODY_FILES[BINARY]
    lines = ["#binary"]
    for row in rows:
        body, header_length = binary_body(policy, row)
        lines.append(f"{header_length} {body.hex()}")
    binary.write_text("\n".join(lines) + "\n")
    grpc = workdir / BODY_FILES[GRPC]
    messages = [grpc_request(policy, model_name, row) for row in rows]
    grpc.write_text("".join(m.hex() + "\n" for m in messages))
    load_body(grpc).write_bytes(grpc_frame(messages[0]))
    return {BINARY: binary, GRPC: grpc}


def load_body(grpc_bodies: Path) -> Path:
    """The one framed request h2load posts (it sends the same data on every request): the first row's."""
    return grpc_bodies.with_name("grpc-load-body.bin")


def read_bodies(protocol: str, path: Path) -> list[tuple[bytes, int | None]]:
    """(body, header length) per request row; JSON bodies have no header length."""
    lines = [line for line in path.read_text().splitlines() if line]
    if protocol == BINARY:
        out: list[tuple[bytes, int | None]] = []
        for line in lines[1:]:
            length, hexed = line.split(" ", 1)
            out.append((bytes.fromhex(hexed), int(length)))
        return out
    if protocol == GRPC:
        return [(bytes.fromhex(line), None) for line in lines]
    return [(line.encode(), None) for line in lines]


# --- answers ----------------------------------------------------------------------------------------------


def _as_response(outputs: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The answer as the JSON form bench.serving.contenders.scores reads, values from the client's arrays."""
    return {"outputs": [{"name": o["name"], "datatype": o.get("datatype", ""), "shape": list(o.get("shape", [])),
                         "data": [v.decode() if isinstance(v, bytes) else v
                                  for v in arrays[o["name"]].reshape(-1).tolist()]} for o in outputs]}


def binary_answer(status: int, headers: dict[str, str], raw: bytes) -> tuple[int, Any, bool]:
    """(status, answer in JSON form, whether it came as binary), read with tritonclient.http's own parser."""
    import tritonclient.http as triton_http

    if status != 200:
        return status, raw.decode(errors="replace"), False
    length = {k.lower(): v for k, v in headers.items()}.get("inference-header-content-length")
    result = triton_http.InferenceServerClient.parse_response_body(
        raw, header_length=int(length) if length is not None else None)
    response = result.get_response()
    outputs = response.get("outputs", [])
    arrays = {o["name"]: result.as_numpy(o["name"]) for o in outputs}
    if any(a is None for a in arrays.values()):
        raise WireError(f"tritonclient could not read every output of {str(response)[:300]}")
    return status, _as_response(outputs, arrays), length is not None


def grpc_call(target: str, method: str, request: bytes, timeout: float = 10.0) -> bytes:
    """One unary call with the serialized request as is; the serialized answer. Raises grpc.RpcError."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return bytes(call(request, timeout=timeout))


def grpc_answer(raw: bytes) -> dict[str, Any]:
    """A serialized ModelInferResponse in JSON form, the values read by tritonclient.grpc's InferResult."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse.FromString(raw)
    result = triton_grpc.InferResult(response)
    outputs = [{"name": o.name, "datatype": o.datatype, "shape": list(o.shape)} for o in response.outputs]
    arrays = {o["name"]: result.as_numpy(o["name"]) for o in outputs}
    if any(a is None for a in arrays.values()):
        raise WireError(f"tritonclient.grpc could not read every output of {str(response)[:300]}")
    return _as_response(outputs, arrays)


def grpc_model_ready(target: str, model_name: str, timeout: float = 1.0) -> bool:
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelReadyRequest(name=model_name).SerializeToString()
    return bool(service_pb2.ModelReadyResponse.FromString(grpc_call(target, GRPC_MODEL_READY, request,
                                                                    timeout)).ready)


# --- gRPC load with h2load --------------------------------------------------------------------------------


def h2load_command(url: str, data: Path, connections: int, duration: float, log: Path) -> list[str]:
    """h2load over h2c (prior knowledge), one stream per connection, so `connections` requests are in flight
    as with wrk's connections; one thread, a per-request log for the percentiles."""
    return ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{max(1, round(duration))}", "-d", str(data),
            "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log), url]


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout")
_TRAFFIC = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data")


def run_h2load(command: list[str], log: Path, timeout: float) -> dict[str, Any]:
    """Run h2load; requests, seconds, latency percentiles (from its log), errors, DATA bytes received."""
    log.unlink(missing_ok=True)
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    out = done.stdout
    finished, counted, traffic = _FINISHED.search(out), _REQUESTS.search(out), _TRAFFIC.search(out)
    if done.returncode != 0 or not (finished and counted and traffic):
        raise WireError(f"h2load exited {done.returncode}: {(done.stderr + out).strip()[-1500:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    total, _started, _done, succeeded, failed, errored, timed_out = (int(g) for g in counted.groups())
    latencies = []
    statuses: dict[str, int] = {}
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            statuses[parts[1]] = statuses.get(parts[1], 0) + 1
            latencies.append(int(parts[2]))
    latencies.sort()
    return {"seconds": seconds, "requests": succeeded, "total": total, "data_bytes": int(traffic.group(3)),
            "latency_us": _percentiles(latencies), "statuses": statuses,
            "errors": {"failed": failed, "errored": errored, "timeout": timed_out}}


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {k: 0.0 for k in ("min", "mean", "max", "p50", "p90", "p99", "p999")}

    def at(q: float) -> float:  # nearest rank, as wrk's percentile()
        return float(values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))])

    return {"min": float(values[0]), "mean": sum(values) / len(values), "max": float(values[-1]),
            "p50": at(50), "p90": at(90), "p99": at(99), "p999": at(99.9)}


def grpc_counts(metrics_url: str) -> dict[str, float] | None:
    """Answered ModelInfer calls by status, as HTTP codes, from a server's metrics page: ours counts gRPC answers
    in model_requests_total{protocol="grpc", code}; MLServer's py-grpc-prometheus in grpc_server_handled_total
    {grpc_method="ModelInfer", grpc_code}. None when the page cannot be read."""
    import urllib.request

    from steps._core.prometheus import parse_exposition

    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for name, labels, value in parse_exposition(text, "model_requests_total", "grpc_server_handled_total",
                                                where=metrics_url):
        if name == "model_requests_total" and labels.get("protocol") == "grpc":
            code = labels.get("code", "?")
        elif name == "grpc_server_handled_total" and labels.get("grpc_method") == "ModelInfer":
            code = _GRPC_AS_HTTP.get(labels.get("grpc_code", "?"), labels.get("grpc_code", "?"))
        else:
            continue
        out[code] = out.get(code, 0.0) + value
    return out


# The spec's mapping of gRPC statuses to HTTP codes (the one our server's metrics use).
_GRPC_AS_HTTP = {"OK": "200", "INVALID_ARGUMENT": "400", "NOT_FOUND": "404", "RESOURCE_EXHAUSTED": "413",
                 "UNAVAILABLE": "503", "INTERNAL": "500", "UNKNOWN": "500"}


def grpc_load(prefix: list[str], target: str, infer_path: str, data: Path, metrics_url: str, *, connections: int,
              duration: float, log: Path) -> dict[str, Any]:
    """h2load at `connections` for `duration`, its answers checked as far as h2load cannot: the server's own
    count of ModelInfer answers by status over the run (anything but OK is an error; fewer OK answers than h2load
    completed are errors too), and the DATA bytes h2load received per answer against a correct answer's size
    (a gRPC error is a trailers-only answer: no DATA)."""
    expected = len(grpc_call(target, infer_path, grpc_unframe(data.read_bytes()))) + 5
    before = grpc_counts(metrics_url)
    command = [*prefix, *h2load_command(f"http://{target}{infer_path}", data, connections, duration, log)]
    result = run_h2load(command, log, timeout=duration + 120)
    time.sleep(0.5)  # the calls in flight when h2load stopped finish on the server
    after = grpc_counts(metrics_url)
    counted = None if before is None or after is None else count_delta(before, after)
    done = result["requests"]
    errors = dict(result["errors"])
    errors["non_2xx"] = sum(n for status, n in result["statuses"].items() if not status.startswith("2"))
    if counted is not None:
        errors["grpc_not_ok"] = sum(n for code, n in counted.items() if code != "200")
        errors["unconfirmed"] = max(0, done - counted.get("200", 0))
    per_answer = result["data_bytes"] / done if done else 0.0
    errors["short_answers"] = 0 if per_answer >= 0.9 * expected else done
    seconds = result["seconds"]
    return {
        "connections": connections, "seconds": round(seconds, 3), "requests": done,
        "throughput_rps": round(done / seconds, 1) if seconds else 0.0,
        "latency_ms": {k: round(v / 1000, 3) for k, v in result["latency_us"].items()},
        "errors": errors, "error_count": sum(errors.values()),
        "grpc_check": {"server_counted": counted, "answer_bytes": expected,
                       "data_bytes_per_answer": round(per_answer, 1), "h2load_statuses": result["statuses"]},
    }


def count_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(after.get(k, 0) - before.get(k, 0)) for k in sorted(set(before) | set(after))
            if after.get(k, 0) - before.get(k, 0)}
