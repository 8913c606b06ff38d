"""`python -m workflows ...` is `mlops ...` (for a checkout without the console script installed)."""

from __future__ import annotations

import sys

from workflows.cli import main

if __name__ == "__main__":
    sys.exit(main())
