"""The optional sampled inference log: a share of the scored rows, written as Parquet files to an object store
(a folder, file:// or s3://), for users who want drift or audits on raw rows. Off unless INFERENCE_LOG is set.

Each worker samples rows as it scores them and keeps them in memory; every `batch_rows` rows (or
`flush_seconds`) one helper thread writes one file, create-only, at
`<model>/v<version>/<YYYY-MM-DD>/<time>-<pid>-<n>.parquet`. Values are the contract's view of each row: the
number, the category (`other` for an unseen one mapped there), null for missing; plus the prediction by task
(binary: score and label 0/1; regression: value; multiclass: label, the predicted class), the time and version.
A write that fails is logged and its rows dropped: the log must never slow down or fail a prediction.
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from steps._serving.contract import OTHER_LABEL, FeatureSpec


class InferenceLog:
    def __init__(self, location: str, model: str, version: str, features: Sequence[FeatureSpec], sample: float,
                 threshold: float | None, batch_rows: int = 10_000, flush_seconds: float = 60.0,
                 log: Callable[..., None] | None = None, task: str = "binary", classes: Sequence[str | int] = ()):
        import pyarrow.parquet  # noqa: F401 - imported now: later, in the writer thread, it would hold up serving

        from steps._storage.store import open_store

        self.store = open_store(location)
        self.location = location
        self.model, self.version, self.threshold = model, version, threshold
        self.task, self.classes = task, list(classes)
        if task == "binary" and threshold is None:
            raise ValueError("the inference log of a binary model needs its threshold")
        self.features = list(features)
        self.sample, self.batch_rows, self.flush_seconds = sample, max(1, batch_rows), flush_seconds
        self.log = log or (lambda *a, **k: None)
        self.rows: list[tuple[tuple[float, ...], Any, float]] = []
        self.started = time.monotonic()
        self.files = 0
        self.written_rows = 0
        self.dropped_rows = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="inference-log")
        self._pending: list[Future[None]] = []
        self._random = random.Random()
        # encoded value -> what the log shows: the category's name, or `other`
        self._names = [list(f.categories) + [OTHER_LABEL] if f.type == "categorical" else None for f in features]

    def record(self, rows: Sequence[tuple[float, ...]], predictions: Sequence[Any]) -> None:
        """Keep each row (and its prediction: a score, a value, or k probabilities) with probability `sample`;
        write a file when enough are kept or enough time passed."""
        now = time.time()
        draw = self._random.random
        sample = self.sample
        for row, prediction in zip(rows, predictions, strict=True):
            if sample >= 1.0 or draw() < sample:
                self.rows.append((row, prediction, now))
        if len(self.rows) >= self.batch_rows or (self.rows and time.monotonic() - self.started > self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Hand the kept rows to the writer thread."""
        if not self.rows:
            return
        batch, self.rows = self.rows, []
        self.started = time.monotonic()
        self.files += 1
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._write, batch, self.files))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is left and wait (at most `timeout` seconds) for every file."""
        self.flush()
        deadline = time.monotonic() + timeout
        for future in self._pending:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.log("inference_log_unfinished", "warning", pending_files=sum(not f.done() for f in self._pending))
                break
        self._writer.shutdown(wait=False)

    def _write(self, batch: list[tuple[tuple[float, ...], Any, float]], number: int) -> None:
        try:
            data = self._parquet(batch)
            stamp = datetime.fromtimestamp(batch[0][2], UTC)
            key = (f"{self.model}/v{self.version}/{stamp:%Y-%m-%d}/{stamp:%H%M%S.%f}-{os.getpid()}-{number}"
                   ".parquet")
            self.store.put_new(key, data)
        except Exception as err:  # noqa: BLE001 - the log is best effort: count, say so, serve on
            self.dropped_rows += len(batch)
            self.log("inference_log_failed", "warning", error=f"{type(err).__name__}: {err}", rows=len(batch),
                     dropped_rows=self.dropped_rows)
            return
        self.written_rows += len(batch)

    def _parquet(self, batch: list[tuple[tuple[float, ...], Any, float]]) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns: dict[str, Any] = {}
        for j, (f, names) in enumerate(zip(self.features, self._names, strict=True)):
            values = [row[j] for row, _, _ in batch]
            if names is None:
                columns[f.name] = pa.array([None if math.isnan(v) else v for v in values], pa.float64())
            else:
                columns[f.name] = pa.array([None if math.isnan(v) else names[int(v)] for v in values], pa.string())
        columns.update(self._predictions([prediction for _, prediction, _ in batch]))
        columns["scored_at"] = pa.array([datetime.fromtimestamp(t, UTC) for _, _, t in batch],
                                        pa.timestamp("ms", tz="UTC"))
        columns["model_version"] = pa.array([self.version] * len(batch), pa.string())
        out = io.BytesIO()
        pq.write_table(pa.table(columns), out, compression="zstd")
        return out.getvalue()

    def _predictions(self, predictions: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        if self.task == "regression":
            return {"value": pa.array(predictions, pa.float64())}
        if self.task == "multiclass":
            classes = self.classes
            # The predicted class as the data writes it; a tie goes to the first class, as the answers have it.
            labels = [classes[max(range(len(row)), key=row.__getitem__)] for row in predictions]
            kind = pa.int64() if all(type(c) is int for c in classes) else pa.string()
            return {"label": pa.array(labels if kind == pa.int64() else [str(c) for c in labels], kind)}
        threshold = self.threshold
        return {"score": pa.array(predictions, pa.float64()),
                "label": pa.array([int(s >= threshold) for s in predictions], pa.int8())}
