"""The drift check's live counters (steps/_drift/sources.py): one metric read off a /metrics page, and the pages of
real HTTP servers summed for the production version only, each page once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from steps._core.errors import UsageError
from steps._drift import sources

MODEL = "fraud-detection"


class Pages:
    """A real HTTP server on 127.0.0.1 answering GET <path> with the page given for it; counts the requests."""

    def __init__(self, pages: dict[str, str]):
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page(version: int, counts: dict[tuple[str, str], float], model: str = MODEL) -> str:
    lines = ["# HELP model_feature_bin_total Scored values.", "# TYPE model_feature_bin_total counter"]
    lines += [f'model_feature_bin_total{{model="{model}",model_version="{version}",feature="{feature}",bin="{b}"}} {n}'
              for (feature, b), n in counts.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def pages() -> Iterator[Pages]:
    served = Pages({
        "/one": page(2, {("amount", "0"): 5, ("amount", "missing"): 1, ("channel", "other"): 6}),
        "/two": page(2, {("amount", "0"): 3, ("channel", "other"): 3}) + page(7, {("amount", "0"): 1}, "other"),
        "/old": page(1, {("amount", "0"): 40}),
        "/broken": page(2, {("amount", "0"): 1}) + 'model_feature_bin_total{model="m" 3\n',
    })
    yield served
    served.close()


def test_the_exposition_parser_reads_one_metric_with_escaped_labels() -> None:
    lines = [
        "# HELP model_feature_bin_total Scored values.",
        "# TYPE model_feature_bin_total counter",
        'model_feature_bin_total{model="m",model_version="2",feature="a \\"b\\" \\\\ c",bin="0"} 7',
        'model_feature_bin_total{model="m",model_version="2",feature="x",bin="missing"} 1.5e3 1700000000000',
        'model_feature_bin_total_created{model="m"} 12',
        'model_requests_total{model="m",code="200"} 99',
        "something_else{weird} NaN",
    ]
    text = "\n".join(lines)
    samples = sources.metric_samples(text, sources.METRIC, "page")
    assert samples == [({"model": "m", "model_version": "2", "feature": 'a "b" \\ c', "bin": "0"}, 7.0),
                       ({"model": "m", "model_version": "2", "feature": "x", "bin": "missing"}, 1500.0)]
    with pytest.raises(UsageError, match="page: not a Prometheus sample line"):
        sources.metric_samples('model_feature_bin_total{model="m" 3', sources.METRIC, "page")


def test_pages_are_summed_for_the_production_version_and_a_page_given_twice_counts_once(pages: Pages) -> None:
    urls = [f"{pages.url}/one", f"{pages.url}/two", f"{pages.url}/one", f"{pages.url}/old"]
    counters = sources.exposition_counters(urls, MODEL, 2)
    assert counters == {"amount": {"0": 8.0, "missing": 1.0}, "channel": {"other": 9.0}}
    assert sorted(pages.requests) == ["/old", "/one", "/two"]


def test_pages_with_only_other_versions_name_the_versions_they_have(pages: Pages) -> None:
    urls = [f"{pages.url}/old"]
    with pytest.raises(UsageError, match=rf"no model_feature_bin_total for {MODEL} v2 \(the production version\) "
                                         r"there: the pages have only versions \['1'\]"):
        sources.exposition_counters(urls, MODEL, 2)
    with pytest.raises(UsageError, match="the pages have no counters for it at all"):
        sources.exposition_counters(urls, "churn", 2)


def test_a_malformed_line_of_the_metric_is_an_error_naming_the_page(pages: Pages) -> None:
    url = f"{pages.url}/broken"
    with pytest.raises(UsageError, match=f"{url}: not a Prometheus sample line: 'model_feature_bin_total"):
        sources.exposition_counters([url], MODEL, 2)
