"""Judging one quality gate: the candidate's value against the gate's bound and, if it asks, the baseline's,
within the gate's tolerance and the sampling noise of the holdout (steps._quality.noise).

A gate ends `pass`, `fail` or `skipped` (it could not be evaluated: no segment with enough positives, no
baseline yet, a baseline of another task to compare with). A skipped gate never says pass: its reason is in the
note, and it blocks the candidate only when the policy says `if_skipped: block`.
"""

from __future__ import annotations

from steps._core.documents import GateEntry
from steps._core.policy import GATES, Gate
from steps._quality.measures import Measured
from steps._quality.noise import Interval

NO_BASELINE = "no baseline yet"
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


def judge(g: Gate, cand: Measured, base: Measured | None, no_baseline: str = NO_BASELINE,
          interval: Interval | None = None, incomparable: bool = False) -> GateEntry:
    """gate.json's entry for `g`. `no_baseline` says why `base` is None, where a comparison needs it; `interval`
    is the bootstrap interval of (candidate - baseline) for this gate's metric, when one was measured.
    `incomparable`: there is a baseline, but not one to compare with (another task, other classes): a comparison
    gate that passes its bound is skipped, not passed, so that `if_skipped: block` can hold the candidate."""
    direction = GATES[g.name][0]
    value = cand.metrics.get(g.name)
    baseline_value = None if base is None else base.metrics.get(g.name)
    if direction == "required":
        bound, bound_kind, comparison, tolerance = None, "required", None, None
        status, reasons, notes = _required(g, cand, value)
    else:
        bound = g.minimum if direction == "min" else g.maximum
        bound_kind = "minimum" if direction == "min" else "maximum"
        comparison, tolerance = g.comparison, g.tolerance
        status, reasons, notes = _bounded(g, direction, bound, cand, value, base, baseline_value, no_baseline,
                                          interval, incomparable)
    if status == SKIPPED and g.if_skipped == "block":
        reasons.append("could not be evaluated, and the policy says if_skipped: block")
    if not g.required:
        notes.insert(0, "not required (informational)")
    return GateEntry(
        name=g.name,
        passed=not reasons,
        status=status,
        value=value,
        bound=bound,
        bound_kind=bound_kind,
        comparison=comparison,
        baseline_value=baseline_value,
        tolerance=tolerance,
        interval=None if interval is None else [interval.low, interval.high],
        note="; ".join(reasons + notes),
    )


def _required(g: Gate, cand: Measured, failures: float | None) -> tuple[str, list[str], list[str]]:
    """(status, reasons to fail, notes) of a gate whose value counts failed cases (edge_cases)."""
    cases = len(cand.edge_cases)
    if failures:
        return FAIL, [f"{failures} of {cases} cases failed: {cand.notes[g.name]}"], []
    return PASS, [], [f"all {cases} cases handled: {cand.notes[g.name]}"]


def _bounded(
    g: Gate,
    direction: str,
    bound: float | None,
    cand: Measured,
    value: float | None,
    base: Measured | None,
    baseline_value: float | None,
    no_baseline: str,
    interval: Interval | None,
    incomparable: bool = False,
) -> tuple[str, list[str], list[str]]:
    """(status, reasons to fail, notes) of a gate with a minimum or a maximum, and perhaps a comparison."""
    reasons: list[str] = []
    notes: list[str] = []
    if g.name == "feature_importance_stability" and base is None:
        return SKIPPED, reasons, [f"skipped: {no_baseline}: no importances to compare with"]
    if value is None:
        if g.name == "feature_importance_stability":
            return FAIL, ["importances are constant, so their correlation is undefined"], notes
        why = cand.notes.get(g.name, "could not be measured")  # e.g. recall_gap with too few positives
        return SKIPPED, reasons, [f"skipped: {why}"]
    if direction == "min" and bound is not None and value < bound:
        reasons.append(f"{_num(value)} < minimum {_num(bound)}")
    if direction == "max" and bound is not None and value > bound:
        reasons.append(f"{_num(value)} > maximum {_num(bound)}")
    if g.comparison:
        if base is None and incomparable:
            if not reasons:
                own = [cand.notes[g.name]] if g.name in cand.notes else []
                return SKIPPED, reasons, [f"skipped: not compared: {no_baseline}", *own]
            notes.append(f"not compared: {no_baseline}")
        elif base is None:
            notes.append(f"not compared: {no_baseline}")
        elif baseline_value is None:
            notes.append("the baseline's value could not be measured: not compared")
        else:
            reasons_, notes_ = _compare(g, value, baseline_value, interval)
            reasons += reasons_
            notes += notes_
    if g.name in cand.notes:
        notes.append(cand.notes[g.name])
    return (FAIL if reasons else PASS), reasons, notes


def _compare(g: Gate, value: float, baseline: float, interval: Interval | None) -> tuple[list[str], list[str]]:
    """A worse candidate fails by more than the tolerance, and (when the metric can be resampled) even at the
    favourable end of the bootstrap interval of the difference."""
    difference = value - baseline
    shown = f"baseline {_num(baseline)}, difference {difference:+.4g}"
    if g.comparison == "gte":
        worse, favourable, limit = difference < -g.tolerance, None if interval is None else interval.high, -g.tolerance
        beyond_noise = favourable is None or favourable < limit
        sign = "<"
    else:
        worse, favourable, limit = difference > g.tolerance, None if interval is None else interval.low, g.tolerance
        beyond_noise = favourable is None or favourable > limit
        sign = ">"
    noise = "" if interval is None else f"; {interval.describe()}"
    if worse and beyond_noise:
        return [f"{_num(value)} {sign} baseline {_num(baseline)} {'-' if sign == '<' else '+'} "
                f"{_num(g.tolerance)}{noise}"], []
    if worse:
        return [], [f"{shown}: worse than the tolerance {_num(g.tolerance)}, but within the holdout's sampling "
                    f"noise{noise}"]
    return [], [f"{shown}{noise}"]


def _num(x: float) -> str:
    return f"{x:.4g}"
