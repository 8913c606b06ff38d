"""The synthetic store-demand dataset of the reference regression model (gates/demand-forecast.yaml): daily units
sold of a product in a store, from its price, promotion, season, weather and store.

The features are drawn first and `units_sold` follows from them, so `drift` moves the features (covariate drift:
prices up, a hot summer, more promotions and convenience stores) while the demand's dependence on them stays the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = ["grocery", "beverages", "frozen", "household", "personal_care", "bakery", "snacks"]
_CATEGORY_P = [0.25, 0.17, 0.1, 0.14, 0.12, 0.1, 0.12]
# Per category: log of the base daily demand, reference price, price elasticity, how much heat sells it.
_BASE = np.array([3.3, 3.0, 2.5, 2.2, 2.0, 3.1, 2.8])
_REF_PRICE = np.array([3.5, 2.2, 6.0, 8.0, 7.5, 2.8, 2.5])
_ELASTICITY = np.array([0.8, 1.6, 1.2, 1.0, 0.9, 0.6, 1.8])
_HEAT = np.array([0.0, 0.045, 0.05, 0.0, 0.0, -0.01, 0.01])
FORMATS = ["hypermarket", "supermarket", "convenience", "online"]
_FORMAT_P, _FORMAT_DRIFT = [0.2, 0.45, 0.25, 0.1], [0.1, 0.3, 0.4, 0.2]
_FORMAT_EFFECT = np.array([0.35, 0.0, -0.45, -0.2])
_FORMAT_SIZE = np.array([9000.0, 2500.0, 250.0, 4000.0])  # online: the size of the fulfilment area
PROMOS = ["none", "discount", "bundle", "display"]
_PROMO_P, _PROMO_DRIFT = [0.7, 0.12, 0.08, 0.1], [0.4, 0.35, 0.1, 0.15]
_PROMO_UPLIFT = np.array([0.0, 0.15, 0.3, 0.25])
REGIONS = ["north", "south", "east", "west"]
_REGION_P, _REGION_DRIFT = [0.3, 0.25, 0.25, 0.2], [0.1, 0.55, 0.15, 0.2]
_REGION_EFFECT = np.array([0.0, 0.1, -0.05, 0.05])


def generate(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """`rows` store-days of demand: 15 features and the target `units_sold` (whole units, 0 to a few thousand).

    `drift` in [0, 1] moves 11 of the 15 features (prices and the competitor's, temperature, month, promotions and
    their discounts, store formats and sizes, regions, footfall and, with them, last week's sales). Callers check
    `rows` and `drift` (steps/_core/synthetic.py)."""
    rng = np.random.default_rng(seed)
    n, d = rows, drift

    def pick(values: list[str], p: list[float], shifted: list[float] | None = None) -> np.ndarray:
        probs = np.asarray(p, dtype=float)
        if shifted is not None:
            probs = (1 - d) * probs + d * np.asarray(shifted, dtype=float)
        return rng.choice(len(values), size=n, p=probs / probs.sum())

    category = pick(CATEGORIES, _CATEGORY_P)
    store_format = pick(FORMATS, _FORMAT_P, _FORMAT_DRIFT)
    promo = pick(PROMOS, _PROMO_P, _PROMO_DRIFT)
    region = pick(REGIONS, _REGION_P, _REGION_DRIFT)
    # A drifted period is summer: months 6-8 and hot days.
    month = np.where(rng.random(n) < 0.7 * d, rng.integers(6, 9, n), rng.integers(1, 13, n))
    day_of_week = rng.integers(0, 7, n)
    holiday = rng.random(n) < 0.04
    season = np.cos((month - 7) / 12 * 2 * np.pi)  # 1 in July, -1 in January
    temperature = rng.normal(12 + 9 * season + 6 * d, 4, n)
    size = np.clip(_FORMAT_SIZE[store_format] * rng.lognormal(0 - 0.3 * d, 0.35, n), 50, 30000)
    footfall = np.clip(rng.lognormal(0 - 0.25 * d, 0.3, n), 0.05, 10)
    price = np.clip(_REF_PRICE[category] * (1 + 0.3 * d) * rng.lognormal(0, 0.2, n), 0.1, 500)
    discount = np.where(PROMOS.index("discount") == promo, rng.uniform(0.05, 0.4 + 0.1 * d, n), 0.0)
    competitor = np.clip(price * rng.lognormal(0.02, 0.12, n), 0.1, 500)
    days_since_launch = np.clip(rng.gamma(1.5, 400, n), 0, 10000)

    paid = price * (1 - discount)
    log_mean = (_BASE[category] + 0.35 * np.log(size / 2500) + _FORMAT_EFFECT[store_format]
                + _REGION_EFFECT[region] + 0.6 * np.log(footfall)
                - _ELASTICITY[category] * np.log(paid / _REF_PRICE[category])
                + 0.8 * np.log(competitor / price) + _HEAT[category] * (temperature - 12)
                + np.where(day_of_week >= 5, 0.25, 0.0) + np.where(holiday, 0.35, 0.0)
                + 0.15 * season * (category == CATEGORIES.index("beverages"))
                - 0.25 * np.exp(-days_since_launch / 60))
    usual = np.exp(log_mean - _PROMO_UPLIFT[promo] - np.where(holiday, 0.35, 0.0))
    units = rng.poisson(np.clip(np.exp(log_mean + _PROMO_UPLIFT[promo]) * rng.lognormal(-0.02, 0.2, n), 0, 5000))
    last_week = rng.poisson(np.clip(usual * rng.lognormal(-0.03, 0.25, n), 0, 5000))

    # Real data has holes: a broken thermometer feed, a competitor not scraped, a launch date nobody entered.
    temperature = np.where(rng.random(n) < 0.03, np.nan, temperature)
    competitor = np.where(rng.random(n) < 0.06, np.nan, competitor)
    launch = np.where(rng.random(n) < 0.02, np.nan, np.round(days_since_launch))

    def labels(values: list[str], codes: np.ndarray) -> np.ndarray:
        named: np.ndarray = np.asarray(values, dtype=object)[codes]
        return named

    return pd.DataFrame(
        {
            "price": np.round(price, 2),
            "discount_pct": np.round(discount, 3),
            "competitor_price": np.round(competitor, 2),
            "temperature_c": np.round(temperature, 1),
            "month": month.astype(np.int64),
            "day_of_week": day_of_week.astype(np.int64),
            "store_size_sqm": np.round(size, 0),
            "footfall_index": np.round(footfall, 3),
            "units_last_week": last_week.astype(np.int64),
            "days_since_launch": pd.Series(launch).astype("Int64"),
            "category": labels(CATEGORIES, category),
            "store_format": labels(FORMATS, store_format),
            "promo": labels(PROMOS, promo),
            "region": labels(REGIONS, region),
            "is_holiday": np.where(holiday, "yes", "no").astype(object),
            "units_sold": units.astype(np.int64),
        }
    )


# Features `generate(drift=...)` moves; the tests check that the drift check finds these and only these.
DRIFTED_FEATURES = (
    "price", "discount_pct", "competitor_price", "temperature_c", "month", "store_size_sqm", "footfall_index",
    "units_last_week", "store_format", "promo", "region",
)
