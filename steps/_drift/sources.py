"""The drift check's live distribution when it is not a dataset: the servers' per-bin counters
(model_feature_bin_total), as their increase over the policy's window in Prometheus, or summed over the servers'
own /metrics pages (their totals since they started) when no Prometheus runs."""

from __future__ import annotations

from steps._core.errors import UsageError
from steps._core.prometheus import Prometheus, parse_exposition, read_page

METRIC = "model_feature_bin_total"
PROMETHEUS_RETRIES = 2
PROMETHEUS_BACKOFF = 0.5  # urllib3 retries once at once, then after 2 x this many seconds

Counters = dict[str, dict[str, float]]  # feature -> bin label -> count


def prometheus_counters(url: str, model: str, version: int, window: str, timeout: int = 30) -> Counters:
    """feature -> bin -> increase of model_feature_bin_total over the window, for the production version only
    (bin numbers index that version's profile, so another version's counters would not line up)."""
    query = (f'sum by (feature, bin) (increase({METRIC}{{model="{model}",model_version="{version}"}}'
             f'[{window}]))')
    # A short retry here for a blip; a Prometheus that stays down is exit 3, and the workflow retries the step.
    client = Prometheus(url, timeout=timeout, retries=PROMETHEUS_RETRIES, backoff=PROMETHEUS_BACKOFF)
    counters: Counters = {}
    for labels, value in client.query(query):
        counters.setdefault(labels.get("feature", ""), {})[labels.get("bin", "")] = value
    return counters


def exposition_counters(urls: list[str], model: str, version: int, timeout: float = 10.0) -> Counters:
    """feature -> bin -> model_feature_bin_total for this model and version, summed over the servers' /metrics
    pages (each server counts what it scored since it started; other models and versions are left out)."""
    counters: Counters = {}
    found = False
    others: set[str] = set()
    for url in dict.fromkeys(urls):  # the same page twice would count its rows twice
        for labels, value in metric_samples(read_page(url, timeout), METRIC, url):
            if labels.get("model") != model:
                continue
            if labels.get("model_version") != str(version):
                others.add(labels.get("model_version", "?"))
                continue
            found = True
            bins = counters.setdefault(labels.get("feature", ""), {})
            label = labels.get("bin", "")
            bins[label] = bins.get(label, 0.0) + value
    if not found:
        seen = f"only versions {sorted(others)} of it" if others else "no counters for it at all"
        raise UsageError(f"--metrics-url {' '.join(urls)}: no {METRIC} for {model} v{version} (the production "
                         f"version) there: the pages have {seen}")
    return counters


def metric_samples(text: str, metric: str, where: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric on a /metrics page, (labels, value) each.

    Only `metric`'s lines are read, so the rest of the page may hold anything; one of them that does not parse
    is an error naming `where` and the line.
    """
    out = []
    for line in text.splitlines():
        if not line.startswith(metric) or line[len(metric):len(metric) + 1] not in ("{", " ", "\t"):
            continue
        try:
            samples = parse_exposition(line, metric, where=where)
        except UsageError as err:
            raise UsageError(f"{where}: not a Prometheus sample line: {line[:200]!r}") from err
        out += [(labels, value) for _, labels, value in samples]
    return out
