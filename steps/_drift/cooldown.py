"""The drift cooldown: one retrain request per drift episode, however many checks run at once.

The episode record (`state/drift-cooldown.json` in the registry) is claimed by compare-and-swap before any POST
and settled with the POST's outcome; a claim whose POST failed, or was abandoned by a killed pod, is re-sent
with the same idempotency key.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import NotRequired, TypedDict, cast

from steps._core.errors import TransientError
from steps._core.values import duration_seconds
from steps._storage.registry import Registry

COOLDOWN_STATE = "drift-cooldown"
# A claimed episode whose POST neither succeeded nor failed by then was abandoned (a killed pod): re-send it.
CLAIM_LEASE_SECONDS = 600
_CAS_ATTEMPTS = 20


class CooldownRecord(TypedDict):
    """The registry's state/drift-cooldown.json: the current drift episode and its retrain request."""

    model: str
    production_version: int
    episode_start: str
    until: str  # the end of the cooldown: no new episode before
    idempotency_key: str
    status: str  # claimed | sent | failed
    claimed_at: str
    attempts: int
    detail: NotRequired[str]  # the POST's outcome, once settled


def episode_key(model: str, version: int, started: str) -> str:
    """12 hex characters naming a drift episode: the Workflow's name is `<model>-retrain-<key>` (<= 63)."""
    return hashlib.sha256(f"{model}\n{version}\n{started}".encode()).hexdigest()[:12]


def read(registry: Registry, model: str) -> tuple[CooldownRecord | None, str | None]:
    """The episode record and its etag; (None, None) before the first episode."""
    record, etag = registry.read_state(model, COOLDOWN_STATE)
    return cast(CooldownRecord | None, record), etag


def claim(registry: Registry, model: str, version: int, cooldown: str, now: datetime) -> str | None:
    """Claim the right to send this episode's retrain request: its idempotency key, or None when another check
    owns it (cooldown).

    The record is written by compare-and-swap before any POST, so of any number of concurrent checks exactly
    one sends; a later check re-sends the same key only when the earlier POST failed or was abandoned.
    """
    for _ in range(_CAS_ATTEMPTS):
        record, etag = read(registry, model)
        updated: CooldownRecord
        if record and _parse(record.get("until")) > now:
            failed = record.get("status") == "failed"
            abandoned = (record.get("status") == "claimed"
                         and _parse(record.get("claimed_at")) + timedelta(seconds=CLAIM_LEASE_SECONDS) <= now)
            if not (failed or abandoned):
                return None
            updated = {**record, "status": "claimed", "claimed_at": now.isoformat(),
                       "attempts": int(record.get("attempts", 0)) + 1}
        else:
            started = now.isoformat()
            updated = {
                "model": model, "production_version": version, "episode_start": started,
                "until": (now + timedelta(seconds=duration_seconds(cooldown))).isoformat(),
                "idempotency_key": episode_key(model, version, started), "status": "claimed",
                "claimed_at": started, "attempts": 1,
            }
        if registry.cas_state(model, COOLDOWN_STATE, dict(updated), etag):
            return str(updated["idempotency_key"])
    raise TransientError(f"{model}: state/{COOLDOWN_STATE} kept changing during {_CAS_ATTEMPTS} attempts")


def settle(registry: Registry, model: str, key: str, status: str, detail: str) -> None:
    """Record the POST's outcome (sent or failed) on the episode, unless a newer episode replaced it meanwhile."""
    for _ in range(_CAS_ATTEMPTS):
        record, etag = read(registry, model)
        if not record or record.get("idempotency_key") != key:
            return
        if registry.cas_state(model, COOLDOWN_STATE, {**record, "status": status, "detail": detail}, etag):
            return


def _parse(text: object) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # an unreadable time is treated as long past
