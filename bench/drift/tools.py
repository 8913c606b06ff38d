"""One measurement in a fresh process: load both datasets, then time one tool from the data in memory to
per-feature drift decisions, and its peak memory.

    <venv>/bin/python bench/drift/tools.py --tool NAME --data DIR --out FILE

It runs under the project's venv (our tools) or a peer's own venv (evidently, alibi-detect), so it imports
only what the chosen tool needs. Loading is outside the timed region for every tool; so is a warm-up run
on the first rows (lazy imports, first-call set-up). Peak memory is the process's resident high-water mark
(VmHWM) during the timed region, reset just before it (/proc/self/clear_refs), so loading does not mask it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
WARMUP_ROWS = 2000

# (name of the test, threshold) per kind of feature, for each configuration of ours; the peers get the same.
# "-raw": the numeric reference comes from the reference DataFrame inside the timed region; otherwise from
# its Ecdfs built at training time with the profile (ecdfs.npz, their build time reported separately).
OURS = {
    "ours-psi": ("psi", 0.15),  # the policy's default: PSI 0.15 from the reference profile
    "ours-wasserstein-js": ("wasserstein", 0.1),  # Evidently's tests: normed Wasserstein 0.1, Jensen-Shannon 0.1
    "ours-wasserstein-js-raw": ("wasserstein", 0.1),
    "ours-ks-chi2": ("ks", 0.05),  # alibi-detect's tests: KS and chi-square at p < 0.05
    "ours-ks-chi2-raw": ("ks", 0.05),
    # As `python -m steps.drift --current` runs it: the reference Ecdfs as the bundle keeps them (reference_ecdf.npz,
    # thinned to MAX_ECDF_VALUES, read with the step's loader) and the per-bin distributions its report draws.
    "ours-wasserstein-js-step": ("wasserstein", 0.1),
}


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the resident high-water mark (Linux >= 4.0)
        return True
    except OSError:
        return False


# --- the tools: (reference, current, spec) -> {"decisions", "scores", "p_values", "phases", ...} -------------

Measure = Callable[[pd.DataFrame, pd.DataFrame, dict[str, Any]], dict[str, Any]]


def ours(name: str, threads: int | None, data: Path) -> Measure:
    sys.path.insert(0, str(REPO))
    from steps._core.policy import DriftPolicy
    from steps._drift.methods import RAW_METHODS  # the project's code, on its own venv only
    from steps._drift.rule import check

    method, threshold = OURS[name]
    profile = json.loads((data / "profile.json").read_text())  # built at training time
    policy = DriftPolicy(method=method, threshold=threshold, drift_share=0.3, min_samples=10000)
    raw = method in RAW_METHODS
    step = name.endswith("-step")
    ecdfs: dict[str, Any] | None
    if step:
        from steps._drift.ecdf import load_ecdfs as load_bundle_ecdfs

        ecdfs = load_bundle_ecdfs((data / "reference_ecdf.npz").read_bytes())
    else:
        ecdfs = load_ecdfs(data / "ecdfs.npz") if raw and not name.endswith("-raw") else None

    def run(reference: pd.DataFrame, current: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
        # The warm-up gets the head of the frames, so it takes the reference from them too.
        given = ecdfs if ecdfs is not None and len(reference) > WARMUP_ROWS else reference
        result = check(profile, policy, current=current, reference=given if raw else None,
                       distributions=step or not raw, threads=threads or 1)
        return {
            "decisions": {f.name: f.drifted for f in result.features},
            "scores": {f.name: f.score for f in result.features},
            "p_values": {f.name: f.p_value for f in result.features if f.p_value is not None},
            "methods": {f.name: f.method for f in result.features},
            "retrain": result.retrain,
        }

    return run


def save_ecdfs(ecdfs: dict[str, Any], path: Path) -> None:
    arrays = {}
    for name, e in ecdfs.items():
        arrays[f"{name}/values"], arrays[f"{name}/at_or_below"] = e.values, e.at_or_below
        arrays[f"{name}/std"] = np.array(e.std)
    np.savez(path, **arrays)


def load_ecdfs(path: Path) -> dict[str, Any]:
    from steps._drift.ecdf import Ecdf

    with np.load(path) as z:
        names = sorted({key.rsplit("/", 1)[0] for key in z.files})
        out = {name: Ecdf(z[f"{name}/values"], z[f"{name}/at_or_below"]) for name in names}
        for name, e in out.items():
            e.__dict__["std"] = float(z[f"{name}/std"])  # computed at training time with the rest
    return out


def evidently(reference: pd.DataFrame, current: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=spec["numerical"], categorical_columns=spec["categorical"])
    report = Report([DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon",
                                     num_threshold=0.1, cat_threshold=0.1)])
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))
    scores, count = {}, None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
        elif config["type"].endswith(":DriftedColumnsCount"):
            count = metric["value"]["count"]
    # Evidently's rule for distance tests (wasserstein, jensenshannon): drift when the score >= threshold.
    decisions = {name: score >= 0.1 for name, score in scores.items()}
    return {"decisions": decisions, "scores": scores, "evidently_drifted_count": count}


def alibi(reference: pd.DataFrame, current: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    from alibi_detect.cd import TabularDrift

    columns = spec["features"]
    categorical = {i: name for i, name in enumerate(columns) if name in spec["categorical"]}
    phases = {}
    start = time.perf_counter()
    x_ref, x_cur = _encode(reference, columns, spec), _encode(current, columns, spec)
    phases["encode"] = time.perf_counter() - start
    start = time.perf_counter()
    detector = TabularDrift(x_ref, p_val=0.05,
                            categories_per_feature={i: len(spec["categories"][n]) for i, n in categorical.items()})
    phases["init"] = time.perf_counter() - start
    start = time.perf_counter()
    data = detector.predict(x_cur, drift_type="feature")["data"]
    phases["predict"] = time.perf_counter() - start
    p_values = {name: float(p) for name, p in zip(columns, data["p_val"], strict=True)}
    return {
        # The per-feature decision: an uncorrected p < 0.05 (NaN, for a column with missing values, is no drift).
        "decisions": {name: bool(p < 0.05) for name, p in p_values.items()},
        "scores": {name: float(d) for name, d in zip(columns, data["distance"], strict=True)},
        "p_values": p_values,
        "phases": phases,
    }


def _encode(frame: pd.DataFrame, columns: list[str], spec: dict[str, Any]) -> np.ndarray:
    """alibi-detect takes one numeric matrix: categories as their index in the contract, missing as NaN."""
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for i, name in enumerate(columns):
        if name in spec["categorical"]:
            codes = pd.Index(spec["categories"][name]).get_indexer(frame[name].to_numpy(dtype=object))
            out[:, i] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, i] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _alibi_test_on_present_values(reference: pd.DataFrame, current: pd.DataFrame, result: dict[str, Any]) -> None:
    """Untimed: alibi-detect's own call (scipy ks_2samp, mode asymp) on the present values of the columns it
    could not test because of missing values, to show what the same test says there."""
    from scipy.stats import ks_2samp

    extra = {}
    for name, p in result["p_values"].items():
        if math.isnan(p):
            a = reference[name].to_numpy(dtype=np.float64, na_value=np.nan)
            b = current[name].to_numpy(dtype=np.float64, na_value=np.nan)
            test = ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)], method="asymp")
            extra[name] = {"statistic": float(test.statistic), "p_value": float(test.pvalue)}
    result["present_values_test"] = extra


def measure(tool: str, threads: int | None, data: Path) -> dict[str, Any]:
    spec = json.loads((data / "spec.json").read_text())
    if tool.startswith("ours-"):
        fn = ours(tool, threads, data)
    else:
        fn = {"evidently": evidently, "alibi-detect": alibi}[tool]
    reference = pd.read_parquet(data / "reference.parquet")
    current = pd.read_parquet(data / "current.parquet")
    fn(reference.head(WARMUP_ROWS), current.head(WARMUP_ROWS), spec)
    gc.collect()
    reset = _reset_peak()
    before = _status()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(reference, current, spec)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    after = _status()
    if tool == "alibi-detect":
        _alibi_test_on_present_values(reference, current, result)
    result.update({
        "tool": tool, "threads": threads, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "load_average_after": list(os.getloadavg()), "niceness": os.nice(0), "environment": _threads(),
        "rows": [len(reference), len(current)],
        "rss_before_mib": before["VmRSS"] / 1024, "peak_rss_mib": after["VmHWM"] / 1024,
        "peak_increase_mib": (after["VmHWM"] - before["VmRSS"]) / 1024, "peak_reset": reset,
        "versions": _versions(tool),
    })
    return result


def _threads() -> dict[str, Any]:
    """What sets the process's thread counts: the environment's limits and the CPUs it may run on."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {"cpus_allowed": len(os.sched_getaffinity(0)), **{n: os.environ.get(n) for n in names}}


def _versions(tool: str) -> dict[str, str]:
    from importlib import metadata

    names = ["numpy", "pandas", "scipy"] + {"evidently": ["evidently"], "alibi-detect": ["alibi-detect"]}.get(tool, [])
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = measure(args.tool, args.threads, Path(args.data))
    Path(args.out).write_text(json.dumps(_plain(result), allow_nan=False))
    return 0


def _plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars as Python ones, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tool", required=True, choices=[*OURS, "evidently", "alibi-detect"])
    p.add_argument("--threads", type=int, help="ours: features worked on at once (default 1)")
    p.add_argument("--data", required=True, help="folder with reference.parquet, current.parquet, spec.json")
    p.add_argument("--out", required=True, help="where the JSON result goes")
    return p


if __name__ == "__main__":
    sys.exit(main())
