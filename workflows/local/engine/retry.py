"""Retries as Argo v4.1.2 decides them (operator.go processNodeRetries :1030-1207, the attempt's variables
:2513-2545): the Retry node's phase once it stops, the backoff wait, retryPolicy, limit and expression.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from workflows.local.engine.nodes import ERROR, FAILED, SUCCEEDED, Node
from workflows.local.engine.state import Operation
from workflows.local.lang.exprlang import argo_env, compile_expr

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class RetryError(ValueError):
    """A retryStrategy Argo cannot apply (a bad duration or policy); the node is Error."""


def parse_duration(value: Any) -> float:
    """wfv1.ParseStringToDuration: a number of seconds, or a Go duration (`1m30s`)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise RetryError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise RetryError(f'time: invalid duration "{text}"')
    return sign * total


def _int32(value: Any) -> int | None:
    """intstr.Int32: an int, or a string holding one."""
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError as err:
        raise RetryError(f"invalid value {value!r}: {err}") from err


def policy(strategy: Mapping[str, Any]) -> str:
    """RetryPolicyActual: OnFailure by default, Always when only an expression is given."""
    if strategy.get("retryPolicy"):
        return str(strategy["retryPolicy"])
    return "Always" if strategy.get("expression") else "OnFailure"


def duration_seconds(node: Node) -> str:
    """fmt.Sprint(node.GetDuration().Seconds()): node times are kept to the second."""
    if node.started_at is None or node.finished_at is None:
        return "0"
    seconds = int(node.finished_at) - int(node.started_at)
    return str(max(seconds, 0))


def attempt_variables(op: Operation, retry_node: Node, attempt: int) -> dict[str, str]:
    """retries and lastRetry.* for the attempt about to run."""
    attempts = op.retry_children(retry_node)
    last = attempts[-1] if attempts else None
    local = {"retries": str(attempt), "lastRetry.exitCode": "0", "lastRetry.duration": "0",
             "lastRetry.status": "", "lastRetry.message": ""}
    if last is not None:
        if last.outputs is not None and last.outputs.exit_code is not None:
            local["lastRetry.exitCode"] = last.outputs.exit_code
        local["lastRetry.status"] = last.phase
        local["lastRetry.duration"] = duration_seconds(last)
        local["lastRetry.message"] = last.message
    return local


def _expression_scope(op: Operation, node: Node) -> dict[str, Any]:
    attempts = op.retry_children(node)
    last = attempts[-1]
    exit_code = "-1"
    if last.outputs is not None and last.outputs.exit_code is not None:
        exit_code = last.outputs.exit_code
    return {"retries": str(len(attempts) - 1), "lastRetry.exitCode": exit_code, "lastRetry.status": last.phase,
            "lastRetry.duration": duration_seconds(last), "lastRetry.message": last.message}


def process(op: Operation, node: Node, strategy: Mapping[str, Any]) -> tuple[Node, bool, float | None]:
    """processNodeRetries: the Retry node, whether to go on (start or watch an attempt), and the execution deadline
    that backoff.maxDuration gives the next attempt."""
    if node.fulfilled:
        return node, True, None
    attempts = op.retry_children(node)
    if not attempts:
        return node, True, None
    last = attempts[-1]
    if last.daemoned:
        node.daemoned = True
    if not last.fulfilled:
        if not last.daemoned:
            return node, True, None
        op.mark_phase(node.name, last.phase)
        node.daemoned = True
        return node, True, None
    if last.phase not in (FAILED, ERROR):
        node.outputs = last.outputs
        node.extra["globalNames"] = last.extra.get("globalNames", {})
        return op.mark_phase(node.name, SUCCEEDED), True, None
    now = op.now()
    if op.shutdown or (op.deadline is not None and now > op.deadline):
        message = (f"Stopped with strategy '{op.shutdown}'" if op.shutdown else
                   "retry exceeded workflow deadline")
        return op.mark_phase(node.name, last.phase, message), True, None
    execution_deadline = None
    backoff = strategy.get("backoff")
    if backoff is not None:
        max_deadline = None
        if backoff.get("maxDuration"):
            max_deadline = (attempts[0].started_at or now) + parse_duration(backoff["maxDuration"])
            if now > max_deadline:
                return op.mark_phase(node.name, last.phase, "Max duration limit exceeded"), True, None
        if not backoff.get("duration"):
            raise RetryError("no base duration specified for retryStrategy")
        wait = parse_duration(backoff["duration"])
        factor = _int32(backoff.get("factor"))
        if factor is not None and factor > 0:
            wait = wait * math.pow(factor, len(attempts) - 1)
        if backoff.get("cap"):
            wait = min(wait, parse_duration(backoff["cap"]))
        waiting_deadline = (last.finished_at or now) + wait
        if max_deadline is not None and waiting_deadline > max_deadline:
            return op.mark_phase(node.name, last.phase, "Backoff would exceed max duration limit"), True, None
        limit = _int32(strategy.get("limit"))
        if now < waiting_deadline and limit is not None and len(attempts) <= limit:
            op.requeue_after(waiting_deadline)
            return op.mark_phase(node.name, node.phase, f"Backoff for {_humanize(wait)}"), False, None
        execution_deadline = max_deadline
        op.mark_phase(node.name, node.phase, "")
    actual = policy(strategy)
    if actual == "Always":
        on_failed = on_error = True
    elif actual == "OnError":
        on_failed, on_error = False, True
    elif actual == "OnFailure":
        on_failed, on_error = True, False
    elif actual == "OnTransientError":
        on_failed = on_error = False  # no local error is a Kubernetes transient error
    else:
        raise RetryError(f"{actual} is not a valid RetryPolicy")
    if (last.phase == FAILED and not on_failed) or (last.phase == ERROR and not on_error):
        return op.mark_phase(node.name, last.phase, last.message), True, None
    limit = _int32(strategy.get("limit"))
    if strategy.get("limit") is not None and limit is not None and len(attempts) > limit:
        return op.mark_phase(node.name, last.phase, "No more retries left"), True, None
    if strategy.get("expression"):
        env = argo_env(_expression_scope(op, node))
        if not compile_expr(str(strategy["expression"])).run_bool(env):
            return op.mark_phase(node.name, last.phase, "retryStrategy.expression evaluated to false"), True, None
    return node, True, execution_deadline


def _humanize(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} seconds" if whole != 1 else "1 second"
    minutes = whole // 60
    return f"{minutes} minutes" if minutes != 1 else "1 minute"
