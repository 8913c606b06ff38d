"""POST a JSON body to a webhook with a bearer token, retrying transient failures with backoff.

A 2xx is delivered; a 5xx, 429, 3xx, timeout, refused connection or an answer that is not HTTP is retried; any other
4xx is not (the request itself is wrong: a bad token, a bad URL). Redirects are never followed: the body and the
token go to the URL given and nowhere else. After the last attempt the failure is a TransientError (exit 3), never
silent. The token comes from a file or the environment, never from the command line.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps._core.errors import TransientError, UsageError

TOKEN_ENV = "MLOPS_WEBHOOK_TOKEN"
_RETRIED_STATUS = (408, 425, 429)
# What is read of an answer: enough for any receiver's message, and an endless answer cannot hold the step.
MAX_ANSWER_BYTES = 65536


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a 301/302/303 from a POST as a GET without the body but with every header, the bearer token
    included, to wherever Location points: a redirect is returned as it is instead (an HTTPError)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int
    body: str


def read_token(token_file: str | Path | None) -> str:
    """The bearer token: the file's content (stripped), else $MLOPS_WEBHOOK_TOKEN. Raises UsageError if neither."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise UsageError(f"--token-file {token_file}: cannot read: {err}") from err
        if not token:
            raise UsageError(f"--token-file {token_file}: is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"webhook token: give --token-file FILE or set ${TOKEN_ENV}")
    return token


def post(
    url: str,
    body: Mapping[str, Any],
    token: str,
    *,
    attempts: int = 5,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    timeout: float = 10.0,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `body` as JSON with `Authorization: Bearer <token>`; retry transient failures with exponential backoff."""
    _check_url(url)
    _check_token(token)
    if attempts < 1:
        raise UsageError(f"webhook attempts: must be at least 1 (got {attempts})")
    data = json.dumps(body, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    opener = urllib.request.build_opener(_NoRedirects)  # here, not at import: it reads the proxy environment
    delay = backoff
    last = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                return Delivery(response.status, attempt, _text(response.read(MAX_ANSWER_BYTES)))
        except urllib.error.HTTPError as err:
            text = _text(err.read(MAX_ANSWER_BYTES))[:200]
            if 300 <= err.code < 400:
                # Not delivered: nothing reached the URL's receiver. Retried, as a load balancer mid-change answers so.
                last = (f"HTTP {err.code} {err.reason}: redirects to {err.headers.get('Location', '(no Location)')}, "
                        "not followed (a webhook is one POST to one URL)")
            elif err.code < 500 and err.code not in _RETRIED_STATUS:
                raise UsageError(f"webhook {url}: HTTP {err.code} {err.reason}: {text} (not retried)") from err
            else:
                last = f"HTTP {err.code} {err.reason}: {text}"
        except http.client.HTTPException as err:  # not HTTP (a wrong port), or an answer cut short
            last = f"not an HTTP answer: {type(err).__name__}: {err!r:.200}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            last = str(getattr(err, "reason", err))
        if log:
            log(f"webhook {url}: attempt {attempt}/{attempts} failed: {last}")
        if attempt < attempts:
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    raise TransientError(f"webhook {url}: not delivered after {attempts} attempts; last error: {last}")


def _check_url(url: str) -> None:
    """Refuse, as a usage error, a URL that no attempt could call (urllib would raise a bare ValueError)."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--webhook {url!r}: must be an http:// or https:// URL")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
    except ValueError as err:
        raise UsageError(f"--webhook {url!r}: the port must be a number from 0 to 65535") from err
    if not parts.hostname:
        raise UsageError(f"--webhook {url!r}: has no host")


def _check_token(token: str) -> None:
    """A token with a line break would end the Authorization header (http.client raises a bare ValueError); the
    message never shows the token."""
    for position, char in enumerate(token):
        if ord(char) < 32 or ord(char) == 127:
            raise UsageError(f"webhook token: has a control character (a line break?) at position {position}; a "
                             "bearer token is one line of printable characters")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
