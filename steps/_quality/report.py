"""The gate report page (index.html beside gate.json): the verdict first, naming the failed gates, then every gate,
the task's pictures as inline SVG and the edge cases, in the shared page shell (steps/_core/html.py), so it renders
in Argo's artifact viewer (no scripts, no `data:` pictures). The pictures follow the task: binary ROC,
precision-recall and the confusion matrix at the threshold; multiclass the confusion matrix and each class'
precision and recall; regression predicted vs actual and residuals vs predicted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from steps._core import html as _html
from steps._core.documents import GateEntry, GateReport
from steps._quality import metrics as _metrics
from steps._quality.edge_cases import EdgeCase
from steps._quality.measures import IMPORTANCE_LOSS
from steps._quality.segments import SegmentF1, SegmentRecall

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAGE, JSON = "index.html", "gate.json"  # Argo Server opens a folder artifact at its index.html
_CANDIDATE, _BASELINE = "#1f77b4", "#ff7f0e"
# A scatter of more points shows no more; as SVG each point is 150 bytes of markup (1000 points: 150 KB).
_POINTS = 1000
_CURVE_POINTS = 1000  # a ROC or PR curve of a million-row holdout has a point per distinct score
_COMPARISON = {"gte": "≥", "lte": "≤"}
_TONE = {"pass": "pass", "fail": "fail", "skipped": "warn"}


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


def headline(report: GateReport) -> tuple[str, str, str]:
    """The verdict banner: (headline, tone, detail). A rejection names its failed gates; skipped gates are said."""
    failed, skipped = report["failed"], report.get("skipped") or []
    if report["passed"]:
        text, tone = "Passed: the candidate meets every required gate", "pass"
    else:
        text, tone = f"Rejected: failed {', '.join(failed)}", "fail"
    baseline = report["baseline"]
    against = (f"against baseline version {baseline['version']}" if baseline and baseline["version"] is not None
               else "against the given baseline" if baseline else "with no baseline to compare with")
    detail = f"{len(report['gates'])} gates on {report['holdout_rows']} holdout rows, {against}."
    if skipped:
        blocking = [n for n in skipped if n in failed]
        detail += (f" {len(skipped)} skipped, not evaluated: {', '.join(skipped)}"
                   + (" (blocking, as the policy says)." if blocking == skipped else
                      "; a skipped gate does not block unless its policy says if_skipped: block."))
        if report["passed"]:
            tone = "warn"
    return text, tone, detail


def render(report: GateReport, evidence: Evidence) -> str:
    """gate.json's content plus the evidence (scores, segments, importances, edge cases) as one HTML page."""
    text, tone, detail = headline(report)
    baseline = report["baseline"]
    label = (f"version {baseline['version']}" if baseline and baseline["version"] is not None
             else evidence.baseline_label or "none")
    about = _html.facts([
        ("model", _html.esc(report["model"])),
        ("task", _html.esc(evidence.task)),
        ("holdout rows", _html.esc(report["holdout_rows"])),
        ("baseline", _html.esc(label if baseline else "none: no production version to compare with yet")),
        *([("threshold", _html.esc(f"{evidence.threshold:g}"))] if evidence.threshold is not None else []),
        ("machine-readable", f"<a href='{JSON}'>{JSON}</a>"),
    ])
    gates = _html.table(["gate", "result", "value", "bound", "against the baseline", "note"],
                        [_gate_row(g, report["failed"]) for g in report["gates"]], numeric=(2,))
    figures = _task_figures(evidence)
    if evidence.importances:
        figures.append((f"Permutation importance (increase in {IMPORTANCE_LOSS[evidence.task]})",
                        _importances(evidence)))
    pictures = "".join(_html.figure(_html.svg_of(fig, title), title) for title, fig in figures)
    body = (f"{about}<h2>Gates</h2>{gates}<h2>Pictures</h2><div class='grid'>{pictures}</div>"
            f"{_per_class_table(evidence)}<h2>Edge cases</h2>{_edge_cases(evidence)}")
    return _html.page(f"Gate report: {report['model']}", body, verdict_html=_html.verdict(text, tone, detail))


