"""The one Prometheus client of the steps, and the one reader of the text exposition format.

Queries go through prometheus-api-client (the client Argo Rollouts users know); the servers' own /metrics pages
are read with prometheus_client's parser. Failures become the steps' exit codes: unreachable, a 5xx or a page
that never answers is transient (3, the workflow retries the step); a query Prometheus refuses, an answer that
is not Prometheus' or a page that is not an exposition is a usage error (2), naming the URL and what it said.
"""

from __future__ import annotations

import ast
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from steps._core.errors import TransientError, UsageError

Sample = tuple[dict[str, str], float]  # a series' labels and its value
QUERY_TIMEOUT_SECONDS = 30


class Prometheus:
    """Instant queries against one Prometheus. `retries` covers a blip (a 502/503/504 or a dropped connection,
    `backoff` seconds apart, doubling); a Prometheus that stays down is the caller's exit 3."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_SECONDS, retries: int = 1, backoff: float = 0.2):
        self.url = url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def query(self, promql: str) -> list[Sample]:
        """The series of an instant query, each as (labels, value); a scalar result is one series with no labels;
        [] when nothing matches."""
        import requests
        from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
        from urllib3.util import Retry

        # raise_on_status=False: a 5xx that outlasts the retries comes back as its response, with its status and
        # Prometheus' error text, instead of urllib3's "too many 503 error responses".
        retry = Retry(total=self.retries, backoff_factor=self.backoff, status_forcelist=(502, 503, 504),
                      raise_on_status=False)
        client = PrometheusConnect(url=self.url, disable_ssl=True, retry=retry, timeout=int(self.timeout))
        try:
            result: Any = client.custom_query(query=promql)
        except PrometheusApiClientException as err:
            status, detail = _api_error(str(err))
            if status is None or status >= 500:
                raise TransientError(f"prometheus {self.url}: {detail} for {promql}") from err
            raise UsageError(f"prometheus {self.url}: the query was refused ({detail}): {promql}") from err
        except requests.exceptions.JSONDecodeError as err:  # a ValueError and a RequestException: before both
            raise UsageError(f"prometheus {self.url}: the answer is not JSON ({err}): is this a Prometheus?") from err
        except requests.exceptions.RequestException as err:
            raise TransientError(f"prometheus {self.url}: unreachable: {err}") from err
        except (KeyError, TypeError) as err:  # JSON, but without Prometheus' `data.result`
            raise UsageError(f"prometheus {self.url}: the answer is not a Prometheus query result (no {err}): is "
                             "this a Prometheus?") from err
        finally:
            client.close()
        return _samples(self.url, promql, result)

    def values(self, promql: str) -> list[float]:
        """Just the values of `query`, in Prometheus' order."""
        return [value for _, value in self.query(promql)]

    def check(self) -> None:
        """Fail now (exit 3 naming the URL) rather than in the middle of a canary or a drift check."""
        self.query("vector(1)")


def _samples(url: str, promql: str, result: Any) -> list[Sample]:
    # custom_query returns data.result: [{metric, value: [t, "v"]}, ...] for a vector, [t, "v"] for a scalar.
    try:
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            return [({}, float(result[1]))]
        return [({str(k): str(v) for k, v in s["metric"].items()}, float(s["value"][1])) for s in result]
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as err:
        raise UsageError(f"prometheus {url}: not an instant-query answer ({str(result)[:200]}) for {promql}") from err


def _api_error(message: str) -> tuple[int | None, str]:
    """(HTTP status, what Prometheus said) from prometheus-api-client's exception, whose message is
    "HTTP Status Code <n> (b'<body>')": Prometheus' JSON error body, as a bytes literal."""
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b(['\"]).*\3)\)", message, flags=re.DOTALL)
    if match is None:
        return None, message[:300]
    detail = f"HTTP {match.group(1)}"
    try:
        body = json.loads(ast.literal_eval(match.group(2)))
        detail += f": {body['errorType']}: {body['error']}"
    except (ValueError, SyntaxError, TypeError, KeyError):  # not Prometheus' JSON: its first bytes say enough
        detail += f": {match.group(2)[:200]}"
    return int(match.group(1)), detail


# --- the text exposition format (a server's /metrics page) -----------------------------------------------------


def read_page(url: str, timeout: float = 10.0) -> str:
    """A /metrics page's text. Unreachable or a 5xx: TransientError; a 4xx or not an http(s) URL: UsageError."""
    if urlsplit(url).scheme not in ("http", "https"):  # `host:port/path` would read as the scheme `host`
        raise UsageError(f"metrics {url!r}: must be an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as err:
        if err.code >= 500:
            raise TransientError(f"metrics {url}: HTTP {err.code}") from err
        raise UsageError(f"metrics {url}: HTTP {err.code}: {err.read()[:200]!r}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"metrics {url}: unreachable: {getattr(err, 'reason', err)}") from err
    except ValueError as err:  # not an http(s) URL
        raise UsageError(f"metrics {url!r}: {err}") from err
    return data.decode("utf-8", errors="replace")


def parse_exposition(text: str, *metrics: str, where: str = "metrics") -> list[tuple[str, dict[str, str], float]]:
    """The samples of the named series (e.g. `model_requests_total`, `x_bucket`) in a Prometheus text exposition,
    as (name, labels, value). A page that does not parse is a UsageError naming `where`."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = set(metrics)
    try:
        return [(s.name, dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text)
                for s in family.samples if s.name in wanted]
    except (ValueError, TypeError, IndexError) as err:
        raise UsageError(f"{where}: not a Prometheus text exposition: {err}") from err
