"""Gate step: evaluate a candidate bundle (and the baseline, on the same holdout) against the policy.

    python -m steps.gate --bundle DIR --holdout FILE --policy FILE --report-dir DIR --passed-out FILE
                         [--failed-out FILE] [--registry LOC] [--baseline-version V] [--baseline-bundle DIR]

Writes gate.json and its page, index.html (the verdict, every gate, the pictures as inline SVG: it renders in
Argo's artifact viewer, which opens a folder artifact at its index.html), to --report-dir and `true`/`false` to
--passed-out. Exits 0 on either verdict: a rejected candidate is a result, not a failure of the step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steps._core import threads as _threads
from steps._core.categories import key as category_key
from steps._core.documents import BaselineRecord, GateReport
from steps._core.errors import UsageError, run
from steps._core.files import write_json, write_text
from steps._core.policy import Policy, load_policy
from steps._model import task as _task
from steps._model.bundle import Bundle, BundleError
from steps._model.skops import ModelError
from steps._quality import noise
from steps._quality import report as _report
from steps._quality.judge import NO_BASELINE, SKIPPED, judge
from steps._quality.measures import CHEAP, Measured, importance_stability, measure
from steps._quality.noise import Interval
from steps._quality.report import Evidence
from steps._storage.registry import Registry, VersionNotFound, parse_version


@dataclass
class GateResult:
    report: GateReport  # gate.json
    evidence: Evidence

    @property
    def passed(self) -> bool:
        return self.report["passed"]

    def failure_lines(self) -> list[str]:
        failed = set(self.report["failed"])
        return [f"gate: FAILED {g['name']} {g['note']}" for g in self.report["gates"] if g["name"] in failed]

    def gate_lines(self, baseline: str | None) -> list[str]:
        """One line a gate: its status, the candidate's value, the bound and, where measured, the baseline's."""
        lines = []
        for g in self.report["gates"]:
            status = g.get("status", "pass" if g["passed"] else "fail")
            bound = f" ({g['bound_kind']} {_number(g['bound'])})" if g["bound"] is not None else ""
            compared = (f"; baseline {baseline} {_number(g['baseline_value'])}"
                        if baseline and g["baseline_value"] is not None else "")
            why = f": {g['note']}" if status != "pass" and g["note"] else ""
            lines.append(f"gate:   {status.upper() if status == 'fail' else status:<7} {g['name']} "
                         f"{_number(g['value'])}{bound}{compared}{why}")
        return lines

    def verdict(self) -> str:
        skipped = self.report.get("skipped") or []
        blocking = [n for n in skipped if n in self.report["failed"]]
        verdict = "passed" if self.passed else f"REJECTED ({', '.join(self.report['failed'])})"
        if skipped:
            verdict += (f"; {len(skipped)} gate(s) skipped, not evaluated ({', '.join(skipped)})"
                        + ("" if blocking == skipped else "; a skipped gate does not block unless its policy says "
                           "if_skipped: block"))
        return verdict

    def write(self, report_dir: Path, passed_out: Path, failed_out: Path | None = None) -> None:
        report_dir = Path(report_dir)
        write_json(report_dir / "gate.json", self.report)
        write_text(report_dir / _report.PAGE, _report.render(self.report, self.evidence))
        write_text(Path(passed_out), "true" if self.passed else "false")
        if failed_out is not None:  # the training Workflow's `failed-gates` output (the Argo UI's outputs panel)
            write_text(Path(failed_out), ", ".join(self.report["failed"]) or "none")


def load_bundle(path: Path) -> Bundle:
    """Verify every file's sha256, then load the model with our trusted types only (now: a model that does not
    load is refused before any measurement)."""
    try:
        bundle = Bundle.open(path)
        bundle.pipeline  # noqa: B018 - loaded for its errors
    except (BundleError, ModelError) as err:
        raise UsageError(f"bundle {path}: refused: {err}") from err
    return bundle


def read_holdout(path: Path, policy: Policy, candidate: Bundle) -> tuple[pd.DataFrame, np.ndarray]:
    """train's holdout (Parquet) and its target as the candidate's contract encodes it (steps._model.task): a
    classifier's holdout must hold rows of two classes or more, a regressor's two rows or more."""
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as err:
        raise UsageError(f"--holdout {path}: no such file") from err
    except Exception as err:  # pyarrow raises several unrelated types for a corrupt file
        raise UsageError(f"--holdout {path}: not a readable Parquet file: {err}") from err
    _check_task(candidate, policy)
    target = policy.data.target
    if target not in frame.columns:
        raise UsageError(f"--holdout {path}: target column {target!r} (data.target) is missing")
    y = _task.encode_target(frame[target], candidate.manifest["contract"], where=f"--holdout {path}")
    if candidate.task == "binary" and (y.sum() == 0 or y.sum() == len(y)):
        raise UsageError(
            f"--holdout {path}: needs rows of both classes to evaluate; {int(y.sum())} of {len(y)} "
            f"rows equal data.positive_label={policy.data.positive_label!r}"
        )
    if candidate.task == "multiclass" and len(np.unique(y)) < 2:
        raise UsageError(f"--holdout {path}: needs rows of two classes or more to evaluate; all {len(y)} rows are "
                         f"{frame[target].iloc[0]!r}" if len(y) else f"--holdout {path}: has no rows to evaluate")
    if candidate.task == "regression" and len(y) < 2:
        raise UsageError(f"--holdout {path}: needs two rows or more to evaluate, has {len(y)}")
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
                f"bundle {b.path}: is a model of {b.model!r}, but the policy is for {policy.model_name!r}"
            )
    # Imported here: importing scikit-learn loads OpenMP, which must come after main()'s wait_passively.
    from steps._model import features as _features

    _check_task(candidate, policy)
    gates = {g.name: g for g in policy.quality}
    X = _features.model_input(holdout, candidate.features, where="--holdout")
    task = candidate.task

    with _threads.limit(_threads.count(policy.model.threads)):  # scoring the holdout: the same values on any count
        cand = measure(candidate, X, y, holdout, policy, gates, set(gates) | CHEAP)
        evidence = Evidence(
            y=y,
            candidate_scores=cand.scores,
            threshold=candidate.threshold,
            segments=cand.segments,
            edge_cases=cand.edge_cases,
            task=task,
            classes=candidate.classes,
            segment_f1=cand.segment_f1,
        )
        base: Measured | None = None
        aligned: np.ndarray | None = None  # the baseline's predictions in the candidate's class order
        base_reference: object = None
        baseline_note, incomparable = NO_BASELINE, False
        if baseline is not None:
            missing = [f.name for f in baseline.features if f.name not in holdout.columns]
            unlike = _unlike(candidate, baseline)
            if unlike:
                baseline_note, incomparable = f"baseline {baseline.label} not comparable: {unlike}", True
            elif missing:
                baseline_note = f"baseline {baseline.label} not comparable: the holdout lacks its features {missing}"
            else:
                X_base = _features.model_input(holdout, baseline.features)
                y_base = _task.encode_target(holdout[policy.data.target], baseline.manifest["contract"],
                                             where="--holdout")
                # Expensive measurements only where a gate compares them; edge cases are the candidate's.
                compared = {name for name, g in gates.items() if g.comparison} - {"edge_cases"}
                base = measure(baseline, X_base, y_base, holdout, policy, gates, compared | CHEAP)
                aligned, base_reference = _aligned(candidate, baseline, base)
                evidence.baseline_scores = aligned
                evidence.baseline_label = baseline.label
                if "feature_importance_stability" in gates:
                    cand.metrics["feature_importance_stability"], evidence.importances = importance_stability(
                        candidate.pipeline, baseline.pipeline, X, X_base, y, policy.model.seed, task, y_base
                    )
    for name in gates:  # every gate has a candidate value, None where it could not be measured
        cand.metrics.setdefault(name, None)

    intervals: dict[str, Interval | None] = {}
    if base is not None and aligned is not None:
        for g in policy.quality:
            # Only where both values were measured (a bundle without the naive baseline has no ratio to resample).
            if g.comparison and cand.metrics.get(g.name) is not None and base.metrics.get(g.name) is not None:
                intervals[g.name] = noise.paired_difference(g.name, y, cand.scores, cand.reference, aligned,
                                                            base_reference, policy.model.seed, task, g.settings)
    entries = [judge(g, cand, base, baseline_note, intervals.get(g.name), incomparable) for g in policy.quality]
    failed = [e["name"] for e in entries if not e["passed"] and gates[e["name"]].required]
    skipped = [e["name"] for e in entries if e.get("status") == SKIPPED]
    report = GateReport(
        model=policy.model_name,
        passed=not failed,
        holdout_rows=len(y),
        candidate=cand.metrics,
        baseline=None
        if base is None or baseline is None
        else BaselineRecord(version=baseline.version, metrics=base.metrics),
        gates=entries,
        failed=failed,
        skipped=skipped,
    )
    return GateResult(report, evidence)


def _check_task(candidate: Bundle, policy: Policy) -> None:
    if candidate.task != policy.model.task:
        raise UsageError(f"bundle {candidate.path}: is a {candidate.task} model, but the policy's model.task is "
                         f"{policy.model.task!r}")


def _unlike(candidate: Bundle, baseline: Bundle) -> str:
    """Why the baseline's metrics cannot be compared with the candidate's ("" when they can): another task, or
    other classes (a binary model's positive class, a multiclass model's set of classes)."""
    if baseline.task != candidate.task:
        return f"it is a {baseline.task} model, the candidate a {candidate.task} model"
    if candidate.task == "binary":
        positive = [category_key(b.manifest["contract"].get("positive_label", 1)) for b in (candidate, baseline)]
        if positive[0] != positive[1]:
            return f"its positive class is {positive[1]!r}, the candidate's {positive[0]!r}"
    if candidate.task == "multiclass":
        classes = [sorted(str(category_key(c)) for c in b.classes or []) for b in (candidate, baseline)]
        if classes[0] != classes[1]:
            return f"its classes are {baseline.classes}, the candidate's {candidate.classes}"
    return ""


def _aligned(candidate: Bundle, baseline: Bundle, base: Measured) -> tuple[np.ndarray, object]:
    """The baseline's predictions and reference in the candidate's class order (a multiclass baseline may list
    the same classes in another order); other tasks as they are."""
    if candidate.task != "multiclass":
        return base.scores, base.reference
    order = [str(category_key(c)) for c in baseline.classes or []]
    columns = [order.index(str(category_key(c))) for c in candidate.classes or []]
    shares = None if base.reference is None else [base.reference[i] for i in columns]
    return base.scores[:, columns], shares


def _baseline(args: argparse.Namespace, model: str, workdir: Path) -> Bundle | None:
    """--baseline-bundle, else --baseline-version from the registry, else its production version."""
    if args.baseline_bundle:
        return load_bundle(args.baseline_bundle)
    text = (args.baseline_version or "").strip()
    try:
        ref = parse_version(text) if text else None
    except VersionNotFound as err:
        raise UsageError(f"--baseline-version: {err}") from err
    registry = Registry.open(args.registry or None)  # None: $MLOPS_REGISTRY, else .mlops/registry
    if ref is None:
        ref = registry.production(model)
        if ref is None:
            return None
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
    p.add_argument("--report-dir", required=True, type=Path, help="folder for gate.json and its page, index.html")
    p.add_argument("--passed-out", required=True, type=Path, help="file to write true or false to")
    p.add_argument("--failed-out", type=Path, default=None,
                   help="file to write the failed gates to, comma-separated, policy order (none when it passed)")
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
    _threads.wait_passively()  # before scikit-learn loads OpenMP: then scoring may use the pod's CPUs

    def body() -> int:
        policy = load_policy(args.policy)
        candidate = load_bundle(args.bundle)
        holdout, y = read_holdout(args.holdout, policy, candidate)
        with tempfile.TemporaryDirectory(prefix="gate-baseline-") as workdir:
            baseline = _baseline(args, policy.model_name, Path(workdir))
            result = gate(candidate, holdout, y, policy, baseline)
        result.write(args.report_dir, args.passed_out, args.failed_out)
        for line in result.failure_lines():
            print(line, file=sys.stderr)
        for line in result.gate_lines(baseline.label if baseline is not None else None):
            print(line)
        against = f"against baseline {baseline.label}" if baseline is not None else "with no baseline yet"
        print(
            f"gate: {policy.model_name} {result.verdict()}: {len(result.report['gates'])} gates on "
            f"{result.report['holdout_rows']} holdout rows {against}; report in {args.report_dir}"
        )
        return 0

    return run("gate", body)


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
