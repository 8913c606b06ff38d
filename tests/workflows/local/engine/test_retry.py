"""retryStrategy's durations and policies as Argo reads them."""

from __future__ import annotations

import pytest

from workflows.local.engine.retry import RetryError, parse_duration, policy


@pytest.mark.parametrize(("text", "seconds"), [("10", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0)])
def test_durations_are_seconds_or_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(RetryError, match="invalid duration"):
        parse_duration("ten")


def test_the_default_policy_is_on_failure_or_always_with_an_expression() -> None:
    assert policy({"limit": 2}) == "OnFailure"
    assert policy({"expression": "true"}) == "Always"
    assert policy({"retryPolicy": "OnError", "expression": "true"}) == "OnError"
