"""The drift report (steps/_drift/report.py): drift.json as strict JSON whatever the scores, the trigger's outcome in
it (an "error" when the webhook failed), and its page, index.html, beside it, both replaced whole: the verdict first
(drifted or not, the share against drift_share, what was done), the pictures as inline SVG."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from steps._core.policy import DriftPolicy
from steps._drift.report import drift_report, write_reports
from steps._drift.rule import FeatureDrift, decide
from steps._drift.trigger import Trigger

POLICY = DriftPolicy(min_samples=10)


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"drift.json holds {constant}: not strict JSON")

    return json.loads(text, parse_constant=refuse)


def feature(name: str, score: float, drifted: bool) -> FeatureDrift:
    return FeatureDrift(name, "numeric", "psi", score, None, drifted, 100, ("0", "1", "missing"), (0.5, 0.5, 0.0),
                        (0.1, 0.9, 0.0) if drifted else (0.5, 0.5, 0.0))


def test_the_report_is_strict_json_with_the_result_and_the_trigger(tmp_path: Path) -> None:
    result = decide([feature("amount", math.inf, True), feature("region <b>", 0.01, False)], POLICY, samples=100)
    doc = drift_report("fraud-detection", 3, "data.parquet", result, Trigger("sent", "0123456789ab", 1, "HTTP 200"),
                       "1h")
    write_reports(tmp_path / "r", doc, result)
    report = strict_json((tmp_path / "r" / "drift.json").read_text())
    assert (report["model"], report["production_version"], report["source"], report["window"]) == (
        "fraud-detection", 3, "data.parquet", "1h")
    assert report["features"][0]["score"] is None and report["drifted_features"] == ["amount"]
    assert report["trigger"] == {"status": "sent", "idempotency_key": "0123456789ab", "attempts": 1,
                                 "detail": "HTTP 200"}
    page = (tmp_path / "r" / "index.html").read_text()
    assert "region &lt;b&gt;" in page and "data:" not in page and "<img" not in page
    assert "<div class='verdict warn' role='status'>Drifted: 1 of 2 features drifted: 50% of them, over drift_share " \
           "30%; webhook called, retraining requested (HTTP 200, idempotency key 0123456789ab)" in page
    assert page.count("<svg role='img'") == 1 and "<a href='drift.json'>drift.json</a>" in page
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["drift.json", "index.html"]


def test_a_trigger_that_raised_is_reported_as_an_error(tmp_path: Path) -> None:
    result = decide([feature("amount", 0.5, True)], POLICY, samples=100)
    write_reports(tmp_path, drift_report("fraud-detection", 3, "data.parquet", result, None, "1h"), result)
    assert json.loads((tmp_path / "drift.json").read_text())["trigger"] == {"status": "error"}
    assert "<div class='verdict fail' role='status'>Drifted: 1 of 1 features drifted: 100% of them, over " \
           "drift_share 30%; the webhook call failed after its retries" in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize(("trigger", "says"), [
    (Trigger("cooldown", "0123456789ab", detail="a drift episode is already handled until 2026-12-07T10:00:00"),
     "no new request: cooldown (a drift episode is already handled until 2026-12-07T10:00:00)"),
    (Trigger("not_configured", detail="retraining is due, but no --webhook is configured"),
     "no action: retraining is due, but no webhook is configured"),
])
def test_the_verdict_says_what_was_done_about_the_drift(trigger: Trigger, says: str, tmp_path: Path) -> None:
    result = decide([feature("amount", 0.5, True)], POLICY, samples=100)
    write_reports(tmp_path, drift_report("fraud-detection", 3, "data.parquet", result, trigger, "1h"), result)
    page = (tmp_path / "index.html").read_text()
    assert f"Drifted: 1 of 1 features drifted: 100% of them, over drift_share 30%; {says}<small>" in page


def test_no_drift_and_too_few_samples_say_so_first(tmp_path: Path) -> None:
    calm = decide([feature("amount", 0.01, False), feature("hour", 0.02, False)], POLICY, samples=100)
    write_reports(tmp_path / "calm", drift_report("m", 3, "data.parquet", calm, Trigger("none"), "1h"), calm)
    assert ("<div class='verdict pass' role='status'>No drift: 0 of 2 features drifted: 0% of them, within "
            "drift_share 30%; no action<small>") in (tmp_path / "calm" / "index.html").read_text()
    few = decide([feature("amount", 0.5, True)], POLICY, samples=5)
    write_reports(tmp_path / "few", drift_report("m", 3, "data.parquet", few, Trigger("none"), "1h"), few)
    assert ("<div class='verdict info' role='status'>Not decided: waiting for more data: 5 samples &lt; min_samples "
            "10; no action<small>") in (tmp_path / "few" / "index.html").read_text()
