"""Exit codes shared by every step, and the wrapper that turns our errors into them.

0 done; 1 a validation said no; 2 bad usage or unreadable input; 3 transient (network, storage), the only
code that a workflow retries.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class StepError(Exception):
    exit_code = 2


class UsageError(StepError):
    """Bad arguments or unreadable input: retrying will not help."""

    exit_code = 2


class ValidationFailed(StepError):
    """The input was read, and a check said no."""

    exit_code = 1


class TransientError(StepError):
    """Network or storage trouble: the same call may work later."""

    exit_code = 3


def run(step: str, body: Callable[[], int]) -> int:
    """Run a step's body, printing `<step>: error: ...` and returning the exit code for our errors."""
    try:
        return body()
    except StepError as err:
        print(f"{step}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{step}: interrupted", file=sys.stderr)
        return 130
