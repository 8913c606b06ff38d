"""Prediction and target drift (steps/_drift/outputs.py): multiclass and regression models trained by steps.train,
their production version's profile.json `prediction` (and `target`) against a current dataset the model scores,
the servers' model_prediction_bin_total read off real /metrics pages and through a real Prometheus, reported in
drift.json and its page (index.html) beside the features, pushed to a real Pushgateway, and never counted in
drift_share."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from steps import drift
from steps._core.errors import UsageError
from steps._core.policy import load_policy
from steps._drift import outputs, rule
from steps._drift.pushgateway import push_metrics
from steps._model import bundle as _bundle
from steps._model import profile as _profile
from steps._storage.registry import Registry
from tests.steps._drift.test_sources import Pages
from tests.support.drift import NUMBER, POLICY
from tests.support.drift import rule as drift_rule
from tests.support.models import Trained
from tests.support.processes import PUSHGATEWAY, prometheus, running
from tests.support.tasks import task_frame, trained_task_bundle

TASKS = ("multiclass", "regression")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    return {task: trained_task_bundle(tmp_path_factory, task) for task in TASKS}


@pytest.fixture(scope="module")
def production(models: dict[str, Trained], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One registry with each task's trained bundle as its model's production version (v1), and each policy with
    min_samples 1000 so that the 4000-row datasets decide."""
    root = tmp_path_factory.mktemp("outputs")
    registry = Registry.open(str(root / "registry"))
    policies = {}
    for task, trained in models.items():
        model = load_policy(trained.policy).model_name
        registry.register(model, trained.bundle, passed=True, gate_report={"passed": True})
        registry.promote(model, 1, "production")
        raw = yaml.safe_load(trained.policy.read_text())
        raw["drift"] = {"min_samples": 1000}
        policies[task] = root / "gates" / trained.policy.name
        policies[task].parent.mkdir(exist_ok=True)
        policies[task].write_text(yaml.safe_dump(raw, sort_keys=False))
    return {"registry": registry, "policies": policies, "root": root}


def _dataset(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def _check(production: dict[str, Any], task: str, current: Path, report: Path, *extra: str) -> dict[str, Any]:
    policy = production["policies"][task]
    model = load_policy(policy).model_name
    assert drift.main(["check", "--model", model, "--registry", production["registry"].location, "--policy",
                       str(policy), "--current", str(current), "--report-dir", str(report), *extra]) == 0
    doc: dict[str, Any] = json.loads((report / "drift.json").read_text())
    return doc


# --- from a dataset: the production model scores it ---------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_the_models_own_training_data_shows_no_prediction_or_target_drift(
        task: str, production: dict[str, Any], tmp_path: Path) -> None:
    own = _dataset(tmp_path, "own", task_frame(task, seed=3))  # the rows the model was trained and held out on
    doc = _check(production, task, own, tmp_path / "r")
    assert doc["decision"] == "no_retrain" and doc["drifted_features"] == []
    prediction = doc["prediction"]
    assert prediction["name"] == "prediction" and prediction["method"] == "psi" and prediction["count"] == 4000
    assert prediction["drifted"] is False and prediction["score"] < doc["threshold"], prediction
    assert prediction["type"] == ("categorical" if task == "multiclass" else "numeric")
    if task == "multiclass":  # one bin per class, then other and missing
        assert prediction["bins"] == ["0", "1", "2", "3", "other", "missing"]
    if task == "regression":
        assert doc["target"]["drifted"] is False and doc["target"]["count"] == 4000, doc["target"]
    else:
        assert doc["target"] is None


