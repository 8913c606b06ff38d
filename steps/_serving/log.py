"""The server's log: one JSON object per line on stderr, what log collectors parse without a pattern."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from steps._serving.codec import dumps


def log(event: str, level: str = "info", **fields: Any) -> None:
    """Write one line: `ts`, `level`, `event`, `pid` and `fields`."""
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": level, "event": event,
              "pid": os.getpid(), **fields}
    try:
        line = dumps(record).decode()
    except TypeError:
        line = json.dumps(record, default=str)
    # One write call per line: workers share stderr, and a line split across writes would interleave.
    sys.stderr.flush()
    try:
        os.write(sys.stderr.fileno(), (line + "\n").encode())
    except (OSError, ValueError):  # no usable file descriptor (a test's captured stderr)
        print(line, file=sys.stderr, flush=True)
