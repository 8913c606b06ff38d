"""Mixed traffic for `run.py --soak --mixed`: the benchmark's good requests interleaved with what careless and
hostile clients send (issue 12), each as the raw bytes of a whole request with the status our server must answer.

The requests go to post.lua as a `#raw` file (one request per line, hex-encoded); wrk sends them in rotation, so
over a run each kind's share of the requests is its share of the file. No kind leaves a request half-sent (that
would hold a connection until the request timeout, which the tests cover): every one gets its answer at once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RAW_HEADER = "#raw"  # post.lua: the lines after it are hex-encoded whole requests


@dataclass(frozen=True)
class Kind:
    name: str
    status: int
    requests: tuple[bytes, ...]


def _request(method: str, target: str, body: bytes = b"", headers: tuple[str, ...] = (),
             host: bool = True, content_type: str | None = "application/json") -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host:
        lines.append("host: 127.0.0.1")
    if content_type is not None and body:
        lines.append(f"content-type: {content_type}")
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def kinds(model: str, v2_bodies: list[bytes], v1_bodies: list[bytes], max_rows: int = 1000) -> list[Kind]:
    """Every kind of request in the mix, with the status our server answers it with (its default limits)."""
    infer, predict = f"/v2/models/{model}/infer", f"/v1/models/{model}:predict"
    good = v2_bodies[0]
    parsed = json.loads(good)
    deep = json.dumps({**parsed, "inputs": [{**parsed["inputs"][0], "datatype": "@@"}, *parsed["inputs"][1:]]})
    surrogate = json.dumps({**parsed, "id": "@@"}).replace('"@@"', '"\\ud800"').encode()
    unknown = json.loads(v1_bodies[0])
    unknown["instances"][0]["not_a_feature"] = 1
    return [
        Kind("v2_infer", 200, tuple(_request("POST", infer, b) for b in v2_bodies)),
        Kind("v1_predict", 200, tuple(_request("POST", predict, b) for b in v1_bodies[:8])),
        Kind("metrics", 200, (_request("GET", "/metrics"),)),
        Kind("malformed_json", 400, (_request("POST", infer, good[:-7]),)),
        Kind("lone_surrogate", 400, (_request("POST", infer, surrogate),)),
        Kind("nested_1000_deep", 422, (_request("POST", infer, deep.replace('"@@"', "[" * 1000 + "]" * 1000)
                                                .encode()),)),
        Kind("unknown_field", 422, (_request("POST", predict, json.dumps(unknown).encode()),)),
        Kind("too_many_rows", 413, (_request("POST", predict, json.dumps(
            {"instances": [{}] * (max_rows + 1)}).encode()),)),
        Kind("body_too_large", 413, (f"POST {infer} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json"
                                     "\r\ncontent-length: 50000000\r\n\r\n".encode(),)),
        Kind("wrong_content_type", 415, (_request("POST", infer, good, content_type="text/csv"),)),
        Kind("get_on_infer", 405, (_request("GET", infer),)),
        Kind("another_model", 404, (_request("POST", "/v2/models/churn/infer", good),)),
        Kind("no_host", 400, (_request("POST", infer, good, host=False),)),
        Kind("unknown_expectation", 417, (_request("POST", infer, good, headers=("expect: teapot",)),)),
        Kind("target_too_long", 414, (_request("GET", "/v2/health/live?" + "x" * 9000),)),
        Kind("header_too_long", 431, (_request("GET", "/v2/health/live", headers=("x-big: " + "v" * 9000,)),)),
        Kind("too_many_headers", 431, (_request("GET", "/v2/health/live",
                                                headers=tuple(f"x-h{i}: 1" for i in range(101))),)),
        Kind("malformed_request_line", 400, (b"BREW /pot HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",)),
    ]


def write(path: Path, mix: list[Kind], bad_repeats: int = 2) -> dict[str, object]:
    """The `#raw` request file: good kinds once per request, each bad kind `bad_repeats` times (spread through
    the file). Returns what it holds: per kind its count, per status its share of the requests."""
    good = [r for k in mix if k.status == 200 for r in k.requests]
    bad = [(k, r) for _ in range(bad_repeats) for k in mix if k.status != 200 for r in k.requests]
    step = max(1, len(good) // max(1, len(bad)))
    lines: list[bytes] = []
    statuses: Counter[int] = Counter()
    for i, request in enumerate(good):
        lines.append(request)
        statuses[200] += 1
        if i % step == step - 1 and bad:
            kind, raw = bad.pop()
            lines.append(raw)
            statuses[kind.status] += 1
    for kind, raw in bad:
        lines.append(raw)
        statuses[kind.status] += 1
    path.write_text(RAW_HEADER + "\n" + "".join(line.hex() + "\n" for line in lines))
    total = sum(statuses.values())
    return {"requests": total, "kinds": {k.name: {"status": k.status, "requests": len(k.requests)
                                                  * (1 if k.status == 200 else bad_repeats)} for k in mix},
            "status_shares": {str(s): round(n / total, 5) for s, n in sorted(statuses.items())}}


def check(statuses: dict[int, int], shares: dict[str, float], completed: int, slack: int) -> list[str]:
    """What is wrong with a run's statuses: one outside the mix, or a status whose count strays from its share
    of the completed requests by more than `slack` (the requests in flight when the run ended)."""
    problems = [f"status {s}: {n} answers, none expected" for s, n in statuses.items() if str(s) not in shares]
    for status, share in shares.items():
        got, expected = statuses.get(int(status), 0), share * completed
        if abs(got - expected) > slack + 0.01 * expected:
            problems.append(f"status {status}: {got} answers, {expected:.0f} expected")
    return problems
