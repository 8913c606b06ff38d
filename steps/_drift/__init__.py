"""Drift: the statistics, where the live distribution comes from, the cooldown, the report and the webhook."""