@pytest.mark.parametrize("task", TASKS)
def test_shifted_inputs_move_the_predictions_and_the_target_reported_beside_the_features(
        task: str, production: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shifted = _dataset(tmp_path, "shifted", task_frame(task, seed=9, shift=2.5))
    doc = _check(production, task, shifted, tmp_path / "r")
    assert {"x1", "x2"} <= set(doc["drifted_features"])
    assert doc["prediction"]["drifted"] is True and doc["prediction"]["score"] > doc["threshold"]
    # Not a feature: the share counts the 4 features only.
    assert doc["share"] == pytest.approx(len(doc["drifted_features"]) / 4)
    assert "prediction" not in doc["drifted_features"]
    if task == "regression":
        assert doc["target"]["drifted"] is True
    page = (tmp_path / "r" / "index.html").read_text()
    outputs = page[page.index("<h2>The model's outputs</h2>"):]
    assert "Reported, not counted toward drift_share" in outputs and "<td class='wrap'>prediction</td>" in outputs
    verdict = page[page.index("<div class='verdict"):page.index("</div>")]
    drifted_outputs = "prediction and target" if task == "regression" else "prediction"
    assert f"{drifted_outputs} drifted too" in verdict
    out = capsys.readouterr().out
    assert "drift: prediction psi" in out and "drifted" in out


def test_a_binary_models_score_is_its_prediction_and_generated_drift_moves_it(trained: Trained,
                                                                              tmp_path: Path) -> None:
    from steps._core.data import generate

    registry = Registry.open(str(tmp_path / "registry"))
    model = load_policy(trained.policy).model_name
    registry.register(model, trained.bundle, passed=True, gate_report={"passed": True})  # type: ignore[typeddict-item]
    registry.promote(model, 1, "production")
    profile = json.loads((trained.bundle / _bundle.PROFILE_FILE).read_text())
    assert profile["prediction"]["type"] == "numeric" and "target" not in profile
    scores = outputs.predictions(registry, model, 1, generate(500, seed=8))
    assert scores.between(0, 1).all()  # P(positive)
    same = outputs.from_dataset(profile, generate(4000, seed=8), registry, model, 1)
    shifted = outputs.from_dataset(profile, generate(4000, seed=8, drift=0.8), registry, model, 1)
    rule_ = drift_rule("psi", 0.15)
    assert not rule.score_output("prediction", *same["prediction"], rule_).drifted
    assert rule.score_output("prediction", *shifted["prediction"], rule_).drifted


def test_a_regression_dataset_without_its_target_has_no_target_drift(production: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    features = task_frame("regression", seed=4).drop(columns=["demand"])
    doc = _check(production, "regression", _dataset(tmp_path, "features", features), tmp_path / "r")
    assert doc["target"] is None and doc["prediction"]["count"] == 4000


def test_multiclass_predictions_are_counted_as_class_labels_matching_the_scored_classes(
        production: dict[str, Any], models: dict[str, Trained]) -> None:
    registry: Registry = production["registry"]
    model = load_policy(models["multiclass"].policy).model_name
    frame = task_frame("multiclass", seed=5, rows=500)
    labels = outputs.predictions(registry, model, 1, frame)
    assert set(labels) <= {"billing", "outage", "sales", "spam"} and len(labels) == 500
    profile = json.loads((models["multiclass"].bundle / _bundle.PROFILE_FILE).read_text())
    counted = outputs.from_dataset(profile, frame.drop(columns=["queue"]), registry, model, 1)
    assert list(counted) == ["prediction"]
    _, vector = counted["prediction"]
    assert vector[-2:].tolist() == [0.0, 0.0]  # no `other`, no `missing`: every prediction is a class
    assert vector.sum() == 500


def test_a_dataset_missing_a_feature_the_model_needs_is_a_clear_error(production: dict[str, Any],
                                                                      models: dict[str, Trained]) -> None:
    registry: Registry = production["registry"]
    model = load_policy(models["regression"].policy).model_name
    with pytest.raises(UsageError, match="current data: no column 'channel'"):
        outputs.predictions(registry, model, 1, task_frame("regression", seed=5, rows=50).drop(columns=["channel"]))


# --- the rule: outputs are reported, never counted -----------------------------------------------------------


def _profile_with_prediction() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=2000)})
    profile = _profile.build_profile(frame, [NUMBER], bins=4)
    profile["prediction"] = _profile.value_profile(rng.uniform(size=2000), bins=4)
    return profile


def test_a_drifted_prediction_alone_is_reported_and_does_not_trigger_a_retrain() -> None:
    profile = _profile_with_prediction()
    counts = {"x": np.array([5000.0, 5000.0, 5000.0, 5000.0, 0.0])}  # the features as trained: no drift
    skewed = outputs.from_counters(profile, {"0": 19000, "3": 1000})
    result = rule.check(profile, POLICY, counts=counts, outputs=skewed)
    assert result.decision == "no_retrain" and result.share == 0.0 and result.drifted_features == []
    assert result.prediction is not None and result.prediction.drifted and result.target is None
    assert result.drifted_outputs == ["prediction"]
    record = result.to_dict()
    assert record["prediction"]["count"] == 20000  # type: ignore[typeddict-item]
    assert record["prediction"]["current"][0] == pytest.approx(0.95)  # type: ignore[typeddict-item]


