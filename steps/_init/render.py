"""The policy file `mlops init` writes: every inferred value with a comment saying where it came from, and the
columns left out with their reasons, so that a person can review it before the first training."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import yaml

from steps._init.columns import Column, number_text
from steps._init.gates import Bound
from steps._init.gates import Target as Binary
from steps._init.target import Classes, Numbers, Target

WIDTH = 116


def policy_text(model: str, source: str, rows: int, columns: list[Column], target: Target, segment: str | None,
                bounds: list[Bound], min_samples: int, schema: str | None) -> str:
    features = [c for c in columns if c.kind is not None]
    left_out = [c for c in columns if c.kind is None]
    lines: list[str] = []
    if schema:
        lines.append(f"# yaml-language-server: $schema={schema}")
    lines += _comment(f"Policy for {model}, written by `mlops init` from {source} ({rows} rows) on "
                      f"{datetime.now(UTC):%Y-%m-%d}. Every value below was inferred from that data: review it, "
                      "then `mlops compile` renders the model's Argo resources and `mlops run training` trains it.", 0)
    lines += ["", f"model_name: {model}", "", "data:"]
    lines += _comment("The dataset training and retraining read (a Workflow's `dataset` parameter defaults to it).", 2)
    lines.append(f"  source: {_flow(source)}")
    lines.append(f"  target: {_flow(target.name)}")
    lines += _target_lines(target, rows)
    if segment:
        gate = "recall_gap" if target.task == "binary" else "macro_f1_gap"
        lines += _comment(f"The column whose segments the {gate} gate compares (bias).", 2)
        lines.append(f"  segment: {_flow(segment)}")
    lines += _comment("The contract: validate checks rows against it, train builds its encoding from it, the server "
                      "refuses requests that break it, drift bins with it. Categories are typed as the data writes "
                      "them; `unknown: other` counts a new category as `other` (a drift signal) instead of refusing "
                      "it.", 2)
    lines.append("  features:")
    for c in features:
        lines += _comment(f"{c.name}: {c.reason}" + (f"; {c.missing} of {rows} missing" if c.missing else ""), 4)
        lines.append(f"    - {_flow(_feature(c))}")
    if left_out:
        lines += _comment("Left out: they cannot be features (add them back if you know better).", 2)
        lines += [f"  #   {c.name}: {c.reason}" for c in left_out]
    lines += _model_lines(target)
    lines += ["", "quality:"]
    lines += _comment("Each gate's bound is set from what a useless model scores on a holdout of this data. With "
                      "`comparison`, a retrain is also compared with the production model on the same holdout, "
                      "within `tolerance` and the holdout's sampling noise. A gate that cannot be evaluated says "
                      "skipped (`if_skipped: block` makes that reject).", 2)
    for b in bounds:
        lines += _comment(f"{b.gate}: {b.why}.", 2)
        lines.append(f"  {b.gate}: {_flow(b.spec)}")
    lines += ["", "drift:"]
    lines += _comment("PSI per feature against the production model's training distribution; a retrain is due when "
                      f"at least 30% of the features drift, once {min_samples} rows were scored (a tenth of this "
                      "data, 500 to 10000, at most the rows it has).", 2)
    lines += ["  method: psi", "  threshold: 0.15", "  drift_share: 0.3", f"  min_samples: {min_samples}",
              "  window: 1h", "  schedule: 0 * * * *", "  cooldown: 6h"]
    lines += ["", *_comment("canary: the Argo Rollouts defaults (10% -> 30% -> 60% -> 100%, each of the first two "
                            "analysed: p95 latency at most 100 ms, error ratio at most 1%); add a canary section to "
                            "change them.", 0)]
    return "\n".join(lines) + "\n"


def _target_lines(target: Target, rows: int) -> list[str]:
    """The data section's lines about the target: its classes, or its range."""
    lines: list[str] = []
    missing = (f"; {target.missing} of {rows} rows have no value (validate refuses them: drop them)"
               if target.missing else "")
    if isinstance(target, Binary):
        lines += _comment(f"The class the model scores: {_why_positive(target)}{missing}. The server answers with "
                          "these labels.", 2)
        lines.append(f"  positive_label: {_flow(target.positive)}")
        lines.append(f"  classes: {_flow([target.negative, target.positive])}")
    elif isinstance(target, Classes):
        shares = ", ".join(f"{c} {n / target.rows:.1%}" for c, n in zip(target.classes, target.counts, strict=True))
        lines += _comment(f"The classes, in the order of the model's probability columns ({shares} of the "
                          f"{target.rows} labelled rows){missing}. The server answers with these labels; validate "
                          "refuses any other value and a dataset that lacks one of them.", 2)
        lines.append(f"  classes: {_flow(list(target.classes))}")
    else:
        lo, hi = target.observed
        lines += _comment(f"The target's range: validate refuses a value outside it. Observed {number_text(lo)} to "
                          f"{number_text(hi)} in {target.rows} rows{missing}; widened by that span (never below 0 for "
                          "a target with no negative value): tighten it where you know the true limits.", 2)
        lines.append(f"  target_min: {_flow(_plain(target.allowed[0]))}")
        lines.append(f"  target_max: {_flow(_plain(target.allowed[1]))}")
    return lines


def _model_lines(target: Target) -> list[str]:
    """The model section: the task and why, the estimator for it, and (binary) how the threshold is chosen."""
    lines = ["", "model:"]
    what = {"binary": "a class out of two, with a score", "multiclass": "a class out of several, with each class' "
            "probability", "regression": "a number"}[target.task]
    lines += _comment(f"What the model predicts: {what} ({target.name}: {target.why}).", 2)
    lines.append(f"  task: {target.task}")
    kind = "Regressor (squared error)" if isinstance(target, Numbers) else "Classifier"
    lines += _comment(f"HistGradientBoosting{kind}: native categories and missing values, no scaling to choose. "
                      "random_forest and " + ("ridge" if isinstance(target, Numbers) else "logistic_regression")
                      + " fit this task too.", 2)
    lines += ["  estimator: hist_gradient_boosting", "  params: {max_iter: 200, learning_rate: 0.1}"]
    if isinstance(target, Binary):
        lines += _comment(f"The decision threshold is chosen at training, on a validation split of the training "
                          f"rows, to maximise F1: with {target.positive_rate:.1%} positives a fixed 0.5 would label "
                          "almost every row negative.", 2)
        lines.append("  threshold: {rule: max_f1}")
    return [*lines, "  seed: 42", "  holdout_fraction: 0.2"]


def _feature(c: Column) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "type": c.kind}
    if c.kind == "categorical":
        out["categories"] = c.categories
        out["unknown"] = "other"
    else:
        out["min"] = _plain(c.minimum)
        out["max"] = _plain(c.maximum)
    if c.nullable:
        out["nullable"] = True
    return out


def _why_positive(target: Binary) -> str:
    share = f"{target.positive_rate:.1%} of the {target.rows} labelled rows"
    return f"{target.positive!r}, {share}" + (" (the minority class)" if target.positive_rate < 0.5 else "")


def _plain(x: float | None) -> int | float | None:
    return None if x is None else int(x) if float(x).is_integer() else x


def _flow(value: Any) -> str:
    """A value as YAML writes it on one line: quoted where YAML would misread it ('Yes', '1' as text)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip().removesuffix(
        "\n...").removesuffix("...").strip()


def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent + "# "
    return textwrap.wrap(text, width=WIDTH, initial_indent=pad, subsequent_indent=pad)
