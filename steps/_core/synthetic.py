"""The synthetic datasets of the reference models, and the `generate:` URIs that name them: card transactions for
the fraud detector (binary, here), store demand (regression, synthetic_demand.py), support tickets (multiclass,
synthetic_tickets.py).

`generate:fraud-detection?rows=200000&seed=42&drift=0.3` is a dataset like any other: validate reads it, the policy's
`data.source` may be one (so `mlops run training` works with no data and no cluster), drift checks compare with it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from steps._core import synthetic_demand, synthetic_tickets
from steps._core.errors import UsageError

SCHEME = "generate:"
GENERATORS = ("fraud-detection", "demand-forecast", "ticket-triage")
# The generator of each task's reference model (`mlops data generate --task`, `mlops demo --task`).
TASK_GENERATORS = {"binary": "fraud-detection", "regression": "demand-forecast", "multiclass": "ticket-triage"}
_PARAMETERS = {"rows": int, "seed": int, "drift": float}
_KINDS = {int: "a whole number", float: "a number"}


def from_uri(uri: str) -> pd.DataFrame:
    """The frame a `generate:` URI names. Raises UsageError naming the URI, the part and the rule."""
    parts = urlsplit(uri)
    name = parts.path
    if name not in GENERATORS:
        raise UsageError(f"dataset {uri}: no generator {name!r} (known: {', '.join(GENERATORS)}); e.g. "
                         "generate:fraud-detection?rows=20000&seed=1")
    values: dict[str, float] = {}
    for key, found in parse_qs(parts.query, keep_blank_values=True, strict_parsing=False).items():
        if key not in _PARAMETERS:
            raise UsageError(f"dataset {uri}: unknown parameter {key!r} (known: {', '.join(_PARAMETERS)})")
        try:
            values[key] = _PARAMETERS[key](found[-1])
        except ValueError as err:
            raise UsageError(f"dataset {uri}: {key}={found[-1]!r} is not {_KINDS[_PARAMETERS[key]]}") from err
    if "rows" not in values:
        raise UsageError(f"dataset {uri}: rows= is required, e.g. {SCHEME}{name}?rows=20000&seed=1")
    return generate_named(name, int(values["rows"]), seed=int(values.get("seed", 0)),
                          drift=float(values.get("drift", 0.0)))


def generate_named(name: str, rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """The dataset of the generator `name` (one of GENERATORS), checked as `generate` checks its arguments."""
    _check(rows, drift)
    if name == "demand-forecast":
        return synthetic_demand.generate(rows, seed=seed, drift=drift)
    if name == "ticket-triage":
        return synthetic_tickets.generate(rows, seed=seed, drift=drift)
    if name == "fraud-detection":
        return generate(rows, seed=seed, drift=drift)
    raise UsageError(f"generator {name!r}: unknown (known: {', '.join(GENERATORS)})")


def drifted_features(name: str) -> tuple[str, ...]:
    """The features the generator `name` moves with `drift`."""
    found = {"fraud-detection": DRIFTED_FEATURES, "demand-forecast": synthetic_demand.DRIFTED_FEATURES,
             "ticket-triage": synthetic_tickets.DRIFTED_FEATURES}.get(name)
    if found is None:
        raise UsageError(f"generator {name!r}: unknown (known: {', '.join(GENERATORS)})")
    return found


def _check(rows: int, drift: float) -> None:
    if rows < 1:
        raise UsageError(f"--rows: must be at least 1 (got {rows})")
    if not 0.0 <= drift <= 1.0:
        raise UsageError(f"--drift: must be between 0 and 1 (got {drift})")


MERCHANTS = ["grocery", "fuel", "restaurant", "travel", "electronics", "fashion", "gaming", "digital_goods",
             "pharmacy", "utilities"]
_MERCHANT_P = [0.26, 0.14, 0.17, 0.05, 0.06, 0.09, 0.04, 0.05, 0.08, 0.06]
REGIONS = ["north", "south", "east", "west"]


def generate(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """A synthetic card-transaction dataset matching gates/fraud-detection.yaml: 23 features, ~2.5% fraud.

    Fraudulent rows draw several features from shifted distributions, so a good model learns real signal.
    `drift` in [0, 1] shifts means, scales and category mixes of 12 of the 23 features (more than a third;
    `amount` and `txn_count_24h` move with the features they are computed from);
    the label's dependence on the features stays the same, as with real covariate drift.
    """
    _check(rows, drift)
    rng = np.random.default_rng(seed)
    d = drift
    n = rows

    # The label comes first; fraudulent rows draw several features from shifted distributions, except a
    # camouflaged share that looks like everyone else, so the signal is learnable but not trivial.
    is_fraud = (rng.random(n) < 0.025).astype(np.int64)
    f = (is_fraud == 1) & (rng.random(n) < 0.95)

    def cat(values: list[str], p: list[float], shift_to: list[float] | None = None,
            fraud_p: list[float] | None = None) -> np.ndarray:
        def draw(probs_list: list[float], size: int) -> np.ndarray:
            probs = np.asarray(probs_list, dtype=float)
            if shift_to is not None and d:
                probs = (1 - d) * probs + d * np.asarray(shift_to, dtype=float)
            return rng.choice(np.asarray(values, dtype=object), size=size, p=probs / probs.sum())

        out = draw(p, n)
        if fraud_p is not None:
            out[f] = draw(fraud_p, int(f.sum()))
        return out

    def num(legit: np.ndarray, fraud: np.ndarray) -> np.ndarray:
        return np.where(f, fraud, legit)

    region = cat(REGIONS, [0.3, 0.25, 0.25, 0.2])
    merchant = cat(MERCHANTS, _MERCHANT_P, [0.05, 0.05, 0.05, 0.2, 0.15, 0.1, 0.15, 0.15, 0.05, 0.05],
                   fraud_p=[0.05, 0.05, 0.05, 0.15, 0.25, 0.05, 0.15, 0.2, 0.02, 0.03])
    channel = cat(["pos", "online", "atm", "contactless"], [0.45, 0.3, 0.05, 0.2], [0.15, 0.65, 0.05, 0.15],
                  fraud_p=[0.2, 0.6, 0.1, 0.1])
    card_type = cat(["debit", "credit", "prepaid"], [0.55, 0.4, 0.05], fraud_p=[0.4, 0.4, 0.2])
    entry_mode = cat(["chip", "swipe", "manual", "token"], [0.55, 0.15, 0.1, 0.2], [0.3, 0.1, 0.35, 0.25],
                     fraud_p=[0.2, 0.25, 0.45, 0.1])
    device_type = cat(["mobile", "desktop", "terminal", "unknown"], [0.35, 0.15, 0.45, 0.05],
                      fraud_p=[0.35, 0.3, 0.15, 0.2])
    international = cat(["no", "yes"], [0.93, 0.07], fraud_p=[0.7, 0.3])

    account_age = np.clip(num(rng.gamma(2.0, 600.0 * (1 - 0.5 * d), n), rng.gamma(1.2, 200.0, n)), 0, 20000)
    account_age = account_age.astype(np.int64)
    customer_age = np.clip(rng.normal(44 - 8 * d, 14, n), 18, 110).astype(np.int64)
    avg_amount_7d = np.clip(rng.lognormal(3.8, 0.7, n), 0, 100000)
    ratio = np.clip(num(rng.lognormal(0.0 + 0.6 * d, 0.6 * (1 + d), n), rng.lognormal(1.2, 0.8, n)), 0, 1000)
    amount = np.clip(avg_amount_7d * ratio, 0, 100000)
    hour = np.round(num(rng.normal(14 + 4 * d, 5, n), rng.normal(2, 3, n))) % 24
    hour = np.clip(hour, 0, 23).astype(np.int64)
    day_of_week = rng.integers(0, 7, n)
    distance_home = np.clip(num(rng.lognormal(2.0 + 1.0 * d, 1.2, n), rng.lognormal(4.0, 1.4, n)), 0, 20000)
    distance_last = np.clip(num(rng.lognormal(1.5, 1.3, n), rng.lognormal(3.0, 1.5, n)), 0, 20000)
    txn_1h = num(rng.poisson(0.6 + 2.0 * d, n), rng.poisson(2.5, n))
    txn_24h = txn_1h + rng.poisson(4.0, n)
    days_since = np.clip(rng.exponential(2.0, n), 0, 3650)
    credit_limit = np.round(np.clip(rng.lognormal(8.3, 0.6, n), 0, 1000000), 0)
    utilization = np.clip(num(rng.beta(2.0 + 2.0 * d, 5.0, n), rng.beta(4.0, 3.0, n)), 0, 2)
    failed_logins = num(rng.poisson(0.1, n), rng.poisson(0.9, n))
    device_age = np.clip(num(rng.gamma(2.0, 150.0, n), rng.gamma(1.0, 30.0, n)), 0, 5000).astype(np.int64)

    # Real data has holes: a few distances and device ages are unknown.
    distance_home = np.where(rng.random(n) < 0.02, np.nan, distance_home)
    distance_last = np.where(rng.random(n) < 0.02, np.nan, distance_last)
    device_age_f = np.where(rng.random(n) < 0.03, np.nan, device_age.astype(float))

    return pd.DataFrame(
        {
            "amount": np.round(amount, 2),
            "hour": hour,
            "day_of_week": day_of_week,
            "account_age_days": account_age,
            "customer_age": customer_age,
            "distance_from_home_km": np.round(distance_home, 3),
            "distance_from_last_txn_km": np.round(distance_last, 3),
            "amount_to_median_ratio": np.round(ratio, 4),
            "txn_count_1h": txn_1h,
            "txn_count_24h": txn_24h,
            "avg_amount_7d": np.round(avg_amount_7d, 2),
            "days_since_last_txn": np.round(days_since, 3),
            "credit_limit": credit_limit,
            "utilization": np.round(utilization, 4),
            "failed_logins_24h": failed_logins,
            # A nullable integer column, as real data with holes has (pd.NA where unknown).
            "device_age_days": pd.Series(device_age_f).round().astype("Int64"),
            "merchant_category": merchant,
            "channel": channel,
            "card_type": card_type,
            "entry_mode": entry_mode,
            "device_type": device_type,
            "is_international": international,
            "region": region,
            "is_fraud": is_fraud,
        }
    )


# Features `generate(drift=...)` shifts; tests and benchmarks check that drift detection finds these.
DRIFTED_FEATURES = (
    "merchant_category", "channel", "entry_mode", "account_age_days", "customer_age", "amount_to_median_ratio",
    "hour", "distance_from_home_km", "txn_count_1h", "utilization", "amount", "txn_count_24h",
)
