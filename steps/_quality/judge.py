"""Judging one quality gate: the candidate's value against the gate's bound and, if it asks, the baseline's."""

from __future__ import annotations

from steps._core.documents import GateEntry
from steps._core.policy import GATES, Gate
from steps._quality.measures import Measured

NO_BASELINE = "no baseline yet"


def judge(g: Gate, cand: Measured, base: Measured | None, no_baseline: str = NO_BASELINE) -> GateEntry:
    """gate.json's entry for `g`: passed unless its bound or the comparison with the baseline says otherwise.
    `no_baseline` says why `base` is None, where a comparison needs it."""
    direction = GATES[g.name][0]
    value = cand.metrics.get(g.name)
    baseline_value = None if base is None else base.metrics.get(g.name)
    if direction == "required":
        bound, bound_kind, comparison, tolerance = None, "required", None, None
        reasons, notes = _required(g, cand, value)
    else:
        bound = g.minimum if direction == "min" else g.maximum
        bound_kind = "minimum" if direction == "min" else "maximum"
        comparison, tolerance = g.comparison, g.tolerance
        reasons, notes = _bounded(g, direction, bound, cand, value, base, baseline_value, no_baseline)
    if not g.required:
        notes.insert(0, "not required (informational)")
    return GateEntry(
        name=g.name,
        passed=not reasons,
        value=value,
        bound=bound,
        bound_kind=bound_kind,
        comparison=comparison,
        baseline_value=baseline_value,
        tolerance=tolerance,
        note="; ".join(reasons + notes),
    )


def _required(g: Gate, cand: Measured, failures: float | None) -> tuple[list[str], list[str]]:
    """(reasons to fail, notes) of a gate whose value counts failed cases (edge_cases)."""
    cases = len(cand.edge_cases)
    if failures:
        return [f"{failures} of {cases} cases failed: {cand.notes[g.name]}"], []
    return [], [f"all {cases} cases handled: {cand.notes[g.name]}"]


def _bounded(
    g: Gate,
    direction: str,
    bound: float | None,
    cand: Measured,
    value: float | None,
    base: Measured | None,
    baseline_value: float | None,
    no_baseline: str,
) -> tuple[list[str], list[str]]:
    """(reasons to fail, notes) of a gate with a minimum or a maximum, and perhaps a comparison."""
    reasons: list[str] = []
    notes: list[str] = []
    if g.name == "feature_importance_stability" and base is None:
        return reasons, [no_baseline]
    if value is None:
        if g.name == "feature_importance_stability":
            reasons.append("importances are constant, so their correlation is undefined")
        elif g.name in cand.notes:
            notes.append(cand.notes[g.name])  # e.g. recall_gap with fewer than two segments to compare
        else:
            reasons.append("could not be measured")
        return reasons, notes
    if direction == "min" and bound is not None and value < bound:
        reasons.append(f"{_num(value)} < minimum {_num(bound)}")
    if direction == "max" and bound is not None and value > bound:
        reasons.append(f"{_num(value)} > maximum {_num(bound)}")
    if g.comparison:
        if base is None:
            notes.append(no_baseline)
        elif baseline_value is None:
            notes.append("the baseline's value could not be measured: not compared")
        elif g.comparison == "gte" and value < baseline_value - g.tolerance:
            reasons.append(f"{_num(value)} < baseline {_num(baseline_value)} - {_num(g.tolerance)}")
        elif g.comparison == "lte" and value > baseline_value + g.tolerance:
            reasons.append(f"{_num(value)} > baseline {_num(baseline_value)} + {_num(g.tolerance)}")
    if g.name in cand.notes:
        notes.append(cand.notes[g.name])
    return reasons, notes


def _num(x: float) -> str:
    return f"{x:.4g}"
