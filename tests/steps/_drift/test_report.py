"""The drift report (steps/_drift/report.py): drift.json as strict JSON whatever the scores, the trigger's outcome in
it (an "error" when the webhook failed), and drift.html beside it, both replaced whole."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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
    page = (tmp_path / "r" / "drift.html").read_text()
    assert "region &lt;b&gt;" in page and "data:image/png;base64," in page
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["drift.html", "drift.json"]


def test_a_trigger_that_raised_is_reported_as_an_error(tmp_path: Path) -> None:
    result = decide([feature("amount", 0.5, True)], POLICY, samples=100)
    write_reports(tmp_path, drift_report("fraud-detection", 3, "data.parquet", result, None, "1h"), result)
    assert json.loads((tmp_path / "drift.json").read_text())["trigger"] == {"status": "error"}
