"""Gate step: evaluate a candidate bundle (and the baseline, on the same holdout) against the policy.

    python -m steps.gate --bundle DIR --holdout FILE --policy FILE --report-dir DIR --passed-out FILE
                         [--registry LOC] [--baseline-version V] [--baseline-bundle DIR]

Writes gate.json and a self-contained gate.html to --report-dir and `true`/`false` to --passed-out. Exits 0
on either verdict: a rejected candidate is a result, not a failure of the step.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steps._core.errors import UsageError, run
from steps._core.policy import GATES, Gate, Policy, load_policy
from steps._model import features as _features
from steps._model import skops as _model
from steps._model.bundle import Bundle, BundleError
from steps._model.skops import ModelError

MIB = 1024 * 1024
HUGE = 1e12
UNSEEN = "__unseen_category__"
# Permutation importances: a fixed subsample holding every positive (up to half of it), 3 repeats, log loss
# (it uses every row's probability, so it is less noisy than average precision on a few positives).
# Stability is the Pearson correlation of the two models' importances: it weighs each feature by how much the
# models rely on it. A rank (Spearman) correlation weighs the order of the dozen features worth ~0 as much as the
# order of the few that matter: retrains after a drift that fires the drift check scored 0.71-0.86 on 40k-200k
# rows, so the loop rejected its own retrains. Pearson: 0.96-0.99 for those retrains, ~0 for a model that relies
# on no feature. It is a coarse check: a model whose strongest feature was scrambled scored 0.88-0.93 (its loss
# shows in pr_auc and the data contract, not here).
_IMPORTANCE_ROWS = 1000
_IMPORTANCE_REPEATS = 3
_CHEAP = ("accuracy", "pr_auc", "roc_auc", "recall_gap", "model_size_mb")  # always measured for the baseline


@dataclass
class Evidence:
    """What the HTML report draws, beyond gate.json."""

    y: np.ndarray
    candidate_scores: np.ndarray
    threshold: float
    baseline_scores: np.ndarray | None = None
    baseline_label: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    edge_cases: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GateResult:
    report: dict[str, Any]  # gate.json
    evidence: Evidence

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])

    def failure_lines(self) -> list[str]:
        return [
            f"gate: FAILED {g['name']} {g['note']}"
            for g in self.report["gates"]
            if g["name"] in self.report["failed"]
        ]

    def write(self, report_dir: Path, passed_out: Path) -> None:
        from steps._quality import report as _report

        report_dir = Path(report_dir)
        _write_text(report_dir / "gate.json", json.dumps(self.report, indent=2, sort_keys=True) + "\n")
        _write_text(report_dir / "gate.html", _report.render(self.report, self.evidence))
        _write_text(Path(passed_out), "true" if self.passed else "false")


def load_bundle(path: Path) -> Bundle:
    """Verify every file's sha256, then load the model with our trusted types only (now: a model that does not
    load is refused before any measurement)."""
    try:
        bundle = Bundle.open(path)
        bundle.pipeline  # noqa: B018 - loaded for its errors
    except (BundleError, ModelError) as err:
        raise UsageError(f"bundle {path}: refused: {err}") from err
    return bundle


def read_holdout(path: Path, policy: Policy) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as err:
        raise UsageError(f"--holdout {path}: no such file") from err
    except Exception as err:  # pyarrow raises several unrelated types for a corrupt file
        raise UsageError(f"--holdout {path}: not a readable Parquet file: {err}") from err
    target = policy.data.target
    if target not in frame.columns:
        raise UsageError(f"--holdout {path}: target column {target!r} (data.target) is missing")
    y = _features.target_vector(frame[target], policy.data.positive_label)
    if y.sum() == 0 or y.sum() == len(y):
        raise UsageError(
            f"--holdout {path}: needs rows of both classes to evaluate; {int(y.sum())} of {len(y)} "
            f"rows equal data.positive_label={policy.data.positive_label!r}"
        )
    return frame.reset_index(drop=True), y


def gate(
    candidate: Bundle,
    holdout: pd.DataFrame,
    y: np.ndarray,
    policy: Policy,
    baseline: Bundle | None,
) -> GateResult:
    """Evaluate the candidate (and the baseline, on the same holdout) against every gate in policy.quality."""
    for b in (candidate, baseline):
        if b is not None and b.model != policy.model_name:
            raise UsageError(
                f"bundle {b.path}: is a model of {b.model!r}, "
                f"but the policy is for {policy.model_name!r}"
            )
    seed = policy.model.seed
    gates = {g.name: g for g in policy.quality}
    X = _features.model_input(holdout, candidate.features, where="--holdout")

    with _model.compute_threads():
        cand = _measure(candidate, X, y, holdout, policy, gates, set(gates) | set(_CHEAP))
        evidence = Evidence(
            y=y,
            candidate_scores=cand.scores,
            threshold=candidate.threshold,
            segments=cand.segments,
            edge_cases=cand.edge_cases,
        )
        base: _Measured | None = None
        baseline_note = "no baseline yet"
        if baseline is not None:
            missing = [f.name for f in baseline.features if f.name not in holdout.columns]
            if missing:
                baseline_note = (
                    f"baseline {baseline.label} not comparable: the holdout lacks its features {missing}"
                )
            else:
                # Expensive measurements only where a gate compares them; edge cases are the candidate's.
                compared = {name for name, g in gates.items() if g.comparison} - {"edge_cases"}
                base = _measure(
                    baseline,
                    _features.model_input(holdout, baseline.features),
                    y,
                    holdout,
                    policy,
                    gates,
                    compared | set(_CHEAP),
                )
                evidence.baseline_scores = base.scores
                evidence.baseline_label = baseline.label

        if "feature_importance_stability" in gates and base is not None and baseline is not None:
            rows = _importance_rows(y, seed)
            cand_imp = _importances(candidate.pipeline, X.iloc[rows], y[rows], seed)
            base_imp = _importances(
                baseline.pipeline, _features.model_input(holdout, baseline.features).iloc[rows], y[rows], seed
            )
            cand.metrics["feature_importance_stability"] = _correlation(cand_imp, base_imp)
            evidence.importances = {n: (v, base_imp.get(n)) for n, v in cand_imp.items()}
    for name in gates:  # every gate has a candidate value, None where it could not be measured
        cand.metrics.setdefault(name, None)

    entries = [_judge(g, cand, base, baseline_note if base is None else None) for g in policy.quality]
    failed = [e["name"] for e in entries if not e["passed"] and gates[e["name"]].required]
    report = {
        "model": policy.model_name,
        "passed": not failed,
        "holdout_rows": len(y),
        "candidate": cand.metrics,
        "baseline": None
        if base is None or baseline is None
        else {"version": baseline.version, "metrics": base.metrics},
        "gates": entries,
        "failed": failed,
    }
    return GateResult(report, evidence)


@dataclass
class _Measured:
    scores: np.ndarray
    metrics: dict[str, Any]
    notes: dict[str, str]
    segments: list[dict[str, Any]] = field(default_factory=list)
    edge_cases: list[dict[str, Any]] = field(default_factory=list)


def _measure(
    bundle: Bundle,
    X: pd.DataFrame,
    y: np.ndarray,
    holdout: pd.DataFrame,
    policy: Policy,
    gates: dict[str, Gate],
    wanted: set[str],
) -> _Measured:
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    pipeline = bundle.pipeline
    try:
        scores = pipeline.predict_proba(X)[:, 1]
    except Exception as err:  # any failure to score the holdout means we cannot evaluate: say which model
        raise UsageError(
            f"bundle {bundle.path}: cannot score the holdout: {type(err).__name__}: {err}"
        ) from err
    predicted = scores >= bundle.threshold
    m: dict[str, Any] = {
        "accuracy": float(accuracy_score(y, predicted)),
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
    }
    out = _Measured(scores=scores, metrics=m, notes={})
    if "model_size_mb" in wanted:
        m["model_size_mb"] = (
            sum(
                (bundle.path / name).stat().st_size
                for name in bundle.files
                if name.startswith("model.")
            )
            / MIB
        )
    if "recall_gap" in wanted:
        min_positives = gates["recall_gap"].settings["min_positives"] if "recall_gap" in gates else 1
        m["recall_gap"], out.notes["recall_gap"], out.segments = _recall_gap(
            y, predicted, holdout, policy.data.segment, min_positives
        )
    if "latency_p95_ms" in wanted:
        m["latency_p95_ms"] = _latency_p95_ms(pipeline, X, gates["latency_p95_ms"].settings["calls"])
        threads = os.environ.get("OMP_NUM_THREADS") or "1"
        out.notes["latency_p95_ms"] = f"single-row predict_proba calls, in-process, OMP_NUM_THREADS={threads}"
    if "peak_memory_mb" in wanted:
        rows = gates["peak_memory_mb"].settings["rows"]
        m["peak_memory_mb"] = _peak_memory_mb(pipeline, X, rows, policy.model.seed)
        out.notes["peak_memory_mb"] = f"tracemalloc peak while scoring {rows} rows" + (
            " (sampled with replacement from the holdout)" if rows > len(X) else ""
        )
    if "predictor_parity" in wanted:
        from steps._model import parity as _parity

        m["predictor_parity"], out.notes["predictor_parity"] = _parity.measure(
            bundle.path, bundle.manifest, pipeline, X, scores, bundle.features
        )
    if "edge_cases" in wanted:
        out.edge_cases = _edge_cases(pipeline, bundle.features, X)
        m["edge_cases"] = sum(not c["passed"] for c in out.edge_cases)
        out.notes["edge_cases"] = "; ".join(f"{c['name']}: {c['detail']}" for c in out.edge_cases)
    return out


def _judge(g: Gate, cand: _Measured, base: _Measured | None, no_baseline: str | None) -> dict[str, Any]:
    direction = GATES[g.name][0]
    value = cand.metrics.get(g.name)
    notes: list[str] = []
    reasons: list[str] = []
    entry: dict[str, Any] = {
        "name": g.name,
        "value": value,
        "comparison": g.comparison,
        "tolerance": g.tolerance,
        "baseline_value": None if base is None else base.metrics.get(g.name),
    }
    if direction == "required":
        entry.update(bound=None, bound_kind="required", comparison=None, tolerance=None)
        if value:
            reasons.append(f"{value} of {len(cand.edge_cases)} cases failed: {cand.notes[g.name]}")
        else:
            notes.append(f"all {len(cand.edge_cases)} cases handled: {cand.notes[g.name]}")
    else:
        bound = g.minimum if direction == "min" else g.maximum
        entry.update(bound=bound, bound_kind="minimum" if direction == "min" else "maximum")
        if g.name == "feature_importance_stability" and base is None:
            notes.append(no_baseline or "no baseline yet")
        elif value is None:
            if g.name == "feature_importance_stability":
                reasons.append("importances are constant, so their correlation is undefined")
            elif g.name in cand.notes:
                notes.append(cand.notes[g.name])  # e.g. recall_gap with fewer than two segments to compare
            else:
                reasons.append("could not be measured")
        else:
            if direction == "min" and bound is not None and value < bound:
                reasons.append(f"{_num(value)} < minimum {_num(bound)}")
            if direction == "max" and bound is not None and value > bound:
                reasons.append(f"{_num(value)} > maximum {_num(bound)}")
            if g.comparison:
                bv = entry["baseline_value"]
                if base is None:
                    notes.append(no_baseline or "no baseline yet")
                elif bv is None:
                    notes.append("the baseline's value could not be measured: not compared")
                elif g.comparison == "gte" and value < bv - g.tolerance:
                    reasons.append(f"{_num(value)} < baseline {_num(bv)} - {_num(g.tolerance)}")
                elif g.comparison == "lte" and value > bv + g.tolerance:
                    reasons.append(f"{_num(value)} > baseline {_num(bv)} + {_num(g.tolerance)}")
            if g.name in cand.notes:
                notes.append(cand.notes[g.name])
    if not g.required:
        notes.insert(0, "not required (informational)")
    entry["passed"] = not reasons
    entry["note"] = "; ".join(reasons + notes)
    return {
        k: entry[k]
        for k in (
            "name",
            "passed",
            "value",
            "bound",
            "bound_kind",
            "comparison",
            "baseline_value",
            "tolerance",
            "note",
        )
    }


def _recall_gap(
    y: np.ndarray, predicted: np.ndarray, holdout: pd.DataFrame, segment: str | None, min_positives: int
) -> tuple[float | None, str, list[dict[str, Any]]]:
    if segment is None:
        return None, "no segment column (data.segment): nothing to compare", []
    if segment not in holdout.columns:
        return None, f"the holdout has no segment column {segment!r}: nothing to compare", []
    groups = (
        holdout[segment].astype(object).where(holdout[segment].notna(), "<missing>").astype(str).to_numpy()
    )
    table = []
    for name in sorted(set(groups)):
        in_group = groups == name
        positives = int(y[in_group].sum())
        recall = float(predicted[in_group & (y == 1)].mean()) if positives else None
        table.append(
            {
                "segment": name,
                "rows": int(in_group.sum()),
                "positives": positives,
                "recall": recall,
                "counted": positives >= min_positives,
            }
        )
    counted = [t for t in table if t["counted"]]
    if len(counted) < 2:
        shown = ", ".join(f"{t['segment']}: {t['positives']}" for t in table)
        return (
            None,
            (
                f"fewer than 2 segments of {segment!r} with >= {min_positives} positives "
                f"({shown}): nothing to compare"
            ),
            table,
        )
    recalls = [t["recall"] for t in counted]
    worst = min(counted, key=lambda t: t["recall"])
    best = max(counted, key=lambda t: t["recall"])
    note = (
        f"{segment}: recall {best['segment']} {best['recall']:.3f} (highest), "
        f"{worst['segment']} {worst['recall']:.3f} (lowest) over {len(counted)} segments"
    )
    return float(max(recalls) - min(recalls)), note, table


def _latency_p95_ms(pipeline: Any, X: pd.DataFrame, calls: int) -> float:
    rows = [X.iloc[[i % len(X)]] for i in range(calls)]
    for row in rows[:10]:  # warm caches and lazy imports so the first calls do not count
        pipeline.predict_proba(row)
    elapsed = np.empty(calls)
    for i, row in enumerate(rows):
        start = time.perf_counter()
        pipeline.predict_proba(row)
        elapsed[i] = time.perf_counter() - start
    return float(np.percentile(elapsed, 95) * 1000)


def _peak_memory_mb(pipeline: Any, X: pd.DataFrame, rows: int, seed: int) -> float:
    batch = X.sample(n=rows, replace=rows > len(X), random_state=seed)
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pipeline.predict_proba(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return (peak - before) / MIB


def _importance_rows(y: np.ndarray, seed: int) -> np.ndarray:
    """The holdout rows both importances are measured on: every positive (up to half), then negatives."""
    if len(y) <= _IMPORTANCE_ROWS:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = min(len(positives), _IMPORTANCE_ROWS // 2)
    n_neg = min(len(negatives), _IMPORTANCE_ROWS - n_pos)
    return np.sort(
        np.concatenate(
            [rng.choice(positives, n_pos, replace=False), rng.choice(negatives, n_neg, replace=False)]
        )
    )


def _importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int) -> dict[str, float]:
    """Permutation importances per raw feature: the mean increase in log loss when that column is shuffled."""
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        pipeline, X, y, scoring="neg_log_loss", n_repeats=_IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    return {name: float(v) for name, v in zip(X.columns, result.importances_mean, strict=True)}


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


def _edge_cases(pipeline: Any, features: tuple[Any, ...], X: pd.DataFrame) -> list[dict[str, Any]]:
    """Score awkward batches: each must give finite scores in [0, 1] or a clear ValueError/TypeError."""
    # Object columns take any value without pandas upcasting, like a batch built from JSON requests.
    base = X.iloc[[0]].astype(object).reset_index(drop=True)

    def variants(changes: list[tuple[str, Any]]) -> pd.DataFrame:
        rows = []
        for name, value in changes:
            row = base.copy()
            row.at[0, name] = value
            rows.append(row)
        return pd.concat(rows, ignore_index=True) if rows else base.iloc[:0]

    numeric = [f for f in features if f.type != "categorical"]
    categorical = [f for f in features if f.type == "categorical"]
    bounds = [(f.name, b) for f in numeric for b in (f.min, f.max) if b is not None]
    missing = base.copy()
    for f in features:
        missing.at[0, f.name] = None
    cases = {
        "empty_batch": base.iloc[:0],
        "contract_bounds": variants(bounds),
        "huge_values": variants([(f.name, v) for f in numeric for v in (HUGE, -HUGE)]),
        "missing_each_feature": pd.concat(
            [variants([(f.name, None) for f in features]), missing], ignore_index=True
        ),
        "unseen_categories": variants([(f.name, UNSEEN) for f in categorical]),
    }
    results = []
    for name, batch in cases.items():
        if name != "empty_batch" and batch.empty:
            continue
        results.append({"name": name, "rows": len(batch), **_try_scoring(pipeline, batch)})
    return results


def _try_scoring(pipeline: Any, batch: pd.DataFrame) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # overflow warnings on 1e12 are expected; the scores are checked below
            scores = np.asarray(pipeline.predict_proba(batch))[:, 1]
    except (ValueError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        ok = bool(message)
        return {
            "outcome": "error",
            "passed": ok,
            "detail": f"error {type(err).__name__}: {message[:160]}"
            if ok
            else f"error {type(err).__name__} with no message",
        }
    except Exception as err:  # noqa: BLE001 - anything else is a crash, not a clear refusal: recorded
        return {
            "outcome": "crash",
            "passed": False,
            "detail": f"unclear error {type(err).__name__}: {err}"[:200],
        }
    if len(scores) != len(batch):
        return {"outcome": "scores", "passed": False, "detail": f"{len(scores)} scores for {len(batch)} rows"}
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        return {
            "outcome": "scores",
            "passed": False,
            "detail": f"{int(bad.sum())} of {len(scores)} scores outside [0, 1], e.g. {scores[bad][0]!r}",
        }
    if not len(scores):
        return {"outcome": "scores", "passed": True, "detail": "no rows, no scores"}
    return {
        "outcome": "scores",
        "passed": True,
        "detail": f"{len(scores)} scores in [{scores.min():.3g}, {scores.max():.3g}]",
    }


def _num(x: float) -> str:
    return f"{x:.4g}"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _baseline(args: argparse.Namespace, model: str, workdir: Path) -> Bundle | None:
    """--baseline-bundle, else --baseline-version from the registry, else its production version."""
    if args.baseline_bundle:
        return load_bundle(args.baseline_bundle)
    from steps._storage import (
        registry as _registry,  # only here: a gate with a local baseline never touches the registry
    )

    registry = _registry.Registry.open(args.registry or None)  # None: $MLOPS_REGISTRY, else .mlops/registry
    ref: int | str | None = (args.baseline_version or "").strip() or None
    if ref is None:
        ref = registry.production(model)
        if ref is None:
            return None
    elif str(ref).isdigit():
        ref = int(ref)
    try:
        fetched = registry.fetch(model, ref, workdir / "baseline")
    except BundleError as err:
        raise UsageError(f"baseline {model}@{ref}: refused: {err}") from err
    return load_bundle(fetched)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.gate", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, type=Path, help="the candidate's model bundle folder")
    p.add_argument("--holdout", required=True, type=Path, help="the holdout written by train (Parquet)")
    p.add_argument("--policy", required=True, type=Path, help="the model's policy file (gates/<model>.yaml)")
    p.add_argument("--report-dir", required=True, type=Path, help="folder for gate.json and gate.html")
    p.add_argument("--passed-out", required=True, type=Path, help="file to write true or false to")
    p.add_argument(
        "--registry", default="", help="registry location (default $MLOPS_REGISTRY or .mlops/registry)"
    )
    p.add_argument(
        "--baseline-version", default="", help="baseline version (default: the production version)"
    )
    p.add_argument(
        "--baseline-bundle", type=Path, help="a local baseline bundle folder instead of the registry"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        policy = load_policy(args.policy)
        candidate = load_bundle(args.bundle)
        holdout, y = read_holdout(args.holdout, policy)
        with tempfile.TemporaryDirectory(prefix="gate-baseline-") as workdir:
            baseline = _baseline(args, policy.model_name, Path(workdir))
            result = gate(candidate, holdout, y, policy, baseline)
        result.write(args.report_dir, args.passed_out)
        for line in result.failure_lines():
            print(line, file=sys.stderr)
        against = f"against baseline {baseline.label}" if baseline is not None else "with no baseline yet"
        verdict = "passed" if result.passed else f"REJECTED ({', '.join(result.report['failed'])})"
        print(
            f"gate: {policy.model_name} {verdict}: {len(result.report['gates'])} gates on "
            f"{result.report['holdout_rows']} holdout rows {against}; report in {args.report_dir}"
        )
        return 0

    return run("gate", body)


if __name__ == "__main__":
    sys.exit(main())
