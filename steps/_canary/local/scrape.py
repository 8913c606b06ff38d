"""The Prometheus scrape configuration for a local deployment (`mlops deploy --print-scrape-config`): the router's
/metrics/stable and /metrics/canary, each with its `role` label, as the PodMonitor's relabelling sets it in the
cluster, so the AnalysisTemplate's selectors find the canary locally too."""

from __future__ import annotations

from typing import Any

from steps._canary.analysis import ROLE_LABEL
from steps._canary.local.deployment import ROLES

SCRAPE_INTERVAL = "1s"  # the local rate windows are a few seconds long (analysis.LOCAL_MIN_WINDOW_SECONDS)


def scrape_config(target: str) -> dict[str, Any]:
    """A Prometheus configuration scraping the router at `target` (host:port): /metrics/stable and
    /metrics/canary, each with its `role` label (the servers add `model` and `model_version` themselves)."""
    return {"scrape_configs": [
        {"job_name": f"mlops-deploy-{role}", "scrape_interval": SCRAPE_INTERVAL, "metrics_path": f"/metrics/{role}",
         "static_configs": [{"targets": [target], "labels": {ROLE_LABEL: role}}]}
        for role in ROLES
    ]}


def scrape_config_text(target: str) -> str:
    import yaml

    return (f"# Prometheus scrape configuration for `mlops deploy` at {target}: use it as prometheus.yml, or add\n"
            "# these jobs to yours; then `PROMETHEUS_URL=http://<prometheus> python -m steps.rollout --target local`\n"
            "# judges the canary with the AnalysisTemplate's own queries.\n"
            + yaml.safe_dump(scrape_config(target), sort_keys=False))
