"""The gate report as one self-contained HTML page: the verdict, every gate, pictures as inline PNG. The pictures
follow the task: binary ROC, precision-recall and the confusion matrix at the threshold; multiclass the confusion
matrix and each class' precision and recall; regression predicted vs actual and residuals vs predicted."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from steps._core.documents import GateEntry, GateReport
from steps._quality import metrics as _metrics
from steps._quality.edge_cases import EdgeCase
from steps._quality.measures import IMPORTANCE_LOSS
from steps._quality.segments import SegmentF1, SegmentRecall

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_CANDIDATE, _BASELINE = "#1f77b4", "#ff7f0e"
_POINTS = 5000  # a scatter of more points shows no more and makes the page heavy
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.pass{color:#137333;font-weight:bold}.fail{color:#b3261e;font-weight:bold}
.skipped{color:#8a6d00;font-weight:bold}
.verdict{font-size:1.4em;padding:.5em 1em;display:inline-block;border-radius:4px}
.verdict.pass{background:#e6f4ea}.verdict.fail{background:#fce8e6}
figure{display:inline-block;margin:0 1em 1em 0}img{max-width:520px}
"""


@dataclass
class Evidence:
    """What the HTML report draws, beyond gate.json. Scores are the models' predictions as
    steps._model.task.predict gives them (the baseline's in the candidate's class order); y the encoded target."""

    y: np.ndarray
    candidate_scores: np.ndarray
    threshold: float | None
    baseline_scores: np.ndarray | None = None
    baseline_label: str | None = None
    segments: list[SegmentRecall] = field(default_factory=list)
    importances: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # candidate's, baseline's
    edge_cases: list[EdgeCase] = field(default_factory=list)
    task: str = "binary"
    classes: list[str | int] | None = None  # multiclass: the labels of the codes 0..k-1
    segment_f1: list[SegmentF1] = field(default_factory=list)


