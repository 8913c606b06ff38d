"""The synthetic support-ticket dataset of the reference multiclass model (gates/ticket-triage.yaml): which team a
new ticket goes to (billing, technical, account, shipping or sales), from what is known when it arrives.

The features are drawn first and the team follows from them (a softmax over per-team scores), so `drift` moves the
features (a chat launch, a wave of new free-plan customers, a delivery incident) while the routing rule stays the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TEAMS = ["billing", "technical", "account", "shipping", "sales"]
CHANNELS = ["email", "chat", "phone", "web_form"]
_CHANNEL_P, _CHANNEL_DRIFT = [0.4, 0.2, 0.15, 0.25], [0.15, 0.6, 0.1, 0.15]
PLANS = ["free", "basic", "pro", "enterprise"]
_PLAN_P, _PLAN_DRIFT = [0.3, 0.35, 0.25, 0.1], [0.6, 0.25, 0.1, 0.05]
_PLAN_SPEND = np.array([0.0, 12.0, 49.0, 400.0])
AREAS = ["app", "website", "api", "checkout", "delivery", "other"]
_AREA_P = [0.3, 0.2, 0.1, 0.15, 0.15, 0.1]
REGIONS = ["amer", "emea", "apac"]
_REGION_P, _REGION_DRIFT = [0.45, 0.35, 0.2], [0.2, 0.25, 0.55]
OS = ["android", "ios", "windows", "macos", "linux"]
_OS_P = [0.3, 0.25, 0.3, 0.12, 0.03]


def generate(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """`rows` tickets: 20 features and the target `team` (billing, technical, account, shipping, sales: about
    35/28/16/15/7 %).

    `drift` in [0, 1] moves 9 of the 20 features (channel, plan, region, tenure, spend, message length, hour, open
    tickets and delivery mentions); the class shares move with them. Callers check `rows` and `drift`
    (steps/_core/synthetic.py)."""
    rng = np.random.default_rng(seed)
    n, d = rows, drift

    def pick(p: list[float], shifted: list[float] | None = None) -> np.ndarray:
        probs = np.asarray(p, dtype=float)
        if shifted is not None:
            probs = (1 - d) * probs + d * np.asarray(shifted, dtype=float)
        return rng.choice(len(probs), size=n, p=probs / probs.sum())

    def flag(p: float | np.ndarray) -> np.ndarray:
        return rng.random(n) < p

    channel, plan, region = pick(_CHANNEL_P, _CHANNEL_DRIFT), pick(_PLAN_P, _PLAN_DRIFT), pick(_REGION_P, _REGION_DRIFT)
    area, device = pick(_AREA_P), pick(_OS_P)
    tenure = np.clip(rng.gamma(1.3, 500 * (1 - 0.6 * d), n), 0, 5000)
    spend = np.clip(_PLAN_SPEND[plan] * rng.lognormal(0 + 0.2 * d, 0.3, n), 0, 50000)
    chat = channel == CHANNELS.index("chat")
    words = np.clip(rng.lognormal(np.where(chat, 3.0, 4.2) - 0.3 * d, 0.6, n), 1, 5000)
    attachments = rng.poisson(np.where(chat, 0.1, 0.6), n)
    hour = np.round(rng.normal(13 + 5 * d, 4, n)) % 24
    open_tickets = rng.poisson(0.4 + 1.2 * d, n)
    failed_payments = rng.poisson(np.where(plan == 0, 0.05, 0.25), n)
    login_failures = rng.poisson(0.6, n)
    orders = rng.random(n) < 0.85
    days_since_order = np.where(orders, rng.exponential(25, n), np.nan)
    invoice = flag(0.12 + 0.25 * (failed_payments > 0))
    error_code = flag(np.where(np.isin(area, [0, 2]), 0.35, 0.08))
    password = flag(0.1 + 0.2 * (login_failures > 1))
    delivery = flag(0.1 + 0.25 * d + 0.2 * (area == AREAS.index("delivery")))
    order_id = flag(np.where(orders & (days_since_order < 20), 0.45, 0.08))
    sentiment = np.clip(rng.normal(0.1 - 0.3 * (open_tickets > 1), 0.4, n), -1, 1)

    # Each team's score; the team is drawn from their softmax, so even the best model errs on some tickets.
    scores = np.zeros((n, len(TEAMS)))
    scores[:, 0] = 0.3 + 2.6 * invoice + 0.9 * failed_payments + 0.6 * (area == 3) + 0.4 * (plan >= 2)
    scores[:, 1] = -0.1 + 2.4 * error_code + 1.4 * (area == 2) + 0.5 * (area == 0) + 0.4 * np.log1p(attachments) \
        + 0.3 * (device >= 2)
    scores[:, 2] = -0.1 + 2.6 * password + 0.45 * np.minimum(login_failures, 5) + 0.5 * (tenure < 60)
    scores[:, 3] = -0.3 + 2.5 * delivery + 1.6 * order_id + 0.8 * (area == 4) - 0.02 * np.nan_to_num(
        days_since_order, nan=200.0).clip(0, 100)
    scores[:, 4] = -0.6 + 2.4 * (plan == 0) * (tenure < 120) + 1.2 * (channel == 2) + 0.6 * (area == 1) \
        + 0.5 * (words < 30)
    scores *= 2.5
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    team = (probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, len(TEAMS) - 1)

    # Real data has holes: sentiment the scorer could not read, a tenure lost in a migration.
    sentiment = np.where(rng.random(n) < 0.04, np.nan, sentiment)
    tenure_days = np.where(rng.random(n) < 0.02, np.nan, np.round(tenure))

    def labels(values: list[str], codes: np.ndarray) -> np.ndarray:
        named: np.ndarray = np.asarray(values, dtype=object)[codes]
        return named

    def yes_no(values: np.ndarray) -> np.ndarray:
        return np.where(values, "yes", "no").astype(object)

    return pd.DataFrame(
        {
            "customer_tenure_days": pd.Series(tenure_days).astype("Int64"),
            "monthly_spend": np.round(spend, 2),
            "message_words": np.round(words).astype(np.int64),
            "attachments": attachments.astype(np.int64),
            "hour": hour.astype(np.int64),
            "open_tickets": open_tickets.astype(np.int64),
            "failed_payments_30d": failed_payments.astype(np.int64),
            "login_failures_7d": login_failures.astype(np.int64),
            "days_since_last_order": np.round(days_since_order, 1),
            "sentiment": np.round(sentiment, 3),
            "channel": labels(CHANNELS, channel),
            "plan": labels(PLANS, plan),
            "product_area": labels(AREAS, area),
            "device_os": labels(OS, device),
            "region": labels(REGIONS, region),
            "mentions_invoice": yes_no(invoice),
            "mentions_error_code": yes_no(error_code),
            "mentions_password": yes_no(password),
            "mentions_delivery": yes_no(delivery),
            "has_order_id": yes_no(order_id),
            "team": labels(TEAMS, team),
        }
    )


# Features `generate(drift=...)` moves; the tests check that the drift check finds these and only these.
DRIFTED_FEATURES = (
    "channel", "plan", "region", "customer_tenure_days", "monthly_spend", "message_words", "hour", "open_tickets",
    "mentions_delivery",
)