def test_a_raw_method_scores_the_prediction_with_its_binned_companion() -> None:
    profile = _profile_with_prediction()
    counts = outputs.from_counters(profile, {"0": 100, "1": 100, "2": 100, "3": 100})
    for method, threshold, companion in (("wasserstein", 0.1, "jensen_shannon"), ("ks", 0.05, "chi_square")):
        [(name, (fp, vector))] = counts.items()
        scored = rule.score_output(name, fp, vector, drift_rule(method, threshold))
        assert scored.method == companion and scored.drifted is False, scored


def test_prediction_counters_outside_the_profiles_bins_are_refused_and_none_count_zero() -> None:
    profile = _profile_with_prediction()
    with pytest.raises(ValueError, match="model_prediction_bin_total: .*unknown bin '9'"):
        outputs.from_counters(profile, {"9": 3})
    [(_, (_, vector))] = outputs.from_counters(profile, {}).items()
    assert vector.sum() == 0
    scored = rule.score_output("prediction", profile["prediction"], vector, POLICY)
    assert scored.drifted is False and scored.count == 0  # nothing served: no evidence, no drift
    assert outputs.from_counters({"features": {}}, {"0": 1}) == {}  # a bundle profiled before predictions


# --- from the servers' counters ---------------------------------------------------------------------------------


def _exposition(model: str, version: int, profile: dict[str, Any], shares: list[float], rows: int) -> str:
    """A server's page: every feature counted as trained (its reference shares), predictions in `shares`."""
    base = f'model="{model}",model_version="{version}"'
    lines = ["# TYPE model_feature_bin_total counter"]
    for name, fp in profile["features"].items():
        as_trained = [*(p * (1 - fp["missing"]) for p in fp["proportions"]), fp["missing"]]
        for label, share in zip([*_profile.bin_labels(fp), "missing"], as_trained, strict=True):
            lines.append(f'model_feature_bin_total{{{base},feature="{name}",bin="{label}"}} {round(share * rows)}')
    lines.append("# TYPE model_prediction_bin_total counter")
    for label, share in zip(_profile.bin_labels(profile["prediction"]), shares, strict=True):
        lines.append(f'model_prediction_bin_total{{{base},bin="{label}"}} {round(share * rows)}')
    return "\n".join(lines) + "\n"


@pytest.fixture
def served(production: dict[str, Any], models: dict[str, Trained]) -> Iterator[dict[str, Any]]:
    """Two /metrics pages of the multiclass model's production version: features as trained, and predictions
    either as on the holdout ("/same-*") or all of one class ("/skewed")."""
    profile = json.loads((models["multiclass"].bundle / _bundle.PROFILE_FILE).read_text())
    model = load_policy(models["multiclass"].policy).model_name
    reference = profile["prediction"]["proportions"]
    one_class = [1.0] + [0.0] * (len(reference) - 1)
    pages = Pages({"/same-a": _exposition(model, 1, profile, reference, 3000),
                   "/same-b": _exposition(model, 1, profile, reference, 1000),
                   "/skewed": _exposition(model, 1, profile, one_class, 3000)})
    yield {"url": pages.url, "model": model, "profile": profile}
    pages.close()


def test_metrics_pages_sum_the_prediction_counters_beside_the_features(
        served: dict[str, Any], production: dict[str, Any], tmp_path: Path) -> None:
    common = ["--model", served["model"], "--registry", production["registry"].location, "--policy",
              str(production["policies"]["multiclass"])]
    assert drift.main([*common, "--metrics-url", f"{served['url']}/same-a", "--metrics-url",
                       f"{served['url']}/same-b", "--report-dir", str(tmp_path / "same")]) == 0
    same = json.loads((tmp_path / "same" / "drift.json").read_text())
    assert same["prediction"]["count"] == 4000 and same["prediction"]["drifted"] is False
    assert same["prediction"]["score"] < 0.01 and same["target"] is None
    assert drift.main([*common, "--metrics-url", f"{served['url']}/skewed",
                       "--report-dir", str(tmp_path / "skewed")]) == 0
    skewed = json.loads((tmp_path / "skewed" / "drift.json").read_text())
    assert skewed["prediction"]["drifted"] is True and skewed["prediction"]["current"][0] == 1.0
    assert skewed["decision"] == "no_retrain"  # the features are as trained: the prediction alone never retrains


