"""The gate's measures of one model on the holdout: its task's metrics (steps._quality.metrics), size, the gap
between segments, latency, peak memory, predictor parity and edge cases; and the stability of two models' feature
importances.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from steps._core import threads as _threads
from steps._core.errors import UsageError
from steps._core.policy import GATES, Gate, Policy
from steps._model import parity as _parity
from steps._model import task as _task
from steps._model import trees as _trees
from steps._model.bundle import Bundle
from steps._model.skops import MODEL_FILE
from steps._quality import metrics as _metrics
from steps._quality import segments as _segments
from steps._quality.edge_cases import EdgeCase, edge_cases
from steps._quality.segments import SegmentF1, SegmentRecall

MIB = 1024 * 1024
# Always measured for the baseline too: cheap, and the report compares them.
CHEAP = frozenset({"accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc", "log_loss", "recall_gap",
                   "macro_f1", "log_loss_vs_prior", "class_recall", "macro_f1_gap",
                   "rmse", "mae", "r2", "rmse_vs_mean", "model_size_mb"})
# Permutation importances: a fixed subsample (a binary one holding every positive, up to half of it), 3 repeats,
# the task's loss: log loss for a classifier (it uses every row's probability, so it is less noisy than average
# precision on a few positives or accuracy), RMSE for a regressor.
# Stability is the Pearson correlation of the two models' importances: it weighs each feature by how much the
# models rely on it. A rank (Spearman) correlation weighs the order of the dozen features worth ~0 as much as the
# order of the few that matter: retrains after a drift that fires the drift check scored 0.71-0.86 on 40k-200k
# rows, so the loop rejected its own retrains. Pearson: 0.96-0.99 for those retrains, ~0 for a model that relies
# on no feature. It is a coarse check: a model whose strongest feature was scrambled scored 0.88-0.93 (its loss
# shows in pr_auc and the data contract, not here).
_IMPORTANCE_ROWS = 1000
_IMPORTANCE_REPEATS = 3
IMPORTANCE_LOSS = {"binary": "log loss", "multiclass": "log loss", "regression": "RMSE"}


@dataclass
class Measured:
    """One model's measurements: its holdout predictions (steps._model.task.predict), a value per measure (None:
    not measurable) and notes."""

    scores: np.ndarray
    metrics: dict[str, float | None]
    notes: dict[str, str]
    segments: list[SegmentRecall] = field(default_factory=list)
    edge_cases: list[EdgeCase] = field(default_factory=list)
    task: str = "binary"
    # what its metrics compare with: the threshold (binary), the training class shares (multiclass) or the
    # training target mean (regression); None where bundle.json lacks it
    reference: Any = None
    segment_f1: list[SegmentF1] = field(default_factory=list)


def reference_of(bundle: Bundle) -> Any:
    """The bundle's threshold (binary), metrics.train_class_shares (multiclass, one share a class) or
    metrics.train_target_mean (regression); None where bundle.json lacks a usable one."""
    if bundle.task == "binary":
        return bundle.threshold
    recorded: Any = bundle.manifest.get("metrics") or {}
    if bundle.task == "multiclass":
        shares = recorded.get("train_class_shares")
        classes = bundle.classes or []
        ok = isinstance(shares, list) and len(shares) == len(classes) and all(
            type(v) in (int, float) and v >= 0 for v in shares)
        return [float(v) for v in shares] if ok else None
    mean = recorded.get("train_target_mean")
    return float(mean) if type(mean) in (int, float) and np.isfinite(mean) else None


def measure(
    bundle: Bundle,
    X: pd.DataFrame,
    y: np.ndarray,
    holdout: pd.DataFrame,
    policy: Policy,
    gates: dict[str, Gate],
    wanted: Set[str],
) -> Measured:
    """Score the holdout with the bundle's model and take the `wanted` measures (its task's holdout metrics
    always: a binary model's precision, recall and F1 of the positive class at the bundle's own threshold)."""
    task = bundle.task
    pipeline = bundle.pipeline
    try:
        # Encoded once: the codes the model scores here are the ones the compiled predictor's parity reads.
        codes = _contract_codes(pipeline, X)
        predictions = _task.predict(pipeline if codes is None else pipeline[1:], X if codes is None else codes, task)
    except Exception as err:  # any failure to score the holdout means we cannot evaluate: say which model
        raise UsageError(f"bundle {bundle.path}: cannot score the holdout: {type(err).__name__}: {err}") from err
    out = Measured(scores=predictions, metrics={}, notes={}, task=task, reference=reference_of(bundle))
    # A segment or class gate the policy leaves out is still measured for the report, with its default settings
    # (recall_gap: every segment with a positive counts).
    settings = {name: {**GATES[name][1], **(gates[name].settings if name in gates else {})}
                for name in ("class_recall", "macro_f1_gap")}
    if task == "binary":
        min_positives = gates["recall_gap"].settings["min_positives"] if "recall_gap" in gates else 1
        _binary(out, y, holdout, policy.data.segment, min_positives)
    elif task == "multiclass":
        _multiclass(out, y, bundle.classes or [], holdout, policy.data.segment, settings)
    else:
        _regression(out, y)
    m = out.metrics
    if "model_size_mb" in wanted:
        m["model_size_mb"] = sum((bundle.path / n).stat().st_size for n in bundle.files if n.startswith("model.")) / MIB
    # Latency and memory as a server process has them, on one thread unless $OMP_NUM_THREADS says otherwise: the
    # values do not follow the CPUs of the machine the gate runs on (scoring the holdout does).
    threads = os.environ.get("OMP_NUM_THREADS") or "1"
    single = _threads.count(environ={"OMP_NUM_THREADS": threads})
    if "latency_p95_ms" in wanted:
        calls = gates["latency_p95_ms"].settings["calls"]
        with _threads.limit(single):
            served = served_calls(bundle, X, calls)
            m["latency_p95_ms"] = None if served.call is None else latency_p95_ms(served.call, served.requests, calls)
        out.notes["latency_p95_ms"] = (served.what if served.call is None else
                                       f"{served.what}, in-process, CPU time of the calling thread, "
                                       f"OMP_NUM_THREADS={threads}")
    if "peak_memory_mb" in wanted:
        rows = gates["peak_memory_mb"].settings["rows"]
        with _threads.limit(single):
            m["peak_memory_mb"] = peak_memory_mb(pipeline, X, rows, policy.model.seed, task)
        out.notes["peak_memory_mb"] = f"tracemalloc peak while scoring {rows} rows" + (
            " (sampled with replacement from the holdout)" if rows > len(X) else ""
        )
    if "predictor_parity" in wanted:
        m["predictor_parity"], out.notes["predictor_parity"] = _parity.measure(
            bundle, X, predictions, y, workers=_threads.count(policy.model.threads), codes=codes)
    if "edge_cases" in wanted:
        out.edge_cases = edge_cases(pipeline, bundle.features, X, task)
        m["edge_cases"] = sum(not c["passed"] for c in out.edge_cases)
        out.notes["edge_cases"] = "; ".join(f"{c['name']}: {c['detail']}" for c in out.edge_cases)
    return out


def _contract_codes(pipeline: Any, X: pd.DataFrame) -> np.ndarray | None:
    """X as the pipeline's first step (the contract encoder) encodes it, for the rest of the pipeline to score:
    Pipeline.predict_proba(X) computes exactly this, then the rest. None for a model of another shape."""
    from steps._model.features import ContractEncoder

    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) < 2 or not isinstance(steps[0][1], ContractEncoder):
        return None
    codes: np.ndarray = steps[0][1].transform(X)
    return codes


def _binary(out: Measured, y: np.ndarray, holdout: pd.DataFrame, segment: str | None, min_positives: int) -> None:
    from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_fscore_support, roc_auc_score

    scores, threshold = out.scores, out.reference
    predicted = scores >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", pos_label=1, zero_division=0)
    out.metrics.update({
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "log_loss": _metrics.binary_log_loss(y, scores),
    })
    out.metrics["recall_gap"], out.notes["recall_gap"], out.segments = _segments.recall_gap(
        y, predicted, holdout, segment, min_positives
    )


def _multiclass(out: Measured, y: np.ndarray, classes: list[Any], holdout: pd.DataFrame, segment: str | None,
                settings: dict[str, dict[str, Any]]) -> None:
    p, m = out.scores, out.metrics
    m["accuracy"] = _metrics.multiclass_accuracy(y, p)
    m["macro_f1"] = _metrics.macro_f1(y, p)
    m["log_loss"] = _metrics.multiclass_log_loss(y, p)
    if out.reference is None:
        m["log_loss_vs_prior"] = None
        out.notes["log_loss_vs_prior"] = "bundle.json has no metrics.train_class_shares (one a class) to compare with"
    else:
        m["log_loss_vs_prior"] = _metrics.log_loss_vs_prior(y, p, out.reference)
        prior = _metrics.multiclass_log_loss(y, np.tile(np.asarray(out.reference), (len(y), 1)))
        out.notes["log_loss_vs_prior"] = (f"log loss {m['log_loss']:.4g} / {prior:.4g} of always predicting the "
                                          f"training class shares")
    min_support = int(settings["class_recall"]["min_support"])
    table = _metrics.per_class(y, p)
    counted = np.flatnonzero(table["support"] >= max(min_support, 1))
    if len(counted) == 0:
        m["class_recall"] = None
        out.notes["class_recall"] = f"no class has >= {min_support} holdout rows: nothing to measure"
    else:
        worst = int(counted[np.argmin(table["recall"][counted])])
        m["class_recall"] = float(table["recall"][worst])
        out.notes["class_recall"] = (f"lowest recall: class {_label(classes, worst)} {table['recall'][worst]:.3f} "
                                     f"({int(table['support'][worst])} rows) over {len(counted)} classes with >= "
                                     f"{min_support} holdout rows")
    m["macro_f1_gap"], out.notes["macro_f1_gap"], out.segment_f1 = _segments.macro_f1_gap(
        y, p, holdout, segment, int(settings["macro_f1_gap"]["min_rows"]))


def _regression(out: Measured, y: np.ndarray) -> None:
    v, m = out.scores, out.metrics
    m["rmse"], m["mae"] = _metrics.rmse(y, v), _metrics.mae(y, v)
    r2 = _metrics.r2(y, v)
    m["r2"] = r2 if np.isfinite(r2) else None
    if m["r2"] is None:
        out.notes["r2"] = "the holdout's target is constant: R² is undefined"
    if out.reference is None:
        m["rmse_vs_mean"] = None
        out.notes["rmse_vs_mean"] = "bundle.json has no metrics.train_target_mean to compare with"
    else:
        ratio = _metrics.rmse_vs_mean(y, v, out.reference)
        m["rmse_vs_mean"] = ratio if np.isfinite(ratio) else None
        naive = _metrics.rmse(y, np.full(len(y), out.reference))
        out.notes["rmse_vs_mean"] = (f"rmse {m['rmse']:.4g} / {naive:.4g} of always predicting the training mean "
                                     f"{out.reference:.4g}")


def _label(classes: list[Any], code: int) -> str:
    return repr(classes[code]) if code < len(classes) else str(code)


def _scorer(pipeline: Any, task: str) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda batch: _task.predict(pipeline, batch, task)


@dataclass
class ServedCalls:
    """What the latency gate times: `call(request)` answers one parsed V1 request body as the server does."""

    call: Callable[[Any], object] | None  # None: the server could not load the bundle (`what` says why)
    requests: list[dict[str, Any]]  # {"instances": [one holdout row]}, as the server's JSON decoder gives them
    what: str  # for the gate's note


def served_calls(bundle: Bundle, X: pd.DataFrame, count: int) -> ServedCalls:
    """The server's own per-request path for this bundle: steps._serving.loader loads it as `mlops serve` does
    (the compiled trees of model.trees.json when they load, else model.skops' estimator) and each request is
    checked and encoded by its request contract, then predicted. One request per holdout row of the first `count`
    (fewer rows: they repeat); a row the contract refuses (the server would answer 422) is not timed."""
    from steps._serving.contract import RequestError
    from steps._serving.loader import ServeError, load_model

    try:
        model = load_model(bundle.path, verified=bundle.manifest)
    except ServeError as err:
        return ServedCalls(None, [], f"not measured: the server does not load this bundle: {err}")
    contract, predictor = model.contract, model.predictor

    def call(body: Any) -> object:
        return predictor.predict(contract.rows_from_v1(body))

    requests, refused = [], 0
    for instance in _instances(X.head(count)):
        body = {"instances": [instance]}
        try:
            contract.rows_from_v1(body)
        except RequestError:
            refused += 1
            continue
        requests.append(body)
    if model.description["predictor"] == "compiled":
        how = f"the compiled trees ({_trees.TREES_FILE})"
    else:
        how = f"{MODEL_FILE}'s {model.description.get('estimator', 'model')} on the encoded row"
    what = (f"single-row V1 requests from the parsed body to the predictions as the server answers them: its request "
            f"contract, then {how}")
    if refused:
        what += f"; {refused} of the first {min(count, len(X))} holdout rows refused by the contract, not timed"
    if not requests:
        return ServedCalls(None, [], f"not measured: the request contract refuses every holdout row timed ({what})")
    return ServedCalls(call, requests, what)


def _instances(X: pd.DataFrame) -> list[dict[str, Any]]:
    """X's rows as a V1 body's instances after JSON decoding: plain Python values, None where missing."""
    return [{str(name): None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value
             for name, value in row.items()} for row in X.astype(object).to_dict("records")]


def latency_p95_ms(call: Callable[[Any], object], requests: Sequence[Any], calls: int) -> float:
    """The 95th percentile of `calls` calls `call(request)` over `requests` in turn, in milliseconds of the
    calling thread's CPU time: what a call costs on a core of its own. Wall time would also count the moments the
    process waits for a CPU, so on a busy machine (a shared node, CI) the same model measured two or three times
    slower and failed its bound; the served latency under real load is the canary analysis' to judge. The calls run
    on one thread (the caller's; see measure), so its CPU time is the whole call's."""
    for request in requests[:10]:  # warm caches and lazy imports so the first calls do not count
        call(request)
    elapsed = np.empty(calls)
    clock = time.thread_time
    for i in range(calls):
        request = requests[i % len(requests)]
        start = clock()
        call(request)
        elapsed[i] = clock() - start
    return float(np.percentile(elapsed, 95) * 1000)


def peak_memory_mb(pipeline: Any, X: pd.DataFrame, rows: int, seed: int, task: str = "binary") -> float:
    """Python's allocations at their peak while scoring `rows` holdout rows at once, in MiB."""
    score = _scorer(pipeline, task)
    batch = X.sample(n=rows, replace=rows > len(X), random_state=seed)
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        score(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return (peak - before) / MIB


def importance_stability(
    candidate: Any, baseline: Any, X_candidate: pd.DataFrame, X_baseline: pd.DataFrame, y: np.ndarray, seed: int,
    task: str = "binary", y_baseline: np.ndarray | None = None,
) -> tuple[float | None, dict[str, tuple[float, float | None]]]:
    """The Pearson correlation of the two models' permutation importances (None when undefined), and each of
    the candidate's features with its importance in both (for the report). `y_baseline` is the target as the
    baseline encodes it, where its class order differs."""
    rows = _importance_rows(y, seed, task)
    y_base = y if y_baseline is None else y_baseline
    cand = _importances(candidate, X_candidate.iloc[rows], y[rows], seed, task)
    base = _importances(baseline, X_baseline.iloc[rows], y_base[rows], seed, task)
    return _correlation(cand, base), {n: (v, base.get(n)) for n, v in cand.items()}


def _importance_rows(y: np.ndarray, seed: int, task: str = "binary") -> np.ndarray:
    """The holdout rows both importances are measured on: binary every positive (up to half), then negatives;
    other tasks a plain random subset."""
    if len(y) <= _IMPORTANCE_ROWS:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    if task != "binary":
        return np.sort(rng.choice(len(y), _IMPORTANCE_ROWS, replace=False))
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = min(len(positives), _IMPORTANCE_ROWS // 2)
    n_neg = min(len(negatives), _IMPORTANCE_ROWS - n_pos)
    return np.sort(
        np.concatenate([rng.choice(positives, n_pos, replace=False), rng.choice(negatives, n_neg, replace=False)])
    )


def _importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int, task: str = "binary") -> dict[str, float]:
    """Permutation importances per raw feature: the mean increase in the task's loss (IMPORTANCE_LOSS) when that
    column is shuffled. scikit-learn's permutation_importance(n_repeats=_IMPORTANCE_REPEATS, random_state=seed)
    to the last bit, its shuffles and its arithmetic, but every shuffled copy is scored in one prediction call
    instead of one call per column and repeat: a row's prediction does not depend on the other rows of its batch."""
    n, columns = len(X), list(X.columns)
    # permutation_importance draws one seed from random_state for every column; each column then shuffles an index
    # in place from a fresh RandomState of that seed, and takes each repeat's column from the previous repeat's.
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    blocks = [X]
    for position, name in enumerate(columns):
        permuted = X.copy()
        index = np.arange(n)
        state = np.random.RandomState(column_seed)
        for _ in range(_IMPORTANCE_REPEATS):
            state.shuffle(index)
            column = permuted.iloc[index, position]
            column.index = permuted.index
            permuted[name] = column
            blocks.append(permuted.copy())
    predictions = _task.predict(pipeline, pd.concat(blocks, ignore_index=True), task)
    loss = _LOSSES[task]
    y = np.asarray(y)
    scores = np.array([-loss(y, predictions[i * n:(i + 1) * n], None) for i in range(len(blocks))])
    increase = scores[0] - scores[1:].reshape(len(columns), _IMPORTANCE_REPEATS)
    return {name: float(v) for name, v in zip(columns, np.mean(increase, axis=1), strict=True)}


_LOSSES: dict[str, Callable[[np.ndarray, np.ndarray, Any], float]] = {
    # log loss over every class (a subsample may lack one), RMSE
    "binary": _metrics.binary_log_loss, "multiclass": _metrics.multiclass_log_loss, "regression": _metrics.rmse}


def _correlation(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Pearson correlation of two importance vectors over their common features; None when undefined."""
    common = [n for n in a if n in b]
    if len(common) < 2:
        return None
    x = np.array([a[n] for n in common], dtype=float)
    y = np.array([b[n] for n in common], dtype=float)
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((x @ x) * (y @ y)))
    if not np.isfinite(norm) or norm == 0.0:
        return None  # constant importances (a model that uses no feature): no correlation to speak of
    return float(np.clip((x @ y) / norm, -1.0, 1.0))
