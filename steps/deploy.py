"""Deploy step: the long-lived local deployment (`mlops deploy`), a router in front of a stable and a canary
server with a control endpoint, that the rollout step's local target drives. See steps/_canary/local/."""

from __future__ import annotations

import sys

from steps._canary.local.deploy import main

if __name__ == "__main__":
    sys.exit(main())
