"""The drift cooldown (steps/_drift/cooldown.py) on a real registry: one claim per episode, a failed or abandoned
request re-claimed under the same key, and a new episode, with a new key, only once the cooldown is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from steps._drift import cooldown
from steps._storage.registry import Registry

MODEL = "fraud-detection"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.open(str(tmp_path / "registry"))


def test_the_first_claim_starts_an_episode_and_a_second_inside_the_cooldown_gets_none(registry: Registry) -> None:
    key = cooldown.claim(registry, MODEL, 3, "6h", START)
    assert key == cooldown.episode_key(MODEL, 3, START.isoformat())
    assert cooldown.claim(registry, MODEL, 3, "6h", START + timedelta(minutes=1)) is None
    record, _ = cooldown.read(registry, MODEL)
    assert record is not None
    assert (record["status"], record["attempts"], record["production_version"]) == ("claimed", 1, 3)
    assert record["until"] == (START + timedelta(hours=6)).isoformat()


def test_a_failed_request_is_claimed_again_under_the_same_key(registry: Registry) -> None:
    key = cooldown.claim(registry, MODEL, 3, "6h", START)
    assert key is not None
    cooldown.settle(registry, MODEL, key, "failed", "webhook: HTTP 503")
    assert cooldown.claim(registry, MODEL, 3, "6h", START + timedelta(minutes=5)) == key
    record, _ = cooldown.read(registry, MODEL)
    assert record is not None and (record["status"], record["attempts"]) == ("claimed", 2)
    cooldown.settle(registry, MODEL, key, "sent", "HTTP 200")
    assert cooldown.claim(registry, MODEL, 3, "6h", START + timedelta(minutes=6)) is None


def test_a_claim_abandoned_past_its_lease_is_claimed_again_and_one_inside_it_is_not(registry: Registry) -> None:
    key = cooldown.claim(registry, MODEL, 3, "6h", START)
    lease = timedelta(seconds=cooldown.CLAIM_LEASE_SECONDS)
    assert cooldown.claim(registry, MODEL, 3, "6h", START + lease - timedelta(seconds=1)) is None
    assert cooldown.claim(registry, MODEL, 3, "6h", START + lease) == key


def test_after_the_cooldown_a_new_episode_gets_a_new_key(registry: Registry) -> None:
    first = cooldown.claim(registry, MODEL, 3, "1h", START)
    assert first is not None
    cooldown.settle(registry, MODEL, first, "sent", "HTTP 200")
    later = START + timedelta(hours=1, seconds=1)
    second = cooldown.claim(registry, MODEL, 4, "1h", later)
    assert second == cooldown.episode_key(MODEL, 4, later.isoformat()) and second != first
    # The first episode's late outcome does not touch the new episode's record.
    cooldown.settle(registry, MODEL, first, "failed", "late")
    record, _ = cooldown.read(registry, MODEL)
    assert record is not None and (record["idempotency_key"], record["status"]) == (second, "claimed")
