"""The HTML pages argo-mlops writes (gate, drift, registry, run pages) share one shell and one set of rules.

The rules are those of Argo's artifact viewer, which serves an artifact's files under a strict
Content-Security-Policy (`sandbox allow-same-origin; default-src 'none'; img-src 'self';
style-src 'self' 'unsafe-inline'`): no scripts, no `data:` pictures, styles inline only. So:
- pictures are inline SVG (`svg_of`), or files in the same folder linked by a relative path;
- wide tables sit in a box that scrolls on its own (`table`), so the page itself never overflows from 1000 px up;
- the verdict comes first (`page(..., verdict=...)`);
- links are relative, to files in the same artifact folder (the UI serves the folder as a whole).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

TONES = ("pass", "fail", "warn", "info")

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --pass: #1a7f37; --fail: #cf222e; --warn: #9a6700;
        --info: #0969da; --bg-pass: #dafbe1; --bg-fail: #ffebe9; --bg-warn: #fff8c5; --bg-info: #ddf4ff; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 16px 20px 40px; max-width: 1400px; overflow-wrap: anywhere; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 24px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
p, li { max-width: 100ch; } .muted { color: var(--muted); }
.verdict { border-radius: 6px; padding: 10px 14px; margin: 8px 0 16px; font-size: 16px; font-weight: 600;
           border: 1px solid var(--line); }
.verdict.pass { background: var(--bg-pass); color: var(--pass); } .verdict.fail { background: var(--bg-fail);
  color: var(--fail); } .verdict.warn { background: var(--bg-warn); color: var(--warn); }
.verdict.info { background: var(--bg-info); color: var(--info); }
.verdict small { display: block; font-weight: 400; color: var(--fg); font-size: 13px; margin-top: 2px; }
.scroll { overflow-x: auto; max-width: 100%; margin: 8px 0; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.wrap { min-width: 16ch; overflow-wrap: anywhere; }
tr:last-child td { border-bottom: 0; }
.tag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
       border: 1px solid currentColor; white-space: nowrap; }
.tag.pass { color: var(--pass); } .tag.fail { color: var(--fail); } .tag.warn { color: var(--warn); }
.tag.info { color: var(--info); }
figure { margin: 12px 0; max-width: 100%; } figure svg, figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; } .grid > figure { flex: 1 1 420px; min-width: 0; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: 8px; border-radius: 6px; overflow-x: auto; white-space: pre; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
a { color: var(--info); }
"""


def esc(value: Any) -> str:
    """Text for HTML (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def tag(text: str, tone: str) -> str:
    """A small coloured label: tone is pass, fail, warn or info."""
    return f"<span class='tag {_tone(tone)}'>{esc(text)}</span>"


def verdict(headline: str, tone: str, detail: str = "") -> str:
    """The banner that opens a page: what happened, in one line, coloured by tone."""
    small = f"<small>{esc(detail)}</small>" if detail else ""
    return f"<div class='verdict {_tone(tone)}' role='status'>{esc(headline)}{small}</div>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (),
          caption: str = "") -> str:
    """A table in its own horizontally scrolling box. Cells are HTML (escape text with `esc`); the columns whose
    index is in `numeric` align right."""
    num = set(numeric)
    head = "".join(f"<th{' class=num' if i in num else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td class='{'num' if i in num else 'wrap'}'>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>" for row in rows)
    cap = f"<caption class='muted'>{esc(caption)}</caption>" if caption else ""
    return f"<div class='scroll'><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def facts(items: Iterable[tuple[str, str]]) -> str:
    """A definition list of label → HTML value pairs."""
    return "<dl class='facts'>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


_SVG_START = re.compile(r"^.*?(<svg\b)", re.S)
_SVG_ID = re.compile(r'\bid="([^"]+)"')


def svg_of(fig: Any, title: str) -> str:
    """A matplotlib Figure as inline SVG markup (no file, no `data:` URI): text stays text, the picture scales to
    its box, and `title` is its accessible name."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": title}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = _SVG_START.sub(r"\1", buf.getvalue(), count=1)
    return _unique_ids(svg).replace("<svg ", f"<svg role='img' aria-label='{esc(title)}' ", 1)


def _unique_ids(svg: str) -> str:
    """Matplotlib names an SVG's markers and clip paths by their shape, so two pictures on one page can repeat an
    id (invalid HTML, and a reference could resolve into the other picture). Prefix every id, and every reference
    to it, with a digest of this picture: deterministic, and distinct between different pictures."""
    ids = set(_SVG_ID.findall(svg))
    if not ids:
        return svg
    prefix = "s" + hashlib.sha256(svg.encode()).hexdigest()[:8] + "-"
    pattern = re.compile(r'(\bid="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
                         + r')(?=["\)])')
    return pattern.sub(lambda m: m.group(1) + prefix + m.group(2), svg)


def page(title: str, body: str, *, verdict_html: str = "", subtitle: str = "") -> str:
    """A whole page: the title, the verdict banner first, then the body. No scripts, no external files."""
    sub = f"<p class='muted'>{esc(subtitle)}</p>" if subtitle else ""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{sub}{verdict_html}{body}</body></html>\n"
    )


def _tone(tone: str) -> str:
    if tone not in TONES:
        raise ValueError(f"tone {tone!r}: must be one of {', '.join(TONES)}")
    return tone