def render(report: GateReport, evidence: Evidence) -> str:
    """gate.json's content plus the evidence (scores, segments, importances, edge cases) as an HTML page."""
    e = html.escape
    verdict = "PASSED" if report["passed"] else f"REJECTED: {', '.join(report['failed'])}"
    skipped = report.get("skipped") or []
    if skipped:
        verdict += f" ({len(skipped)} skipped, not evaluated: {', '.join(skipped)})"
    baseline = report["baseline"]
    against = (
        f"baseline version {e(str(baseline['version']))}"
        if baseline is not None and baseline["version"] is not None
        else f"baseline {e(evidence.baseline_label)}"
        if evidence.baseline_label
        else "no baseline yet"
    )
    rows = "".join(
        f"<tr><td>{e(g['name'])}</td><td class='{_status(g)}'>"
        f"{_status(g).upper() if _status(g) == 'fail' else _status(g)}</td><td>{_cell(g['value'])}</td>"
        f"<td>{e(str(g['bound_kind']))} {_cell(g['bound'])}</td><td>{e(str(g['comparison'] or ''))}</td>"
        f"<td>{_cell(g['baseline_value'])}</td><td>{_cell(g['tolerance'])}</td><td>{e(g['note'])}</td></tr>"
        for g in report["gates"]
    )
    cases = "".join(
        f"<tr><td>{e(c['name'])}</td><td>{c['rows']}</td><td>{e(c['outcome'])}</td>"
        f"<td class='{'pass' if c['passed'] else 'fail'}'>{'ok' if c['passed'] else 'FAIL'}</td>"
        f"<td>{e(c['detail'])}</td></tr>"
        for c in evidence.edge_cases
    )
    figures = _task_figures(evidence)
    if evidence.importances:
        figures.append((f"Permutation importance (increase in {IMPORTANCE_LOSS[evidence.task]})",
                        _importances(evidence)))
    pictures = "".join(
        f"<figure><img alt='{e(title)}' src='data:image/png;base64,{_png(fig)}'>"
        f"<figcaption>{e(title)}</figcaption></figure>"
        for title, fig in figures
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gate report: {e(report["model"])}</title>
<style>{_STYLE}</style></head><body>
<h1>Gate report: {e(report["model"])}</h1>
<p class="verdict {"pass" if report["passed"] else "fail"}">{e(verdict)}</p>
<p>{report["holdout_rows"]} holdout rows; {against}.</p>
<h2>Gates</h2>
<table><tr><th>gate</th><th>result</th><th>value</th><th>bound</th><th>comparison</th><th>baseline</th>
<th>tolerance</th><th>note</th></tr>{rows}</table>
<h2>Pictures</h2>
{pictures}
{_per_class_table(evidence)}
<h2>Edge cases</h2>
<table><tr><th>case</th><th>rows</th><th>outcome</th><th>result</th><th>detail</th></tr>{cases}</table>
</body></html>
"""


def _task_figures(evidence: Evidence) -> list[tuple[str, Figure]]:
    if evidence.task == "regression":
        return [("Predicted vs actual", _predicted_vs_actual(evidence)),
                ("Residuals vs predicted", _residuals(evidence))]
    if evidence.task == "multiclass":
        figures = [("Confusion matrix (the most probable class)", _confusion_multiclass(evidence)),
                   ("Precision and recall per class", _per_class(evidence))]
        if evidence.segment_f1:
            figures.append(("Macro-F1 per segment", _segments_f1(evidence)))
        return figures
    figures = [
        ("ROC curve", _roc(evidence)),
        ("Precision-recall curve", _pr(evidence)),
        ("Confusion matrix at the threshold", _confusion(evidence)),
    ]
    if evidence.segments:
        figures.append(("Recall per segment", _segments(evidence)))
    return figures


def _class_names(evidence: Evidence, k: int) -> list[str]:
    classes = evidence.classes or []
    return [str(classes[i]) if i < len(classes) else str(i) for i in range(k)]


def _per_class_table(evidence: Evidence) -> str:
    """Multiclass: each class' precision, recall, F1 and rows, the candidate's (and the baseline's recall)."""
    if evidence.task != "multiclass":
        return ""
    k = evidence.candidate_scores.shape[1]
    table = _metrics.per_class(evidence.y, evidence.candidate_scores)
    base = None if evidence.baseline_scores is None else _metrics.per_class(evidence.y, evidence.baseline_scores)
    head = "<th>baseline recall</th>" if base is not None else ""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{int(table['support'][i])}</td><td>{int(table['predicted'][i])}</td>"
        f"<td>{table['precision'][i]:.3f}</td><td>{table['recall'][i]:.3f}</td><td>{table['f1'][i]:.3f}</td>"
        + (f"<td>{base['recall'][i]:.3f}</td>" if base is not None else "") + "</tr>"
        for i, name in enumerate(_class_names(evidence, k))
    )
    return (f"<h2>Per class</h2>\n<table><tr><th>class</th><th>holdout rows</th><th>predicted rows</th>"
            f"<th>precision</th><th>recall</th><th>F1</th>{head}</tr>{rows}</table>")


def _status(gate: GateEntry) -> str:
    """pass, fail or skipped (reports written before skipped existed: from `passed`)."""
    return gate.get("status") or ("pass" if gate["passed"] else "fail")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _figure(left: float = 0.14, bottom: float = 0.12, height: float = 4.0) -> tuple[Figure, Any]:
    # A bare Figure (no pyplot): no global state, no GUI backend; savefig renders with Agg. Fixed margins
    # instead of a layout engine, which draws every figure twice and doubled the report's time.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, height), dpi=100)
    fig.subplots_adjust(left=left, bottom=bottom, right=0.97, top=0.92)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _curves(evidence: Evidence) -> list[tuple[str, np.ndarray, str]]:
    out = [("candidate", evidence.candidate_scores, _CANDIDATE)]
    if evidence.baseline_scores is not None:
        out.append((f"baseline {evidence.baseline_label}", evidence.baseline_scores, _BASELINE))
    return out


def _roc(evidence: Evidence) -> Figure:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure()
    for name, scores, color in _curves(evidence):
        fpr, tpr, _ = roc_curve(evidence.y, scores)
        ax.plot(fpr, tpr, color=color, label=f"{name} (AUC {roc_auc_score(evidence.y, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _pr(evidence: Evidence) -> Figure:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure()
    for name, scores, color in _curves(evidence):
        precision, recall, _ = precision_recall_curve(evidence.y, scores)
        ap = average_precision_score(evidence.y, scores)
        ax.step(recall, precision, where="post", color=color, label=f"{name} (AP {ap:.3f})")
    base_rate = float(np.mean(evidence.y))
    ax.axhline(base_rate, color="#999", linestyle="--", linewidth=1, label=f"positive rate {base_rate:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right", fontsize="small")
    return fig


def _confusion(evidence: Evidence) -> Figure:
    y = evidence.y.astype(bool)
    predicted = evidence.candidate_scores >= (0.5 if evidence.threshold is None else evidence.threshold)
    matrix = np.array(
        [[np.sum(~y & ~predicted), np.sum(~y & predicted)], [np.sum(y & ~predicted), np.sum(y & predicted)]]
    )
    fig, ax = _figure(left=0.2)
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=14,
            color="white" if np.log1p(count) > np.log1p(matrix.max()) / 2 else "black",
        )
    ax.set_xticks([0, 1], ["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], ["actual 0", "actual 1"])
    ax.set_title(f"candidate, threshold {evidence.threshold or 0.5:g}")
    return fig


def _segments(evidence: Evidence) -> Figure:
    fig, ax = _figure(bottom=0.25)
    names = [s["segment"] for s in evidence.segments]
    recalls = [s["recall"] or 0.0 for s in evidence.segments]
    bars = ax.bar(
        names, recalls, color=[_CANDIDATE if s["counted"] else "#c7d7e8" for s in evidence.segments]
    )
    for bar, s in zip(bars, evidence.segments, strict=True):
        ax.annotate(
            f"{s['positives']} pos",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    ax.set(
        ylabel="recall at the threshold", ylim=(0, 1.1), title="candidate (pale: too few positives to count)"
    )
    ax.tick_params(axis="x", labelrotation=45)
    return fig


def _importances(evidence: Evidence) -> Figure:
    items = sorted(evidence.importances.items(), key=lambda kv: kv[1][0])
    names = [k for k, _ in items]
    height_in = max(4.0, 0.25 * len(names) + 1)
    fig, ax = _figure(left=0.38, bottom=0.6 / height_in, height=height_in)
    positions = np.arange(len(names))
    has_baseline = any(v[1] is not None for _, v in items)
    height = 0.4 if has_baseline else 0.8
    ax.barh(positions, [v[0] for _, v in items], height=height, color=_CANDIDATE, label="candidate")
    if has_baseline:
        ax.barh(
            positions - height,
            [v[1] or 0.0 for _, v in items],
            height=height,
            color=_BASELINE,
            label=f"baseline {evidence.baseline_label}",
        )
        ax.legend(fontsize="small")
    ax.set_yticks(positions, names, fontsize="small")
    ax.set(xlabel=f"mean increase in {IMPORTANCE_LOSS[evidence.task]} when shuffled")
    return fig


# --- multiclass ------------------------------------------------------------------------------------------------


def _confusion_multiclass(evidence: Evidence) -> Figure:
    k = evidence.candidate_scores.shape[1]
    names = _class_names(evidence, k)
    matrix = _metrics.confusion(evidence.y, _metrics.predicted_codes(evidence.candidate_scores), k)
    size = max(4.0, 0.5 * k + 2)
    fig, ax = _figure(left=0.25, bottom=0.25, height=size)
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=12 if k <= 6 else 8,
                color="white" if np.log1p(count) > np.log1p(matrix.max()) / 2 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="actual", title="candidate")
    return fig


def _per_class(evidence: Evidence) -> Figure:
    table = _metrics.per_class(evidence.y, evidence.candidate_scores)
    names = _class_names(evidence, len(table["recall"]))
    fig, ax = _figure(bottom=0.25)
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, table["precision"], width=0.4, color=_CANDIDATE, label="precision")
    bars = ax.bar(positions + 0.2, table["recall"], width=0.4, color="#9ecae1", label="recall")
    for bar, rows in zip(bars, table["support"], strict=True):
        ax.annotate(f"{int(rows)}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize="small")
    ax.set_xticks(positions, names, rotation=45, ha="right")
    ax.set(ylim=(0, 1.15), title="candidate (numbers: holdout rows of the class)")
    ax.legend(fontsize="small", loc="upper right")
    return fig


def _segments_f1(evidence: Evidence) -> Figure:
    fig, ax = _figure(bottom=0.25)
    segments = evidence.segment_f1
    bars = ax.bar([s["segment"] for s in segments], [s["macro_f1"] for s in segments],
                  color=[_CANDIDATE if s["counted"] else "#c7d7e8" for s in segments])
    for bar, s in zip(bars, segments, strict=True):
        ax.annotate(f"{s['rows']} rows", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize="small")
    ax.set(ylabel="macro-F1", ylim=(0, 1.1), title="candidate (pale: too few rows to count)")
    ax.tick_params(axis="x", labelrotation=45)
    return fig


# --- regression ------------------------------------------------------------------------------------------------


def _sample(n: int) -> np.ndarray:
    """At most _POINTS row indices, the same every time."""
    return np.arange(n) if n <= _POINTS else np.sort(np.random.default_rng(0).choice(n, _POINTS, replace=False))


def _predicted_vs_actual(evidence: Evidence) -> Figure:
    y = np.asarray(evidence.y, dtype=np.float64)
    rows = _sample(len(y))
    fig, ax = _figure()
    for name, values, color in reversed(_curves(evidence)):  # the candidate's points on top
        ax.scatter(y[rows], values[rows], s=6, alpha=0.4, color=color,
                   label=f"{name} (RMSE {_metrics.rmse(y, values):.4g})")
    low = float(min(y.min(), evidence.candidate_scores.min()))
    high = float(max(y.max(), evidence.candidate_scores.max()))
    ax.plot([low, high], [low, high], color="#999", linestyle="--", linewidth=1, label="predicted = actual")
    ax.set(xlabel="actual", ylabel="predicted")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def _residuals(evidence: Evidence) -> Figure:
    y = np.asarray(evidence.y, dtype=np.float64)
    predicted = evidence.candidate_scores
    rows = _sample(len(y))
    fig, ax = _figure()
    ax.scatter(predicted[rows], (y - predicted)[rows], s=6, alpha=0.4, color=_CANDIDATE)
    ax.axhline(0.0, color="#999", linestyle="--", linewidth=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="candidate")
    return fig
