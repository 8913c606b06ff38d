"""The drift check's metrics on a Prometheus Pushgateway, for dashboards and alerts: each feature's score, the
share of drifted features, the samples and whether retraining was due; and the model's outputs' own scores
(mlops_prediction_drift_score, mlops_target_drift_score) and whether each drifted (..._detected)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from steps._core.errors import TransientError, UsageError
from steps._drift.rule import DriftResult


def push_metrics(url: str, model: str, version: int, result: DriftResult, timeout: float = 10.0) -> None:
    """Replace this model's drift metrics on a Prometheus Pushgateway (job mlops-drift, grouped by model)."""
    lines = ["# TYPE mlops_drift_score gauge"]
    for f in result.features:
        if f.score == f.score and abs(f.score) != float("inf"):
            lines.append(f'mlops_drift_score{{feature="{f.name}",method="{f.method}",'
                         f'model_version="{version}"}} {f.score!r}')
    lines += ["# TYPE mlops_drift_share gauge", f'mlops_drift_share{{model_version="{version}"}} {result.share!r}',
              "# TYPE mlops_drift_samples gauge", f'mlops_drift_samples{{model_version="{version}"}} {result.samples}',
              "# TYPE mlops_drift_retrain gauge",
              f'mlops_drift_retrain{{model_version="{version}"}} {1 if result.retrain else 0}']
    # The model's outputs under their own names: dashboards and alerts tell them from the features, and a
    # prediction that moves alone can alert a person without touching the retrain rule.
    for output in (result.prediction, result.target):
        if output is None:
            continue
        name = f"mlops_{output.name}_drift"
        if output.score == output.score and abs(output.score) != float("inf"):
            lines += [f"# TYPE {name}_score gauge",
                      f'{name}_score{{method="{output.method}",model_version="{version}"}} {output.score!r}']
        lines += [f"# TYPE {name}_detected gauge",
                  f'{name}_detected{{model_version="{version}"}} {1 if output.drifted else 0}']
    address = f"{url.rstrip('/')}/metrics/job/mlops-drift/model/{urllib.parse.quote(model, safe='')}"
    request = urllib.request.Request(address, data=("\n".join(lines) + "\n").encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        raise UsageError(f"pushgateway {url}: HTTP {err.code}: {err.read()[:200]!r}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"pushgateway {url}: unreachable: {getattr(err, 'reason', err)}") from err
