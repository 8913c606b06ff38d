"""The drift check's live distribution when it is not a dataset: the servers' per-bin counters
(model_feature_bin_total, and model_prediction_bin_total for the predictions), as their increase over the
policy's window in Prometheus, or summed over the servers' own /metrics pages (their totals since they started)
when no Prometheus runs."""

from __future__ import annotations

from collections.abc import Mapping

from steps._core.errors import UsageError
from steps._core.prometheus import Prometheus, parse_exposition, read_page

METRIC = "model_feature_bin_total"
PREDICTION_METRIC = "model_prediction_bin_total"  # the same without `feature`: the prediction's profile bins
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


def exposition_counters(urls: list[str], model: str, version: int, timeout: float = 10.0,
                        pages: Mapping[str, str] | None = None) -> Counters:
    """feature -> bin -> model_feature_bin_total for this model and version, summed over the servers' /metrics
    pages (each server counts what it scored since it started; other models and versions are left out).
    `pages` (read_pages') spares reading them again."""
    pages = read_pages(urls, timeout) if pages is None else pages
    counters: Counters = {}
    found = False
    others: set[str] = set()
    for url, text in pages.items():
        for labels, value in metric_samples(text, METRIC, url):
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


def read_pages(urls: list[str], timeout: float = 10.0) -> dict[str, str]:
    """Each /metrics page's text, each page once (the same page twice would count its rows twice)."""
    return {url: read_page(url, timeout) for url in dict.fromkeys(urls)}


def prometheus_prediction_counters(url: str, model: str, version: int, window: str, timeout: int = 30
                                   ) -> dict[str, float]:
    """bin -> increase of model_prediction_bin_total over the window, for the production version only; empty
    when the servers do not count predictions (a bundle without a `prediction` profile)."""
    query = (f'sum by (bin) (increase({PREDICTION_METRIC}{{model="{model}",model_version="{version}"}}'
             f'[{window}]))')
    client = Prometheus(url, timeout=timeout, retries=PROMETHEUS_RETRIES, backoff=PROMETHEUS_BACKOFF)
    return {labels.get("bin", ""): value for labels, value in client.query(query)}


def exposition_prediction_counters(pages: Mapping[str, str], model: str, version: int) -> dict[str, float]:
    """bin -> model_prediction_bin_total for this model and version, summed over the pages; empty when none."""
    counters: dict[str, float] = {}
    for url, text in pages.items():
        for labels, value in metric_samples(text, PREDICTION_METRIC, url):
            if labels.get("model") == model and labels.get("model_version") == str(version):
                label = labels.get("bin", "")
                counters[label] = counters.get(label, 0.0) + value
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
