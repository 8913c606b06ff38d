"""Argo Rollouts' reading of an AnalysisTemplate metric, for the tests that check our conditions and verdicts
against it: what it records for one measurement, and the cases every reading of the conditions must agree on."""

from __future__ import annotations

import math
import re
from typing import Any


def argo_verdict(metric: dict[str, Any], result: list[float]) -> str:
    """What Argo Rollouts records for one measurement: success is checked first, then failure, else
    Inconclusive. The expr conditions are evaluated as Python after a literal translation of their syntax."""

    def holds(condition: str) -> bool:
        assert re.fullmatch(r"[\w\s\[\]().<>=!&|]+", condition), condition  # nothing but what we translate
        text = condition.replace("&&", " and ").replace("||", " or ")
        text = re.sub(r"!(?!=)", " not ", text)
        return bool(eval(text, {"__builtins__": {}}, {"len": len, "isNaN": math.isnan, "result": result}))

    if holds(metric["successCondition"]):
        return "Successful"
    if holds(metric["failureCondition"]):
        return "Failed"
    return "Inconclusive"


VERDICTS = [
    ("latency-p95-ms", [], "Inconclusive"),
    ("latency-p95-ms", [math.nan], "Inconclusive"),
    ("latency-p95-ms", [47.5], "Successful"),
    ("latency-p95-ms", [100.0], "Successful"),
    ("latency-p95-ms", [100.001], "Failed"),
    ("latency-p95-ms", [math.inf], "Failed"),
    ("error-ratio", [], "Inconclusive"),
    ("error-ratio", [math.nan], "Inconclusive"),
    ("error-ratio", [0.0], "Successful"),
    ("error-ratio", [0.01], "Successful"),
    ("error-ratio", [0.1], "Failed"),
]
