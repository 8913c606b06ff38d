"""The shared page shell keeps Argo's artifact viewer rules: the verdict first, inline SVG pictures, wide tables in
their own scrolling box; checked in a real browser under Argo's CSP."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps._core import html
from tests.support.browser import check_report


def test_a_page_with_a_picture_and_a_wide_table_shows_everything_within_1000_px(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3))
    fig.add_subplot().plot([0, 1, 2], [2, 1, 3])
    rows = [[html.esc("a" * 80), html.esc("b" * 200), "1.0"]] * 3
    body = html.figure(html.svg_of(fig, "a line"), "a caption") + html.table(["name", "note", "value"], rows, [2])
    (tmp_path / "index.html").write_text(html.page("Report <x>", body, verdict_html=html.verdict("Passed", "pass")))
    narrow, wide = check_report(tmp_path)
    assert narrow.problems() == [] and wide.problems() == []
    assert narrow.svgs == 1 and narrow.images == 0
    assert narrow.text.index("Passed") < narrow.text.index("name")  # the verdict comes before the details
    assert narrow.title == "Report <x>"


def test_an_unknown_tone_is_refused() -> None:
    with pytest.raises(ValueError, match="tone 'green'"):
        html.verdict("x", "green")


def test_two_pictures_on_one_page_share_no_element_id() -> None:
    import re

    from matplotlib.figure import Figure

    svgs = []
    for title in ("first", "second"):
        fig = Figure(figsize=(3, 2))
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [2, 1, 3], marker="o")
        svgs.append(html.svg_of(fig, title))
    ids = [re.findall(r'\bid="([^"]+)"', svg) for svg in svgs]
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1])
    for svg, own in zip(svgs, ids, strict=True):  # every reference still points at an id of its own picture
        refs = re.findall(r'(?:href="|url\()#([^")]+)', svg)
        assert refs and set(refs) <= set(own)
