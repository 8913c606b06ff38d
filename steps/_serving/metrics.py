"""The server's Prometheus metrics, kept in shared memory so that every worker process counts into one table.

Every series is known when the model loads (status codes, histogram buckets, the profile's bins of each feature
and of the predictions, the fixed bins of a score or a value), so the table is a flat array of float64: one block
per worker, created before the workers fork. A worker adds to its own block only (no locks); `/metrics`, on
whichever worker the scrape reaches, sums the blocks. A worker that dies and is restarted keeps its block, so
counters never go back.
"""

from __future__ import annotations

import mmap
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from steps._serving.outputs import shift_labels

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Per-request latency: the buckets bracket the canary analysis' p95 threshold (100 ms by default).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Every status the server answers a predict or infer request with (pre-declared, so rate() sees the first one).
# The transport's refusals count too when the target was read (408, 413, 417, 431); a 414's target never was.
CODES = (200, 400, 404, 405, 408, 413, 415, 417, 422, 431, 500, 503)
# The `protocol` label: HTTP always; gRPC when the server serves it (`protocols`), its statuses counted as the HTTP
# codes KServe maps them to (steps._serving.grpc.service.CODES: OK 200, INVALID_ARGUMENT 400, NOT_FOUND 404, ...).
PROTOCOLS = ("http", "grpc")
_DOUBLE = 8


@dataclass(frozen=True)
class _Histogram:
    name: str
    help: str
    bounds: tuple[float, ...]
    offset: int  # buckets (len(bounds) + 1, the last one +Inf), then sum, then count

    @property
    def size(self) -> int:
        return len(self.bounds) + 3


class _Contract(Protocol):
    @property
    def names(self) -> list[str]: ...

    @property
    def bin_labels(self) -> list[list[str]]: ...