@pytest.mark.integration
def test_prometheus_sums_the_increase_of_the_prediction_counters_over_the_window(
        production: dict[str, Any], models: dict[str, Trained], tmp_path: Path) -> None:
    if not shutil.which("prometheus"):
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    profile = json.loads((models["multiclass"].bundle / _bundle.PROFILE_FILE).read_text())
    model = load_policy(models["multiclass"].policy).model_name
    one_class = [1.0] + [0.0] * (len(profile["prediction"]["proportions"]) - 1)
    texts = {"/metrics": _exposition(model, 1, profile, one_class, 0)}  # the server starts: every counter at 0
    pages = Pages(texts)
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "server", "honor_labels": True,
                                  "static_configs": [{"targets": [pages.url.removeprefix("http://")]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    try:
        with prometheus(tmp_path / "prometheus.yml", tmp_path) as url:
            _wait(url, "count(model_prediction_bin_total) > 0")
            texts["/metrics"] = _exposition(model, 1, profile, one_class, 3000)  # then it serves 3000 rows
            _wait(url, "sum(model_prediction_bin_total) > 0")
            argv = ["--model", model, "--registry", production["registry"].location, "--policy",
                    str(production["policies"]["multiclass"]), "--prometheus", url, "--report-dir", str(tmp_path / "r")]
            assert drift.main(argv) == 0
    finally:
        pages.close()
    doc = json.loads((tmp_path / "r" / "drift.json").read_text())
    # increase() extrapolates past the last scrape (by up to half a scrape interval, more so the fewer the
    # scrapes): the same factor for every series of the page, so the shares are exact.
    prediction = doc["prediction"]
    assert 3000 <= prediction["count"] < 6000, prediction
    assert prediction["current"][0] == pytest.approx(1.0) and prediction["drifted"] is True
    assert doc["decision"] == "no_retrain" and doc["drifted_features"] == []


def _wait(url: str, query: str, timeout: float = 30) -> None:
    """Until the query has a result (Prometheus scrapes every second)."""
    from urllib.parse import quote

    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{url}/api/v1/query?query={quote(query)}", timeout=5) as answer:
            if json.loads(answer.read())["data"]["result"]:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{query!r}: no result after {timeout:.0f}s")
        time.sleep(0.3)


# --- the Pushgateway -------------------------------------------------------------------------------------------


def test_prediction_and_target_drift_are_pushed_under_their_own_names(tmp_path: Path) -> None:
    profile = _profile_with_prediction()
    profile["target"] = _profile.value_profile(np.arange(100.0), bins=4)
    scored = {**outputs.from_counters(profile, {"0": 950, "3": 50}),
              "target": (profile["target"], np.array([25.0, 25.0, 25.0, 25.0, 0.0]))}
    result = rule.check(profile, POLICY, counts={"x": np.array([250.0, 250.0, 250.0, 250.0, 0.0])}, outputs=scored)
    with running(PUSHGATEWAY, [], tmp_path) as url:
        push_metrics(url, "demand", 3, result)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            lines = response.read().decode().splitlines()

    def value(prefix: str) -> float:
        [line] = [x for x in lines if x.startswith(prefix + "{") and 'model="demand"' in x]
        assert 'model_version="3"' in line, line
        return float(line.split()[-1])

    assert result.prediction is not None and result.target is not None
    assert value("mlops_prediction_drift_score") == pytest.approx(result.prediction.score)
    assert value("mlops_prediction_drift_detected") == 1.0
    assert value("mlops_target_drift_score") == pytest.approx(result.target.score, abs=1e-12)
    assert value("mlops_target_drift_detected") == 0.0
    assert not any('feature="prediction"' in x for x in lines)  # not one of the features' scores
