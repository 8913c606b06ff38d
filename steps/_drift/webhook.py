"""POST a JSON body to a webhook with a bearer token, retrying transient failures with backoff.

A 2xx is delivered; a 5xx, 429, timeout or refused connection is retried; any other 4xx is not (the request
itself is wrong: a bad token, a bad URL). After the last attempt the failure is a TransientError (exit 3),
never silent. The token comes from a file or the environment, never from the command line.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps._core.errors import TransientError, UsageError

TOKEN_ENV = "MLOPS_WEBHOOK_TOKEN"
_RETRIED_STATUS = (408, 425, 429)


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
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--webhook {url!r}: must be an http:// or https:// URL")
    if attempts < 1:
        raise UsageError(f"webhook attempts: must be at least 1 (got {attempts})")
    data = json.dumps(body, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    delay = backoff
    last = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Delivery(response.status, attempt, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")[:200]
            if err.code < 500 and err.code not in _RETRIED_STATUS:
                raise UsageError(f"webhook {url}: HTTP {err.code} {err.reason}: {text} (not retried)") from err
            last = f"HTTP {err.code} {err.reason}: {text}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            last = str(getattr(err, "reason", err))
        if log:
            log(f"webhook {url}: attempt {attempt}/{attempts} failed: {last}")
        if attempt < attempts:
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    raise TransientError(f"webhook {url}: not delivered after {attempts} attempts; last error: {last}")
