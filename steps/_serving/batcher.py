"""Micro-batching: the rows of concurrent prediction requests joined into one model call."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from steps._serving.exchange import Request, Responder

Rows = list[tuple[float, ...]]
# What a model returns for a batch: one float per row (binary, regression) or k probabilities (multiclass).
Predictions = list[float] | list[list[float]]


class Job:
    """One request's rows waiting for the model, and where its answer goes. `answer`, when set, answers the
    request from its predictions instead of the App's JSON (the binary tensor extension, gRPC); a failed batch
    still answers through `out`."""

    __slots__ = ("answer", "out", "queued_at", "req", "request_id", "rows", "v2")

    def __init__(self, rows: Rows, req: Request, out: Responder, v2: bool, request_id: str | None,
                 answer: Callable[[Job, Predictions], None] | None = None):
        self.rows, self.req, self.out, self.v2, self.request_id = rows, req, out, v2, request_id
        self.answer = answer
        self.queued_at = time.perf_counter()


class Sink(Protocol):
    """Who answers the jobs of a batch (the App)."""

    def scored(self, jobs: list[Job], rows: Rows, predictions: Predictions) -> None: ...

    def failed(self, jobs: list[Job], err: BaseException) -> None: ...


class Arrivals(Protocol):
    """What the transport tells the batcher (the Worker)."""

    receiving: int  # requests whose headers have arrived and whose body has not yet

    def batch_finished(self) -> None: ...


class Batcher:
    """Joins the rows of concurrent requests into one model call of at most `max_rows` rows (a single bigger
    request goes alone).

    A batch runs at the end of the event-loop turn in which its first request arrived: every request whose
    bytes were already there has been parsed and joined it by then, so nothing waits when nothing else is
    queued. Only while another request is still arriving (its headers read, its body not yet) does a batch
    that is not full wait for it, at most `max_wait` seconds after its first request. A model in a helper
    thread (`inline` false) runs one batch at a time; the requests arriving meanwhile form the next one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, predict: Callable[[Sequence[Sequence[float]]], Predictions],
                 inline: bool, sink: Sink, arrivals: Arrivals, max_rows: int, max_wait: float):
        self.loop, self.predict, self.inline, self.sink, self.arrivals = loop, predict, inline, sink, arrivals
        self.max_rows, self.max_wait = max(1, max_rows), max(0.0, max_wait)
        self.executor = None if inline else ThreadPoolExecutor(1, thread_name_prefix="model")
        self.queue: deque[Job] = deque()
        self.queued_rows = 0
        self.scheduled = False
        self.timer: asyncio.TimerHandle | None = None
        self.busy = False

    @property
    def idle(self) -> bool:
        return not self.queue and not self.busy

    def submit(self, job: Job) -> None:
        self.queue.append(job)
        self.queued_rows += len(job.rows)
        if self.timer is not None and (self.queued_rows >= self.max_rows or not self.arrivals.receiving):
            self.timer.cancel()
            self.timer = None
            self.scheduled = False
        if not self.scheduled and not self.busy:
            self.scheduled = True
            self.loop.call_soon(self._run)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False)

    def _run(self) -> None:
        self.scheduled = False
        self.timer = None
        if not self.queue or self.busy:
            return
        if self.queued_rows < self.max_rows and self.arrivals.receiving and self.max_wait:
            wait = self.queue[0].queued_at + self.max_wait - time.perf_counter()
            if wait > 0:
                self.scheduled = True
                self.timer = self.loop.call_later(wait, self._run)
                return
        jobs = [self.queue.popleft()]
        total = len(jobs[0].rows)
        while self.queue and total + len(self.queue[0].rows) <= self.max_rows:
            job = self.queue.popleft()
            jobs.append(job)
            total += len(job.rows)
        self.queued_rows -= total
        rows = jobs[0].rows if len(jobs) == 1 else [row for job in jobs for row in job.rows]
        if self.executor is None:
            try:
                predictions = self.predict(rows)
            except Exception as err:  # noqa: BLE001 - a model failure is a 500 for these requests, not a crash
                self.sink.failed(jobs, err)
            else:
                self.sink.scored(jobs, rows, predictions)
            self._next()
        else:
            self.busy = True
            future = self.loop.run_in_executor(self.executor, self.predict, rows)
            future.add_done_callback(lambda f: self._threaded_done(f, jobs, rows))

    def _threaded_done(self, future: asyncio.Future[Predictions], jobs: list[Job], rows: Rows) -> None:
        self.busy = False
        err = future.exception()
        if err is not None:
            self.sink.failed(jobs, err)
        else:
            self.sink.scored(jobs, rows, future.result())
        self._next()

    def _next(self) -> None:
        if self.queue and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._run)
        self.arrivals.batch_finished()
