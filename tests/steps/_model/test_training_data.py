"""train's profile and ECDFs are computed on a thread beside the column reading (steps._model.training_data.InOrder):
results come back in the columns' order, an error reaches the caller, and only a few columns wait at a time."""

from __future__ import annotations

import threading
import time

import pytest

from steps._model.training_data import InOrder


def _late(i: int) -> int:
    time.sleep(0.01 * (6 - i))  # the first calls take longest
    return i


def test_results_come_back_in_the_order_they_were_submitted() -> None:
    beside = InOrder()
    try:
        for i in range(6):
            beside.submit(_late, i)
        assert beside.results() == list(range(6))
    finally:
        beside.close()


def test_an_error_in_a_call_reaches_the_caller() -> None:
    def broken() -> None:
        raise ValueError("amount: expected numbers")

    beside = InOrder()
    try:
        beside.submit(broken)
        with pytest.raises(ValueError, match="amount: expected numbers"):
            beside.results()
    finally:
        beside.close()


def test_the_caller_waits_once_two_calls_are_pending() -> None:
    """Each pending call holds a whole column: the reading waits rather than queue them all."""
    release = threading.Event()
    beside = InOrder(pending=2)
    try:
        beside.submit(release.wait)
        beside.submit(lambda: None)
        third = threading.Thread(target=beside.submit, args=(lambda: None,))
        third.start()
        third.join(0.2)
        assert third.is_alive()  # blocked until the first call ends
        release.set()
        third.join(5)
        assert not third.is_alive()
        assert len(beside.results()) == 3
    finally:
        release.set()
        beside.close()