class _Model(Protocol):
    """What the metrics need of a served model (steps._serving.app.ServedModel)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def task(self) -> str: ...

    @property
    def contract(self) -> _Contract: ...

    @property
    def prediction_bins(self) -> tuple[str, ...]: ...


class Metrics:
    """Counters and histograms for one model version, shared by `workers` processes (fork after creating).
    `scores`: the model_prediction_score histogram (binary models); `prediction_bins`: the labels of
    model_prediction_bin_total's bins (the profile's `prediction` entry; none: no such series); `shift_bins`:
    model_prediction_shift_bin_total's (outputs.shift_labels of the task), right after them in the table, where
    outputs.Outputs.count adds to them. `protocols`: the values of model_requests_total's and
    model_inference_duration_seconds' `protocol` label (http, and grpc when the server serves it)."""

    def __init__(self, model: str, version: str, features: Sequence[str], bin_labels: Sequence[Sequence[str]],
                 workers: int = 1, prediction_bins: Sequence[str] = (), scores: bool = True,
                 shift_bins: Sequence[str] = (), protocols: Sequence[str] = ("http",)):
        unknown = [p for p in protocols if p not in PROTOCOLS]
        if unknown or "http" not in protocols:
            raise ValueError(f"protocols {list(protocols)!r}: http and any of {', '.join(PROTOCOLS)}")
        self.model, self.version = model, version
        self.features = list(features)
        self.bin_labels = [list(labels) for labels in bin_labels]
        self.prediction_bins = list(prediction_bins)
        self.shift_bins = list(shift_bins)
        self.scores = scores
        self.protocols = [p for p in PROTOCOLS if p in protocols]
        offset = 0
        # Per protocol: its block of status codes, then its duration histogram.
        self.code_offsets: dict[str, dict[int, int]] = {}
        self.durations: dict[str, _Histogram] = {}
        for protocol in self.protocols:
            self.code_offsets[protocol] = {code: offset + i for i, code in enumerate(CODES)}
            offset += len(CODES)
            self.durations[protocol] = _Histogram(
                "model_inference_duration_seconds",
                "Time from a predict/infer request's last byte (a gRPC call's message) to its response, in seconds.",
                DURATION_BUCKETS, offset)
            offset += self.durations[protocol].size
        # The HTTP ones, on the hot path without a lookup.
        self.code_offset, self.duration = self.code_offsets["http"], self.durations["http"]
        self.errors_offset = offset
        self.rows_offset = offset + 1
        offset += 2
        self.batch = _Histogram("model_batch_size", "Rows per call of the model (after micro-batching).",
                                tuple(float(b) for b in BATCH_BUCKETS), offset)
        offset += self.batch.size
        self.score = _Histogram("model_prediction_score", "Scores of the positive class.", SCORE_BUCKETS, offset)
        offset += self.score.size
        self.bin_offsets = []
        for labels in self.bin_labels:
            self.bin_offsets.append(offset)
            offset += len(labels)
        self.prediction_offset = offset
        offset += len(self.prediction_bins)
        self.shift_offset = offset
        offset += len(self.shift_bins)
        self.size = offset
        self.workers = workers
        self._memory = mmap.mmap(-1, max(1, workers * offset * _DOUBLE))  # anonymous and shared across fork
        self.use_slot(0)

    @classmethod
    def for_model(cls, model: _Model, workers: int = 1, protocols: Sequence[str] = ("http",)) -> Metrics:
        """The table for a served model: its features' bins, its predictions' bins and, a score's or a value's,
        their fixed bins (counted together, so only with a `prediction` profile), scores when binary."""
        return cls(model.name, model.version, model.contract.names, model.contract.bin_labels, workers,
                   model.prediction_bins, scores=model.task == "binary",
                   shift_bins=shift_labels(model.task) if model.prediction_bins else (), protocols=protocols)

    def use_slot(self, slot: int) -> None:
        """The block this process adds to (a worker's index)."""
        if not 0 <= slot < self.workers:
            raise ValueError(f"metrics slot {slot}: must be below {self.workers}")
        start = slot * self.size * _DOUBLE
        self.counts: Any = memoryview(self._memory)[start:start + self.size * _DOUBLE].cast("d")

    # ---- recording (hot path) --------------------------------------------------------------------------

    def request(self, code: int, seconds: float, protocol: str = "http") -> None:
        """A predict/infer request answered with `code` after `seconds` (5xx also count as errors), over
        `protocol` (http or grpc; gRPC statuses are counted as the HTTP codes KServe maps them to)."""
        counts = self.counts
        if protocol == "http":
            offsets, duration = self.code_offset, self.duration
        else:
            offsets, duration = self.code_offsets[protocol], self.durations[protocol]
        counts[offsets.get(code, offsets[500])] += 1
        if code >= 500:
            counts[self.errors_offset] += 1
        _observe(counts, duration, seconds)

    def batch_done(self, rows: int, scores: Sequence[float] | None = None) -> None:
        """A model call on `rows` rows; a binary model's `scores` go into the score histogram."""
        counts = self.counts
        counts[self.rows_offset] += rows
        _observe(counts, self.batch, float(rows))
        if scores is None or not self.scores:
            return
        hist = self.score
        bounds, base = hist.bounds, hist.offset
        for s in scores:
            counts[base + bisect_left(bounds, s)] += 1
        counts[base + len(bounds) + 1] += sum(scores)
        counts[base + len(bounds) + 2] += len(scores)

    # ---- reading ---------------------------------------------------------------------------------------

    def totals(self) -> list[float]:
        """Every value summed over the workers' blocks."""
        whole = memoryview(self._memory).cast("d")
        totals = list(whole[0:self.size])
        for slot in range(1, self.workers):
            block = whole[slot * self.size:(slot + 1) * self.size]
            totals = [a + b for a, b in zip(totals, block, strict=True)]
        return totals

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        t = self.totals()
        base = f'model="{_escape(self.model)}",model_version="{_escape(self.version)}"'
        out = [
            ("# HELP model_requests_total Predict and infer requests, by HTTP status code (a gRPC status as the code "
             "KServe maps it to) and protocol."),
            "# TYPE model_requests_total counter",
            *(f'model_requests_total{{{base},code="{code}",protocol="{protocol}"}} {_value(t[i])}'
              for protocol, offsets in self.code_offsets.items() for code, i in offsets.items()),
            "# HELP model_inference_errors_total Predict and infer requests that failed on the server's side (5xx).",
            "# TYPE model_inference_errors_total counter",
            f"model_inference_errors_total{{{base}}} {_value(t[self.errors_offset])}",
            "# HELP model_inference_rows_total Rows scored.",
            "# TYPE model_inference_rows_total counter",
            f"model_inference_rows_total{{{base}}} {_value(t[self.rows_offset])}",
        ]
        out += _histogram_lines(self.duration, t, base, [(f'{base},protocol="{protocol}"', hist)
                                                         for protocol, hist in self.durations.items()])
        for hist in (self.batch, self.score) if self.scores else (self.batch,):
            out += _histogram_lines(hist, t, base)
        out += [
            ("# HELP model_feature_bin_total Scored values per feature and reference-profile bin "
             "(the bin's index, other for an unseen category, missing)."),
            "# TYPE model_feature_bin_total counter",
        ]
        for name, labels, offset in zip(self.features, self.bin_labels, self.bin_offsets, strict=True):
            feature = _escape(name)
            out += [f'model_feature_bin_total{{{base},feature="{feature}",bin="{_escape(label)}"}} '
                    f"{_value(t[offset + i])}" for i, label in enumerate(labels)]
        if self.prediction_bins:
            out += [
                ("# HELP model_prediction_bin_total Predictions per bin of the reference profile's prediction "
                 "distribution (score or value bins by index; a class's index, or other)."),
                "# TYPE model_prediction_bin_total counter",
            ]
            offset = self.prediction_offset
            out += [f'model_prediction_bin_total{{{base},bin="{_escape(label)}"}} {_value(t[offset + i])}'
                    for i, label in enumerate(self.prediction_bins)]
        if self.shift_bins:
            out += [
                ("# HELP model_prediction_shift_bin_total Predictions per fixed bin of the task, the same for every "
                 "version (a score's logit, a value's signed log; by index): what the canary's prediction-shift "
                 "guard compares."),
                "# TYPE model_prediction_shift_bin_total counter",
            ]
            offset = self.shift_offset
            out += [f'model_prediction_shift_bin_total{{{base},bin="{label}"}} {_value(t[offset + i])}'
                    for i, label in enumerate(self.shift_bins)]
        return ("\n".join(out) + "\n").encode()

    def value(self, name: str, **labels: str) -> float:
        """One series' current total (for logs and tests): model_requests_total(code=, protocol= or every
        protocol's), _errors, _rows, model_feature_bin_total(feature=, bin=), model_prediction_bin_total(bin=),
        model_prediction_shift_bin_total(bin=)."""
        t = self.totals()
        if name == "model_requests_total":
            code = int(labels["code"])
            chosen = [labels["protocol"]] if "protocol" in labels else self.protocols
            return sum(t[self.code_offsets[protocol][code]] for protocol in chosen)
        if name == "model_inference_errors_total":
            return t[self.errors_offset]
        if name == "model_inference_rows_total":
            return t[self.rows_offset]
        if name == "model_feature_bin_total":
            j = self.features.index(labels["feature"])
            return t[self.bin_offsets[j] + self.bin_labels[j].index(labels["bin"])]
        if name == "model_prediction_bin_total":
            return t[self.prediction_offset + self.prediction_bins.index(labels["bin"])]
        if name == "model_prediction_shift_bin_total":
            return t[self.shift_offset + self.shift_bins.index(labels["bin"])]
        raise KeyError(name)


