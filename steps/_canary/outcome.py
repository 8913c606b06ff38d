"""How a rollout ended, whichever target ran it (Argo Rollouts on Kubernetes, or the local deployment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steps._core.errors import ValidationFailed


class RolloutTimeout(ValidationFailed):
    """No verdict in time: the version stays canary (the Rollout may still finish); exit 1."""


@dataclass
class Outcome:
    """`promoted` or not, the reason a person reads in the registry's history, and the evidence (`details`)."""

    promoted: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
