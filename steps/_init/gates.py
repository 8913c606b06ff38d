"""The target of a binary model and the bounds `mlops init` sets from it: relative to what a useless model scores
on a holdout of this data, never copied from another model; and the gates every task shares. Every bound comes with
the sentence that says how it was chosen, which the policy file carries as a comment. The multiclass and regression
bounds: steps/_init/baselines.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from steps._core.categories import key
from steps._core.errors import UsageError

HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class Target:
    name: str
    negative: str | int
    positive: str | int
    positive_rate: float
    rows: int  # rows with a label
    missing: int  # rows without one
    why: str = "two distinct values"  # how the task was chosen

    task = "binary"

    @property
    def holdout_positives(self) -> int:
        return round(self.rows * HOLDOUT_FRACTION * self.positive_rate)

    @property
    def holdout_negatives(self) -> int:
        return round(self.rows * HOLDOUT_FRACTION * (1 - self.positive_rate))


@dataclass(frozen=True)
class Bound:
    gate: str
    spec: dict[str, object]
    why: str


def infer_target(values: pd.Series, positive_label: str | None, flag: str = "") -> Target:
    """The target's two classes and its positive one: `positive_label` (matched by key: `--positive-label 1`
    names the integer class 1), else the minority class. Raises UsageError naming the column and what it holds
    (after `flag`, the option that asked for a binary model, when one did)."""
    name = str(values.name)
    present = values.dropna()
    counts = present.map(key).value_counts()
    if len(counts) != 2:
        shown = ", ".join(map(str, list(counts.index[:10])))
        raise UsageError(f"{flag}--target {name}: a binary model needs a target with two classes; it has {len(counts)} "
                         f"({shown}{', ...' if len(counts) > 10 else ''})")
    typed = {key(v): plain(v) for v in present.drop_duplicates()}
    if positive_label is not None:
        if positive_label not in counts.index:
            raise UsageError(f"--positive-label {positive_label!r}: not a class of {name} "
                             f"({', '.join(map(str, counts.index))})")
        positive = positive_label
    else:
        # The minority class: the one a model is asked to find. A tie: the second in sort order (1 of 0/1, Yes of No).
        smaller = sorted(counts.index, key=lambda k: (counts[k], -sorted(counts.index).index(k)))
        positive = smaller[0]
    negative = next(k for k in counts.index if k != positive)
    return Target(name, typed[negative], typed[positive], float(counts[positive] / len(present)), len(present),
                  len(values) - len(present), "--task binary" if flag else "two distinct values")


def bounds(target: Target, segments: int | None, rows: int) -> list[Bound]:
    """The quality gates for this target: absolute bounds above a useless model's, the label gates at the
    threshold train chooses (max_f1), and comparisons with the production model within the holdout's noise."""
    p = target.positive_rate
    pos, neg = max(target.holdout_positives, 1), max(target.holdout_negatives, 1)
    # The standard error of a useless model's ROC-AUC on this holdout (Hanley & McNeil's formula at AUC 0.5).
    se = math.sqrt((pos + neg + 1) / (12 * pos * neg))
    roc_min = round(min(0.5 + 3 * se, 0.75), 3)
    pr_min = round(min(2 * p, p + (1 - p) / 4), 3)
    flag_all_f1 = 2 * p / (1 + p)  # F1 of flagging every row: precision p, recall 1
    f1_min = round(min(1.5 * flag_all_f1, flag_all_f1 + (1 - flag_all_f1) / 4), 3)
    out = [
        Bound("roc_auc", {"minimum": roc_min, "comparison": "gte", "tolerance": 0.02},
              f"a useless model scores 0.5; with about {pos} positives and {neg} negatives in the holdout its AUC "
              f"varies by {se:.3f} (one standard error): this asks for 3 of them above chance (at most 0.75)"),
        Bound("pr_auc", {"minimum": pr_min, "comparison": "gte", "tolerance": 0.02},
              f"a useless model's average precision is the positive rate, {p:.3g}: this asks for twice that (at "
              "most a quarter of the way from it to perfect)"),
        Bound("f1", {"minimum": f1_min, "comparison": "gte", "tolerance": 0.02},
              f"F1 of the positive class at the chosen threshold. Flagging every row scores {flag_all_f1:.3g}, "
              f"never flagging it 0: this asks for 1.5 times the first (at most a quarter of the way to perfect), "
              "so a model that never finds the positive class fails"),
    ]
    if p >= 0.2:
        majority = 1 - p
        out.insert(0, Bound("accuracy", {"minimum": round(majority, 3), "comparison": "gte", "tolerance": 0.01},
                            f"always answering the majority class scores {majority:.3g}: this asks for at least "
                            "that (with a rarer positive class accuracy says little, and init leaves it out)"))
    out += common_bounds()
    if segments:
        min_positives = max(5, min(50, round(pos / segments / 2)))
        out.append(Bound("recall_gap", {"maximum": 0.15, "min_positives": min_positives},
                         f"the largest difference in recall between segments with at least {min_positives} "
                         f"positives in the holdout (about {pos} positives over {segments} segments); with fewer a "
                         "segment's recall is noise, and the gate says skipped"))
    return out


def common_bounds() -> list[Bound]:
    """The gates of every task: speed, size, memory, edge cases and the compiled predictor's parity."""
    return [
        Bound("latency_p95_ms", {"maximum": 50, "calls": 1000},
              "p95 of single-row predictions in the gate's process, in milliseconds"),
        Bound("model_size_mb", {"maximum": 500}, "the model files' size, in MiB"),
        Bound("feature_importance_stability", {"minimum": 0.5},
              "the correlation of the candidate's and the production model's permutation importances: a retrain "
              "that relies on other features than the model it replaces is worth a look (no baseline yet: skipped)"),
        Bound("peak_memory_mb", {"maximum": 256, "rows": 10000}, "peak memory while scoring 10000 rows, in MiB"),
        Bound("edge_cases", {"required": True},
              "an empty batch, extreme values, missing values and unseen categories give predictions or clear "
              "errors"),
        Bound("predictor_parity", {"maximum": 0.00001},
              "the compiled predictor the server uses predicts as scikit-learn does"),
    ]


def drift_min_samples(rows: int) -> int:
    """A drift decision waits for a tenth of the training data's size in scored rows (500 to 10000), and never for
    more rows than that data has: a check of a small table against itself decides instead of waiting."""
    return int(min(rows, max(500, min(10000, round(rows / 10, -2)))))


def plain(value: object) -> str | int:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    number = float(value)  # type: ignore[arg-type]  # a number (numpy's too) by now: the target holds labels
    return int(number) if number.is_integer() else str(value)
