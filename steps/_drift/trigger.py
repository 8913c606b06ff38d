"""The retrain request a drift check sends when its rule says retrain: once per drift episode (steps._drift.cooldown),
to the webhook (steps._drift.webhook), with the body the Sensor maps onto the training Workflow's parameters."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from steps._core.documents import TriggerRecord
from steps._core.errors import TransientError, UsageError
from steps._core.policy import DriftPolicy
from steps._drift import cooldown, webhook
from steps._drift.rule import DriftResult
from steps._storage.registry import Registry

REASON = "automated_drift_detection"


class RetrainRequest(TypedDict):
    """The webhook body: DESIGN.md's table (the Sensor maps it to the training Workflow's parameters)."""

    model: str
    reason: str
    drifted_features: list[str]
    idempotency_key: str
    production_version: int
    drift_share: float
    samples: int
    window: str


@dataclass(frozen=True)
class Trigger:
    """What happened to the retrain request: sent, cooldown (an episode is already on), not_configured, none."""

    status: str
    idempotency_key: str | None = None
    attempts: int = 0
    detail: str = ""

    def to_dict(self) -> TriggerRecord:
        return {"status": self.status, "idempotency_key": self.idempotency_key, "attempts": self.attempts,
                "detail": self.detail}


def retrain_body(model: str, version: int, result: DriftResult, key: str, window: str) -> RetrainRequest:
    return {
        "model": model, "reason": REASON, "drifted_features": result.drifted_features, "idempotency_key": key,
        "production_version": version, "drift_share": result.share, "samples": result.samples, "window": window,
    }


def trigger(registry: Registry, model: str, version: int, result: DriftResult, policy: DriftPolicy,
            url: str | None, token: str | None, *, now: datetime | None = None, backoff: float = 0.5,
            attempts: int = 5) -> Trigger:
    """Send the retrain request if the result says retrain, a webhook is configured and no episode is on.
    The episode's cooldown stands only once the alert is delivered: a POST that fails in any way (after its
    retries, refused, interrupted) is recorded on the episode as failed, which the next check re-sends, and raised."""
    if not result.retrain:
        return Trigger("none", detail=result.reason)
    if not url or token is None:
        return Trigger("not_configured", detail="retraining is due, but no --webhook is configured")
    key = cooldown.claim(registry, model, version, policy.cooldown, now or datetime.now(UTC))
    if key is None:
        record, _ = cooldown.read(registry, model)
        owner, until = (record.get("idempotency_key"), record.get("until")) if record else (None, None)
        return Trigger("cooldown", owner, detail=f"a drift episode is already handled until {until}")
    body = retrain_body(model, version, result, key, policy.window)
    try:
        delivery = webhook.post(url, body, token, attempts=attempts, backoff=backoff,
                                log=lambda line: print(f"drift: {line}", file=sys.stderr))
    except (TransientError, UsageError) as err:
        cooldown.settle(registry, model, key, "failed", str(err))
        raise
    except BaseException as err:  # Ctrl-C or a bug mid-POST: nothing says it was delivered, so release the episode
        cooldown.settle(registry, model, key, "failed", f"interrupted before the webhook answered: {err!r}")
        raise
    cooldown.settle(registry, model, key, "sent", f"HTTP {delivery.status}")
    return Trigger("sent", key, delivery.attempts, f"HTTP {delivery.status}")