def _edge_cases(evidence: Evidence) -> str:
    if not evidence.edge_cases:
        return "<p>No edge cases were run.</p>"
    rows = [[_html.esc(c["name"]), str(c["rows"]), _html.esc(c["outcome"]),
             _html.tag("ok", "pass") if c["passed"] else _html.tag("FAIL", "fail"), _html.esc(c["detail"])]
            for c in evidence.edge_cases]
    return _html.table(["case", "rows", "outcome", "result", "detail"], rows, numeric=(1,))


def _gate_row(g: GateEntry, failed: list[str]) -> list[str]:
    status = _status(g)
    result = _html.tag(status.upper() if status == "fail" else status, _TONE.get(status, "info"))
    if status == "fail" and g["name"] not in failed:
        result += " <span class='muted'>(not required)</span>"
    bound = f"{g['bound_kind']} {_cell(g['bound'])}" if g["bound"] is not None else _html.esc(g["bound_kind"])
    compared = ""
    if g["comparison"]:
        sign = _html.esc(_COMPARISON.get(g["comparison"], g["comparison"]))
        compared = f"{sign} baseline" + (f" {_cell(g['baseline_value'])}" if g["baseline_value"] is not None else "")
        if g["tolerance"] is not None:
            compared += f" (tolerance {_cell(g['tolerance'])})"
        interval = g.get("interval")
        if interval:
            compared += f"; difference in [{_cell(interval[0])}, {_cell(interval[1])}]"
    return [_html.esc(g["name"]), result, _cell(g["value"]), bound, compared, _html.esc(g["note"])]


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
    headers = ["class", "holdout rows", "predicted rows", "precision", "recall", "F1"]
    headers += ["baseline recall"] if base is not None else []
    rows = [[_html.esc(name), str(int(table["support"][i])), str(int(table["predicted"][i])),
             f"{table['precision'][i]:.3f}", f"{table['recall'][i]:.3f}", f"{table['f1'][i]:.3f}",
             *([f"{base['recall'][i]:.3f}"] if base is not None else [])]
            for i, name in enumerate(_class_names(evidence, k))]
    return "<h2>Per class</h2>" + _html.table(headers, rows, numeric=range(1, len(headers)))


def _status(gate: GateEntry) -> str:
    """pass, fail or skipped (reports written before skipped existed: from `passed`)."""
    return gate.get("status") or ("pass" if gate["passed"] else "fail")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return _html.esc(value)


def _figure(left: float = 0.14, bottom: float = 0.12, height: float = 4.0) -> tuple[Figure, Any]:
    # A bare Figure (no pyplot): no global state, no GUI backend; svg_of renders it as SVG. Fixed margins
    # instead of a layout engine, which draws every figure twice and doubled the report's time.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, height), dpi=100)
    fig.subplots_adjust(left=left, bottom=bottom, right=0.97, top=0.92)
    return fig, fig.add_subplot()


def _thin(values: np.ndarray) -> np.ndarray:
    """At most about _CURVE_POINTS points of a curve, evenly spread, the first and the last kept."""
    if len(values) <= _CURVE_POINTS:
        return values
    kept: np.ndarray = values[np.unique(np.linspace(0, len(values) - 1, _CURVE_POINTS).round().astype(int))]
    return kept


def _heatmap(ax: Any, matrix: np.ndarray, fontsize: float) -> None:
    """A matrix of counts as coloured cells (log scale), row 0 at the top, each with its count. Vector cells, not
    imshow: an image inside an SVG is a `data:` URI, which Argo's artifact viewer blocks."""
    k = matrix.shape[0]
    edges = np.arange(k + 1) - 0.5
    shade = np.log1p(matrix)
    ax.pcolormesh(edges, edges, shade, cmap="Blues")
    low, high = float(shade.min()), float(shade.max())
    for (i, j), count in np.ndenumerate(matrix):
        # white on the darker half of the colour scale (the scale runs from the smallest count to the largest)
        dark = high > low and (shade[i, j] - low) / (high - low) > 0.5
        ax.text(j, i, str(count), ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_aspect("equal")


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
        fpr, tpr = _thin(fpr), _thin(tpr)
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
        ax.step(_thin(recall), _thin(precision), where="post", color=color, label=f"{name} (AP {ap:.3f})")
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
    _heatmap(ax, matrix, fontsize=14)
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
    _heatmap(ax, matrix, fontsize=12 if k <= 6 else 8)
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
