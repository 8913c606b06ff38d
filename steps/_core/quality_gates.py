"""The quality gates a policy's `quality` section may name: each gate's direction and settings, the tasks that can
measure it, the section's shape (made from that table) and the Gate the gate step evaluates."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic.dataclasses import dataclass
from pydantic.types import StrictBool, StrictStr

from steps._core.values import CONFIG, NonNegative, Number, Positive, Section, one_of, schema_string

SKIPPED = ("allow", "block")  # what a gate that cannot be evaluated does to the verdict
# The quality gates we know how to measure: name -> (direction, extra settings with their defaults).
# Direction says which bound the gate takes: "min" (higher is better) or "max" (lower is better).
GATES: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy": ("min", {}),
    "precision": ("min", {}),
    "recall": ("min", {}),
    "f1": ("min", {}),
    "pr_auc": ("min", {}),
    "roc_auc": ("min", {}),
    "log_loss": ("max", {}),
    "macro_f1": ("min", {}),
    "log_loss_vs_prior": ("max", {}),
    "class_recall": ("min", {"min_support": 20}),
    "macro_f1_gap": ("max", {"min_rows": 100}),
    "rmse": ("max", {}),
    "mae": ("max", {}),
    "r2": ("min", {}),
    "rmse_vs_mean": ("max", {}),
    "latency_p95_ms": ("max", {"calls": 1000}),
    "model_size_mb": ("max", {}),
    "feature_importance_stability": ("min", {}),
    "peak_memory_mb": ("max", {"rows": 10000}),
    "recall_gap": ("max", {"min_positives": 20}),
    "edge_cases": ("required", {}),
    "predictor_parity": ("max", {}),
}
_EVERY_TASK = ("latency_p95_ms", "model_size_mb", "feature_importance_stability", "peak_memory_mb", "edge_cases",
               "predictor_parity")
# The gates each task can measure: a gate of another task is refused, not skipped.
TASK_GATES: dict[str, frozenset[str]] = {
    "binary": frozenset(("accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc", "log_loss", "recall_gap",
                         *_EVERY_TASK)),
    "multiclass": frozenset(("accuracy", "macro_f1", "log_loss", "log_loss_vs_prior", "class_recall",
                             "macro_f1_gap", *_EVERY_TASK)),
    "regression": frozenset(("rmse", "mae", "r2", "rmse_vs_mean", *_EVERY_TASK)),
}


@dataclasses.dataclass(frozen=True)
class Gate:
    """One quality gate as the gate step evaluates it (from the file's `quality` section)."""

    name: str
    minimum: float | None = None
    maximum: float | None = None
    comparison: str | None = None  # "gte" | "lte" | None
    tolerance: float = 0.0
    required: bool = True
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    if_skipped: str = "allow"  # a gate that cannot be evaluated: "allow" (reported, not blocking) or "block"


def _gate_section(name: str, direction: str, extras: dict[str, Any]) -> Any:
    """The section one gate takes in the file, made from its GATES entry."""
    skipped = Annotated[StrictStr, one_of(*SKIPPED), schema_string(enum=list(SKIPPED))]
    if direction == "required":
        text = f"{name}: with `required: true` a failure rejects the candidate; with false it is only reported."
        fields: dict[str, Any] = {"required": StrictBool}
        defaults: dict[str, Any] = {}
    else:
        bound, comparison = ("minimum", "gte") if direction == "min" else ("maximum", "lte")
        text = (f"{name}: `{bound}` is an absolute bound; `comparison: {comparison}` also compares the candidate to "
                "the production model on the same holdout, within `tolerance` and the sampling noise (a bootstrap "
                "interval); `if_skipped: block` rejects a candidate when the gate cannot be evaluated.")
        compared = Annotated[StrictStr, one_of(comparison), schema_string(enum=[comparison])]
        fields = {bound: Number, "comparison": compared | None, "tolerance": NonNegative, "if_skipped": skipped,
                  **dict.fromkeys(extras, Positive)}
        defaults = {"comparison": None, "tolerance": 0.0, "if_skipped": "allow", **extras}
    return dataclass(type(name, (Section,), {"__doc__": text, "__annotations__": fields, **defaults}), config=CONFIG)


# One field per gate, optional, but typed without None: a gate left empty (null) is refused, not quietly dropped.
QualitySection = dataclass(type("QualitySection", (Section,), {
    "__doc__": "The quality gates: a gate left out is not evaluated.",
    "__annotations__": {name: _gate_section(name, *spec) for name, spec in GATES.items()},
    **dict.fromkeys(GATES),
}), config=CONFIG)


def gate_from_section(name: str, spec: Any) -> Gate:
    """The Gate of one entry of a loaded `quality` section."""
    direction, extras = GATES[name]
    if direction == "required":
        return Gate(name, required=spec.required)
    return Gate(name, minimum=getattr(spec, "minimum", None), maximum=getattr(spec, "maximum", None),
                comparison=spec.comparison, tolerance=spec.tolerance, settings={k: getattr(spec, k) for k in extras},
                if_skipped=spec.if_skipped)
