"""The steps' Prometheus client and exposition reader (steps/_core/prometheus.py), against a real Prometheus (and
a real Pushgateway) as plain processes, and against small stdlib HTTP servers that answer like a failing or wrong
Prometheus: each failure must map to the exit code a workflow acts on (3 retried, 2 not)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from steps._core.errors import TransientError, UsageError
from steps._core.prometheus import Prometheus, parse_exposition, read_page
from tests.support.processes import PUSHGATEWAY, free_port, prometheus, running

pytestmark = pytest.mark.integration


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class FakeServer:
    """A stdlib HTTP server on 127.0.0.1 giving the same answer to every GET, counting the requests."""

    answer: Answer
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.paths.append(self.path)
                time.sleep(served.answer.delay)
                self.send_response(served.answer.status)
                self.send_header("Content-Type", served.answer.content_type)
                self.send_header("Content-Length", str(len(served.answer.body)))
                self.end_headers()
                self.wfile.write(served.answer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


Serve = Callable[[Answer], FakeServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a FakeServer giving `answer`; every server started is stopped after the test."""
    started: list[FakeServer] = []

    def start(answer: Answer) -> FakeServer:
        started.append(FakeServer(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()


def error_body(error_type: str, error: str) -> bytes:
    return json.dumps({"status": "error", "errorType": error_type, "error": error}).encode()


@pytest.fixture(scope="module")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping itself every second (job `self`), once its first scrape is stored."""
    folder = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    with prometheus(config, folder, port) as url:
        deadline = time.monotonic() + 30
        while not Prometheus(url).query('up{job="self"}'):
            assert time.monotonic() < deadline, f"prometheus at {url} did not scrape itself within 30s"
            time.sleep(0.2)
        yield url


# --- queries against a real Prometheus ---------------------------------------------------------------------------


def test_a_scraped_series_comes_back_with_its_labels_and_value(real_prometheus: str) -> None:
    port = real_prometheus.rsplit(":", 1)[1]
    assert Prometheus(real_prometheus).query('up{job="self"}') == [
        ({"__name__": "up", "instance": f"127.0.0.1:{port}", "job": "self"}, 1.0)]


def test_a_vector_result_is_one_labels_and_value_pair_per_series(real_prometheus: str) -> None:
    promql = ('sort(label_replace(vector(0.25), "code", "500", "", "") '
              'or label_replace(vector(7), "code", "200", "", ""))')
    assert Prometheus(real_prometheus).query(promql) == [({"code": "500"}, 0.25), ({"code": "200"}, 7.0)]
    assert Prometheus(real_prometheus).values(promql) == [0.25, 7.0]


def test_a_scalar_result_is_one_series_without_labels(real_prometheus: str) -> None:
    assert Prometheus(real_prometheus).query("scalar(vector(0.5)) * 3") == [({}, 1.5)]


def test_no_matching_series_is_an_empty_list(real_prometheus: str) -> None:
    assert Prometheus(real_prometheus).query('model_requests_total{model="nobody"}') == []
    assert Prometheus(real_prometheus).values('model_requests_total{model="nobody"}') == []


def test_a_trailing_slash_in_the_url_is_ignored(real_prometheus: str) -> None:
    assert Prometheus(real_prometheus + "/").values("vector(2)") == [2.0]


def test_check_passes_on_a_running_prometheus(real_prometheus: str) -> None:
    Prometheus(real_prometheus).check()


def test_a_query_prometheus_refuses_is_a_usage_error_with_its_reason(real_prometheus: str) -> None:
    with pytest.raises(UsageError) as caught:
        Prometheus(real_prometheus).query("rate(up[0s])")
    message = str(caught.value)
    assert message.startswith(f"prometheus {real_prometheus}: the query was refused (HTTP 400: bad_data:")
    assert "rate(up[0s])" in message


# --- a failing or wrong Prometheus -------------------------------------------------------------------------------


def test_an_unreachable_prometheus_is_transient_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransientError, match=rf"^prometheus {url}: unreachable: "):
        Prometheus(url, retries=0).query("vector(1)")
    with pytest.raises(TransientError, match=rf"^prometheus {url}: unreachable: "):
        Prometheus(url, retries=0).check()


def test_a_prometheus_that_never_answers_is_transient(serve: Serve) -> None:
    server = serve(Answer(200, b"{}", delay=3))
    started = time.monotonic()
    with pytest.raises(TransientError, match=rf"^prometheus {server.url}: unreachable: .*[Tt]imed? ?out"):
        Prometheus(server.url, timeout=1, retries=0).query("vector(1)")
    assert time.monotonic() - started < 2.5


def test_a_5xx_is_retried_then_transient_with_prometheus_error_text(serve: Serve) -> None:
    server = serve(Answer(503, error_body("unavailable", "TSDB not ready")))
    with pytest.raises(TransientError) as caught:
        Prometheus(server.url, retries=2, backoff=0.01).query("vector(1)")
    assert str(caught.value) == f"prometheus {server.url}: HTTP 503: unavailable: TSDB not ready for vector(1)"
    assert len(server.paths) == 3  # the first try and two retries
    assert all(p.startswith("/api/v1/query?query=vector") for p in server.paths)


def test_a_500_with_a_body_that_is_not_prometheus_json_quotes_its_first_bytes(serve: Serve) -> None:
    server = serve(Answer(500, b"upstream exploded", content_type="text/plain"))
    with pytest.raises(TransientError, match=r": HTTP 500: b'upstream exploded' for vector\(1\)$"):
        Prometheus(server.url, retries=0).query("vector(1)")


def test_a_refused_query_is_a_usage_error_and_not_retried(serve: Serve) -> None:
    server = serve(Answer(400, error_body("bad_data", 'invalid parameter "query": 1:5: parse error')))
    with pytest.raises(UsageError) as caught:
        Prometheus(server.url, retries=3, backoff=0.01).query("sum(")
    assert str(caught.value) == (f"prometheus {server.url}: the query was refused "
                                 f'(HTTP 400: bad_data: invalid parameter "query": 1:5: parse error): sum(')
    assert len(server.paths) == 1


def test_a_200_that_is_not_json_is_a_usage_error_asking_if_it_is_a_prometheus(serve: Serve) -> None:
    server = serve(Answer(200, b"<html>Grafana</html>", content_type="text/html"))
    with pytest.raises(UsageError, match=rf"^prometheus {server.url}: the answer is not JSON .*is this a Prometheus\?"):
        Prometheus(server.url).query("vector(1)")


def test_a_result_that_is_not_an_instant_query_answer_is_a_usage_error(serve: Serve) -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"labels": {}}]}})
    server = serve(Answer(200, body.encode()))
    with pytest.raises(UsageError, match=rf"^prometheus {server.url}: not an instant-query answer .* for up$"):
        Prometheus(server.url).query("up")


def test_json_without_data_is_a_usage_error(serve: Serve) -> None:
    server = serve(Answer(200, b'{"hello": "world"}'))
    with pytest.raises(UsageError, match="the answer is not a Prometheus query result"):
        Prometheus(server.url).query("up")


# --- /metrics pages ---------------------------------------------------------------------------------------------


def test_read_page_returns_a_real_metrics_page(real_prometheus: str) -> None:
    text = read_page(f"{real_prometheus}/metrics")
    assert "# TYPE prometheus_http_requests_total counter" in text


def test_read_page_of_a_missing_page_is_a_usage_error_quoting_the_body(serve: Serve) -> None:
    server = serve(Answer(404, b"404 page not found", content_type="text/plain"))
    with pytest.raises(UsageError, match=rf"^metrics {server.url}/metrics: HTTP 404: b'404 page not found'$"):
        read_page(f"{server.url}/metrics")


def test_read_page_of_an_unavailable_server_is_transient(serve: Serve) -> None:
    server = serve(Answer(503, b"warming up", content_type="text/plain"))
    with pytest.raises(TransientError, match=rf"^metrics {server.url}/metrics: HTTP 503$"):
        read_page(f"{server.url}/metrics")


def test_read_page_of_an_unreachable_server_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(TransientError, match=rf"^metrics {url}: unreachable: "):
        read_page(url)


def test_read_page_of_something_that_is_not_a_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^metrics 'model-server/metrics': must be an http:// or https:// URL"):
        read_page("model-server/metrics")


def test_read_page_of_a_host_and_port_without_a_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="must be an http:// or https:// URL"):
        read_page("127.0.0.1:9090/metrics")


def test_parse_exposition_reads_counters_and_histogram_buckets_of_a_real_page(real_prometheus: str) -> None:
    text = read_page(f"{real_prometheus}/metrics")
    samples = parse_exposition(text, "prometheus_http_requests_total",
                               "prometheus_http_request_duration_seconds_bucket")
    counters = [(labels, value) for name, labels, value in samples if name == "prometheus_http_requests_total"]
    buckets = [(labels, value) for name, labels, value in samples
               if name == "prometheus_http_request_duration_seconds_bucket"]
    # The queries above went through /api/v1/query, so its counter is there and counted them.
    assert any(labels.get("handler") == "/api/v1/query" and labels.get("code") == "200" and value >= 1
               for labels, value in counters)
    assert buckets and all("le" in labels for labels, _ in buckets)
    assert any(labels["le"] == "+Inf" for labels, _ in buckets)
    assert {name for name, _, _ in samples} == {"prometheus_http_requests_total",
                                                "prometheus_http_request_duration_seconds_bucket"}


def test_parse_exposition_keeps_only_the_named_series() -> None:
    text = ("# TYPE a_total counter\na_total 1\n"
            "# TYPE b histogram\nb_bucket{le=\"1.0\"} 2\nb_bucket{le=\"+Inf\"} 3\nb_sum 4.5\nb_count 3\n")
    assert parse_exposition(text, "b_count", "b_sum") == [("b_sum", {}, 4.5), ("b_count", {}, 3.0)]
    assert parse_exposition(text, "nothing") == []


def test_parse_exposition_unescapes_label_values_pushed_through_a_real_pushgateway(tmp_path: Path) -> None:
    value = 'say "hi"\\ then\nbreak'
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    with running(PUSHGATEWAY, [], tmp_path) as url:
        body = f'# TYPE mlops_test_events_total counter\nmlops_test_events_total{{feature="{escaped}"}} 3\n'
        request = urllib.request.Request(f"{url}/metrics/job/escapes", data=body.encode(), method="PUT")
        urllib.request.urlopen(request, timeout=5).close()
        samples = parse_exposition(read_page(f"{url}/metrics"), "mlops_test_events_total")
    assert [(name, labels["feature"], labels["job"], v) for name, labels, v in samples] == [
        ("mlops_test_events_total", value, "escapes", 3.0)]


def test_a_malformed_page_is_a_usage_error_naming_where_it_came_from() -> None:
    with pytest.raises(UsageError, match=r"^http://10.0.0.7:8080/metrics: not a Prometheus text exposition: "):
        parse_exposition('model_requests_total{code="200" 5\n', "model_requests_total",
                         where="http://10.0.0.7:8080/metrics")
