"""The bias gates: how far apart a model's quality is between the values of the segment column (data.segment).
Binary compares recall at the threshold (recall_gap), multiclass macro-F1 (macro_f1_gap)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import pandas as pd

from steps._quality import metrics as _metrics


class SegmentRecall(TypedDict):
    """Recall at the threshold within one value of the segment column; `counted` when it has enough positives."""

    segment: str
    rows: int
    positives: int
    recall: float | None
    counted: bool


class SegmentF1(TypedDict):
    """Macro-F1 within one value of the segment column; `counted` when it has enough rows."""

    segment: str
    rows: int
    macro_f1: float
    counted: bool


def groups(holdout: pd.DataFrame, segment: str | None) -> tuple[np.ndarray | None, str]:
    """Each holdout row's segment value as text (missing: "<missing>"), or None and why there is nothing."""
    if segment is None:
        return None, "no segment column (data.segment): nothing to compare"
    if segment not in holdout.columns:
        return None, f"the holdout has no segment column {segment!r}: nothing to compare"
    column = holdout[segment]
    return column.astype(object).where(column.notna(), "<missing>").astype(str).to_numpy(), ""


def recall_gap(
    y: np.ndarray, predicted: np.ndarray, holdout: pd.DataFrame, segment: str | None, min_positives: int
) -> tuple[float | None, str, list[SegmentRecall]]:
    """The largest difference in recall between segments with at least `min_positives` positives, a note, and
    every segment's recall (for the report)."""
    values, why = groups(holdout, segment)
    if values is None:
        return None, why, []
    table: list[SegmentRecall] = []
    for name in sorted(set(values)):
        in_group = values == name
        positives = int(y[in_group].sum())
        table.append(
            SegmentRecall(
                segment=name,
                rows=int(in_group.sum()),
                positives=positives,
                recall=float(predicted[in_group & (y == 1)].mean()) if positives else None,
                counted=positives >= min_positives,
            )
        )
    # A counted segment has positives, so its recall is a number.
    counted = [(t["segment"], t["recall"]) for t in table if t["counted"] and t["recall"] is not None]
    shown = ", ".join(f"{t['segment']}: {t['positives']}" for t in table)
    gap, note = _gap(counted, "recall", segment, f"with >= {min_positives} positives ({shown})")
    return gap, note, table


def macro_f1_gap(
    y: np.ndarray, probabilities: np.ndarray, holdout: pd.DataFrame, segment: str | None, min_rows: int
) -> tuple[float | None, str, list[SegmentF1]]:
    """The largest difference in macro-F1 between segments with at least `min_rows` holdout rows, a note, and
    every segment's macro-F1 (for the report)."""
    values, why = groups(holdout, segment)
    if values is None:
        return None, why, []
    table: list[SegmentF1] = []
    for name in sorted(set(values)):
        in_group = values == name
        rows = int(in_group.sum())
        table.append(SegmentF1(segment=name, rows=rows, counted=rows >= min_rows,
                               macro_f1=_metrics.macro_f1(y[in_group], probabilities[in_group])))
    counted = [(t["segment"], t["macro_f1"]) for t in table if t["counted"]]
    shown = ", ".join(f"{t['segment']}: {t['rows']}" for t in table)
    gap, note = _gap(counted, "macro-F1", segment, f"with >= {min_rows} rows ({shown})")
    return gap, note, table


def _gap(counted: list[tuple[str, float]], measure: str, segment: str | None,
         counted_rule: str) -> tuple[float | None, str]:
    """The largest difference of `measure` between the counted segments and a note; None with fewer than two."""
    if len(counted) < 2:
        return None, f"fewer than 2 segments of {segment!r} {counted_rule}: nothing to compare"
    worst = min(counted, key=lambda t: t[1])
    best = max(counted, key=lambda t: t[1])
    note = (
        f"{segment}: {measure} {best[0]} {best[1]:.3f} (highest), "
        f"{worst[0]} {worst[1]:.3f} (lowest) over {len(counted)} segments"
    )
    return best[1] - worst[1], note
