"""Micro-batching (steps._serving.batcher) on a real event loop: requests that arrive together share one model
call, a batch never passes its row limit, it waits for a request still arriving only up to its deadline, a model
in a helper thread runs one batch at a time, and a model failure fails its batch's requests only."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from steps._serving.batcher import Batcher, Job, Rows
from steps._serving.exchange import Request


class Answered:
    """A Responder that keeps what it was told."""

    def __init__(self) -> None:
        self.status: int | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        self.status = status


class Model:
    """Scores each row as its first value; records every call's size (and, threaded, its overlap)."""

    def __init__(self, fail_on: float | None = None, seconds: float = 0.0):
        self.calls: list[int] = []
        self.fail_on, self.seconds = fail_on, seconds
        self.running = 0
        self.overlapped = False
        self.lock = threading.Lock()

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        with self.lock:
            self.running += 1
            self.overlapped |= self.running > 1
        try:
            time.sleep(self.seconds)
            self.calls.append(len(rows))
            if self.fail_on is not None and any(row[0] == self.fail_on for row in rows):
                raise RuntimeError("the model broke")
            return [row[0] for row in rows]
        finally:
            with self.lock:
                self.running -= 1


class Recorder:
    """The Sink and the Arrivals: what the App and the Worker would be told."""

    def __init__(self) -> None:
        self.receiving = 0
        self.scores: dict[int, list[float]] = {}
        self.failures: list[int] = []
        self.batches = 0

    def scored(self, jobs: list[Job], rows: Rows, scores: list[float]) -> None:
        start = 0
        for job in jobs:
            self.scores[id(job)] = scores[start:start + len(job.rows)]
            start += len(job.rows)

    def failed(self, jobs: list[Job], err: BaseException) -> None:
        self.failures += [id(job) for job in jobs]

    def batch_finished(self) -> None:
        self.batches += 1


def job(*values: float) -> Job:
    req = Request(b"POST", b"/v2/models/m/infer", b"application/json", b"{}", True)
    return Job([(v,) for v in values], req, Answered(), True, None)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def settle(loop: asyncio.AbstractEventLoop, seconds: float = 0.05) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def until(loop: asyncio.AbstractEventLoop, done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not done():
        assert time.perf_counter() < deadline, "the batcher did not finish in time"
        settle(loop, 0.005)


def test_requests_of_one_loop_turn_share_one_model_call(loop: asyncio.AbstractEventLoop) -> None:
    model, recorder = Model(), Recorder()
    batcher = Batcher(loop, model.predict, True, recorder, recorder, max_rows=32, max_wait=0.005)
    jobs = [job(0.1), job(0.2, 0.3), job(0.4)]
    for j in jobs:
        batcher.submit(j)
    settle(loop)
    assert model.calls == [4]
    assert [recorder.scores[id(j)] for j in jobs] == [[0.1], [0.2, 0.3], [0.4]]
    assert recorder.batches == 1 and batcher.idle


def test_a_batch_never_passes_max_rows_and_a_bigger_request_goes_alone(loop: asyncio.AbstractEventLoop) -> None:
    model, recorder = Model(), Recorder()
    batcher = Batcher(loop, model.predict, True, recorder, recorder, max_rows=4, max_wait=0.005)
    for j in (job(0.1, 0.1, 0.1), job(0.2, 0.2), job(*[0.3] * 6), job(0.4)):
        batcher.submit(j)
    settle(loop)
    assert model.calls == [3, 2, 6, 1]


def test_a_batch_waits_for_a_request_still_arriving_up_to_max_wait(loop: asyncio.AbstractEventLoop) -> None:
    model, recorder = Model(), Recorder()
    batcher = Batcher(loop, model.predict, True, recorder, recorder, max_rows=32, max_wait=0.2)
    recorder.receiving = 1  # another request's headers are in, its body is not
    first = job(0.1)
    batcher.submit(first)
    settle(loop, 0.05)
    assert model.calls == []  # waiting for it
    recorder.receiving = 0
    second = job(0.2)
    batcher.submit(second)  # it arrived: no more reason to wait
    settle(loop, 0.02)
    assert model.calls == [2]
    recorder.receiving = 1
    started = time.perf_counter()
    batcher.submit(job(0.3))
    until(loop, lambda: recorder.batches == 2)
    assert 0.15 < time.perf_counter() - started < 1.0  # it never came: the batch ran at its deadline
    assert model.calls == [2, 1]


def test_a_threaded_model_runs_one_batch_at_a_time(loop: asyncio.AbstractEventLoop) -> None:
    model, recorder = Model(seconds=0.05), Recorder()
    batcher = Batcher(loop, model.predict, False, recorder, recorder, max_rows=32, max_wait=0.005)
    batcher.submit(job(0.1))
    settle(loop, 0.01)  # the first batch is in the helper thread
    for value in (0.2, 0.3, 0.4):
        batcher.submit(job(value))
    until(loop, lambda: len(recorder.scores) == 4)
    batcher.close()
    assert model.calls == [1, 3] and not model.overlapped


def test_a_model_failure_fails_only_its_own_batch(loop: asyncio.AbstractEventLoop) -> None:
    model, recorder = Model(fail_on=0.5), Recorder()
    batcher = Batcher(loop, model.predict, True, recorder, recorder, max_rows=2, max_wait=0.005)
    bad, partner, later = job(0.5), job(0.1), job(0.2)
    for j in (bad, partner, later):
        batcher.submit(j)
    settle(loop)
    assert recorder.failures == [id(bad), id(partner)]
    assert recorder.scores == {id(later): [0.2]}
