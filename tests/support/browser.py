"""A real browser on our HTML pages, the way Argo's artifact viewer serves them.

Argo Server streams an artifact's files with a strict Content-Security-Policy (server/artifacts/artifact_server.go,
`setSecurityHeaders`): no scripts (a sandbox without allow-scripts), images only from the same origin (no `data:`
URIs), styles from the same origin or inline. A folder artifact with an `index.html` at its root is redirected to it.
`serve_like_argo` serves a folder with exactly those headers; `check_page` opens one page in headless Chromium
(Debian's, driven by Playwright) at a given width and reports what a user would notice: blocked or broken pictures,
console errors, content wider than the window, links to files that are not there.

Tests skip with a reason where Playwright or Chromium is absent (.ci/run installs both).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import mimetypes
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import pytest

# Argo Server's defaults (ARGO_ARTIFACT_CONTENT_SECURITY_POLICY, ARGO_ARTIFACT_X_FRAME_OPTIONS).
ARGO_ARTIFACT_CSP = ("sandbox allow-same-origin; base-uri 'none'; default-src 'none'; img-src 'self'; "
                     "style-src 'self' 'unsafe-inline'")
ARGO_X_FRAME_OPTIONS = "SAMEORIGIN"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# The widths the issue names: Argo's artifact pane at 1000 px, a full-HD window.
NARROW, WIDE = 1000, 1920


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def require_browser() -> str:
    """Chromium's path, or skip the calling test with the reason."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    return path


class _ArgoArtifactHandler(http.server.SimpleHTTPRequestHandler):
    """Files with Argo's artifact headers; a folder with index.html redirects to it as Argo Server does."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".svg": "image/svg+xml",
                      ".json": "application/json", ".html": "text/html", ".png": "image/png"}

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", ARGO_ARTIFACT_CSP)
        self.send_header("X-Frame-Options", ARGO_X_FRAME_OPTIONS)
        super().end_headers()

    def do_GET(self) -> None:
        # Argo's UI shows an artifact in a frame of its own page, which has the favicon; a page opened on its own
        # asks for one, and that 404 would be a console error no user of the UI sees.
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The link check reads one byte and hangs up; the browser cancels what it no longer needs. A client that
        # went away is not a problem of the page.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_like_argo(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 with Argo's artifact headers; yields the base URL (ending in /)."""
    mimetypes.add_type("image/svg+xml", ".svg")
    handler = functools.partial(_ArgoArtifactHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PageCheck:
    """What one page did in the browser."""

    url: str
    width: int
    title: str = ""
    images: int = 0  # <img> elements
    svgs: int = 0  # inline <svg> elements
    broken_images: list[str] = field(default_factory=list)  # <img> that did not load (blocked or missing)
    # includes CSP violations ("... violates the following Content Security Policy directive ...")
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)  # requests that failed or answered >= 400
    overflow_px: int = 0  # how much wider the document is than the window
    overflowing: list[str] = field(default_factory=list)  # elements whose right edge leaves the window
    missing_links: list[str] = field(default_factory=list)  # same-origin links to files that are not there
    text: str = ""  # the page's visible text

    def problems(self) -> list[str]:
        """Everything a reader would notice, as sentences; empty when the page is fine."""
        found = [f"broken or blocked picture: {src}" for src in self.broken_images]
        found += [f"console error: {msg}" for msg in self.console_errors]
        found += [f"failed request: {req}" for req in self.failed_requests]
        found += [f"link to a missing file: {href}" for href in self.missing_links]
        if self.overflow_px > 0:
            found.append(f"{self.overflow_px} px wider than a {self.width} px window: {self.overflowing[:5]}")
        return found


_MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const imgs = Array.from(document.images);
  const over = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    // inside a box that scrolls or clips on its own: the page itself does not overflow
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX)) { clipped = true; break; }
    }
    if (!clipped && r.right > width + 1) over.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')
                                                   + ' right=' + Math.round(r.right));
  }
  return {
    title: document.title,
    width: width,
    scrollWidth: document.documentElement.scrollWidth,
    images: imgs.length,
    svgs: document.querySelectorAll('svg').length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    over: over,
    text: document.body.innerText,
  };
}"""


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """A headless Debian Chromium (Playwright's own download is not needed); skips when absent."""
    path = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def check_page(chromium: Any, url: str, width: int = NARROW, height: int = 900,
               screenshot: Path | None = None, full_page: bool = True) -> PageCheck:
    """Open `url` at `width` px and measure it; optionally save a screenshot (PNG)."""
    result = PageCheck(url=url, width=width)
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.on("console", lambda msg: result.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: result.console_errors.append(str(err)))
    page.on("requestfailed", lambda req: result.failed_requests.append(f"{req.url} ({req.failure})"))

    def _response(resp: Any) -> None:
        if resp.status >= 400:
            result.failed_requests.append(f"{resp.url} ({resp.status})")

    page.on("response", _response)
    try:
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        measured = page.evaluate(_MEASURE)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=full_page)
    finally:
        context.close()
    result.title = measured["title"]
    result.images = measured["images"]
    result.svgs = measured["svgs"]
    result.broken_images = [str(src) for src in measured["broken"]]
    result.overflow_px = max(0, int(measured["scrollWidth"]) - int(measured["width"]))
    result.overflowing = list(measured["over"])
    result.text = measured["text"]
    result.missing_links = _missing_links(url, measured["links"])
    return result


def _missing_links(page_url: str, hrefs: list[str]) -> list[str]:
    """Same-origin links whose file is not served (checked by a plain GET, as a click would)."""
    import urllib.error
    import urllib.request

    base = urlparse(page_url)
    missing = []
    for href in hrefs:
        target = urljoin(page_url, href)
        parsed = urlparse(target)
        if parsed.scheme not in ("http", "https") or parsed.netloc != base.netloc or href.startswith("#"):
            continue
        try:
            with urllib.request.urlopen(target.split("#")[0], timeout=10) as resp:  # noqa: S310 - our own server
                resp.read(1)
        except urllib.error.HTTPError:
            missing.append(unquote(href))
    return missing


def check_report(root: Path, page: str = "index.html", widths: tuple[int, ...] = (NARROW, WIDE),
                 screenshot: Path | None = None) -> list[PageCheck]:
    """Serve `root` like Argo and check `page` at each width; the screenshot (if any) is taken at the first."""
    checks = []
    with serve_like_argo(root) as base, browser() as chromium:
        for i, width in enumerate(widths):
            checks.append(check_page(chromium, base + page, width=width,
                                     screenshot=screenshot if i == 0 else None))
    return checks