def _observe(counts: Any, hist: _Histogram, value: float) -> None:
    bounds = hist.bounds
    counts[hist.offset + bisect_left(bounds, value)] += 1
    counts[hist.offset + len(bounds) + 1] += value
    counts[hist.offset + len(bounds) + 2] += 1


def _histogram_lines(hist: _Histogram, t: list[float], base: str,
                     series: list[tuple[str, _Histogram]] | None = None) -> list[str]:
    """One histogram family: `hist` with the labels `base`, or each of `series` (labels, its offsets)."""
    lines = [f"# HELP {hist.name} {hist.help}", f"# TYPE {hist.name} histogram"]
    for labels, one in series or [(base, hist)]:
        running = 0.0
        n = len(one.bounds)
        for i, bound in enumerate(one.bounds):
            running += t[one.offset + i]
            lines.append(f'{one.name}_bucket{{{labels},le="{_le(bound)}"}} {_value(running)}')
        count = t[one.offset + n + 2]
        lines.append(f'{one.name}_bucket{{{labels},le="+Inf"}} {_value(count)}')
        lines.append(f"{one.name}_sum{{{labels}}} {_value(t[one.offset + n + 1])}")
        lines.append(f"{one.name}_count{{{labels}}} {_value(count)}")
    return lines


def _le(bound: float) -> str:
    return str(int(bound)) + ".0" if float(bound).is_integer() else repr(float(bound))


def _value(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
