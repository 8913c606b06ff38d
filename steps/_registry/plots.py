"""One picture per gated metric: its value in every version, the gate's bound, and which version is in production
(and canary), as inline SVG for the registry page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from steps._core.html import svg_of
from steps._registry.views import RegistryView

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_PASS, _FAIL, _LINE, _BOUND = "#1a7f37", "#cf222e", "#8c959f", "#9a6700"
_PRODUCTION, _CANARY = "#0969da", "#8250df"


def metric_svg(view: RegistryView, name: str) -> str:
    """`name` across the versions that measured it: passed gates as green dots, failed ones as red crosses, the
    bound dashed (as each version was held to it), production ringed and labelled."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    points = [(v, g, g.value) for v in view.versions if (g := v.gate(name)) is not None and g.value is not None]
    fig = Figure(figsize=(5.4, 2.9))
    ax = fig.add_subplot()
    ax.plot([v.number for v, _, _ in points], [y for _, _, y in points], color=_LINE, linewidth=1, zorder=1)
    for failing, color, marker, label in ((False, _PASS, "o", "gate passed"), (True, _FAIL, "x", "gate failed")):
        chosen = [(v.number, y) for v, g, y in points if (g.status == "fail") == failing]
        if chosen:
            ax.scatter([x for x, _ in chosen], [y for _, y in chosen], s=34, zorder=3, color=color, marker=marker,
                       label=label)
    bounds = [(v.number, g.bound, g.bound_kind) for v in view.versions if (g := v.gate(name)) and g.bound is not None]
    if bounds:
        kind = bounds[-1][2] or "bound"
        bx = [b[0] for b in bounds]
        by = [b[1] for b in bounds]
        if len(bx) == 1:
            ax.axhline(by[0], color=_BOUND, linestyle="--", linewidth=1.2, label=f"{kind} {by[0]:.4g}")
        else:
            ax.step(bx, by, where="mid", color=_BOUND, linestyle="--", linewidth=1.2, label=f"{kind} {by[-1]:.4g}")
    _mark(ax, view, name, "production", _PRODUCTION)
    _mark(ax, view, name, "canary", _CANARY)
    ax.set_title(name, fontsize=11)
    ax.set_xlabel("version", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.margins(x=0.1, y=0.28)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    fig.tight_layout()
    return svg_of(fig, f"{view.model}: {name} across versions")


def _mark(ax: Axes, view: RegistryView, name: str, status: str, color: str) -> None:
    holder = view.holder(status)
    gate = holder.gate(name) if holder else None
    if holder is None or gate is None or gate.value is None:
        return
    ax.scatter([holder.number], [gate.value], s=190, facecolors="none", edgecolors=color, linewidths=2, zorder=4,
               label=f"{status} v{holder.number}")
    numbers = [v.number for v in view.versions]
    # at either end of the axis the label leans inwards, so it stays inside the picture
    align = "left" if holder.number == min(numbers) else "right" if holder.number == max(numbers) else "center"
    ax.annotate(f"{status} v{holder.number}", (holder.number, gate.value), textcoords="offset points",
                xytext=(0, 10), ha=align, fontsize=8, color=color)
