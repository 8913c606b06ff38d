"""The one Pushgateway client of the steps: a batch job's gauges PUT under its job and grouping labels (the drift
check's, job mlops-drift; the training run's, job mlops-training), replacing what that group held before."""

from __future__ import annotations

import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from steps._core.errors import TransientError, UsageError

PUSH_TIMEOUT_SECONDS = 10.0


class Gauges:
    """Gauges in the text exposition format, each name's TYPE line once, in the order they were added."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._typed: set[str] = set()

    def add(self, name: str, value: float, **labels: object) -> None:
        """One sample. A NaN or an infinity is left out: a dashboard or an alert would read it as a number."""
        value = float(value)
        if not math.isfinite(value):
            return
        if name not in self._typed:
            self._typed.add(name)
            self._lines.append(f"# TYPE {name} gauge")
        pairs = ",".join(f'{key}="{_escape(str(v))}"' for key, v in labels.items())
        self._lines.append(f"{name}{{{pairs}}} {value!r}" if pairs else f"{name} {value!r}")

    def names(self) -> set[str]:
        return set(self._typed)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def group_url(url: str, job: str, grouping: Mapping[str, str]) -> str:
    """The group's address: /metrics/job/<job>/<label>/<value>... (values URL-quoted)."""
    path = f"/metrics/job/{urllib.parse.quote(job, safe='')}"
    for key, value in grouping.items():
        path += f"/{urllib.parse.quote(key, safe='')}/{urllib.parse.quote(value, safe='')}"
    return url.rstrip("/") + path


def push(url: str, job: str, grouping: Mapping[str, str], gauges: Gauges,
         timeout: float = PUSH_TIMEOUT_SECONDS) -> None:
    """Replace the group's metrics on the Pushgateway at `url`. A refused push (4xx) is a UsageError, an
    unreachable or failing Pushgateway (5xx, timeout) a TransientError; both name the URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"pushgateway {url!r}: not a URL: must be http:// or https:// with a host")
    request = urllib.request.Request(group_url(url, job, grouping), data=gauges.text().encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        detail = f"pushgateway {url}: HTTP {err.code}: {err.read()[:200]!r}"
        if err.code >= 500:
            raise TransientError(detail) from err
        raise UsageError(detail) from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"pushgateway {url}: unreachable: {getattr(err, 'reason', err)}") from err
