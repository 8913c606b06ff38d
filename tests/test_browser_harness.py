"""The browser check that every HTML report's test uses (tests/support/browser.py) sees what Argo's viewer would
block: a `data:` picture, a table wider than the pane, a script; and passes a page that keeps Argo's rules."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import ARGO_ARTIFACT_CSP, check_report

PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def _write(root: Path, body: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>")


def test_a_page_that_keeps_argos_rules_has_no_problems(tmp_path: Path) -> None:
    (tmp_path / "dot.png").write_bytes(PIXEL)
    _write(tmp_path, "<h1>Passed</h1><img src='dot.png' alt='dot'>"
                     "<svg width='10' height='10'><rect width='10' height='10'/></svg>"
                     "<div style='overflow-x:auto'><table><tr><td style='min-width:3000px'>wide</td></tr></table>"
                     "</div>")
    checks = check_report(tmp_path)
    assert [c.problems() for c in checks] == [[], []]
    assert checks[0].images == 1 and checks[0].svgs == 1 and "Passed" in checks[0].text


def test_a_data_uri_picture_is_blocked_as_argo_blocks_it(tmp_path: Path) -> None:
    import base64

    _write(tmp_path, f"<img src='data:image/png;base64,{base64.b64encode(PIXEL).decode()}' alt='x'>")
    (check,) = check_report(tmp_path, widths=(1000,))
    blocked = [m for m in check.console_errors if "violates the following Content Security Policy" in m]
    assert check.broken_images and blocked, check
    assert "img-src 'self'" in ARGO_ARTIFACT_CSP


def test_a_table_wider_than_the_pane_and_a_missing_file_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "<table><tr><td style='min-width:1200px'>wide</td></tr></table><a href='gone.json'>gone</a>")
    (check,) = check_report(tmp_path, widths=(1000,))
    assert check.overflow_px > 150 and check.missing_links == ["gone.json"], check


def test_scripts_do_not_run(tmp_path: Path) -> None:
    _write(tmp_path, "<p id='p'>static</p><script>document.getElementById('p').textContent='ran'</script>")
    (check,) = check_report(tmp_path, widths=(1000,))
    assert "static" in check.text and "ran" not in check.text
