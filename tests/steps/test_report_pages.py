"""The gate and drift report pages in a real browser, served as Argo's artifact viewer serves a report folder (its
CSP: no scripts, pictures only from the same origin; the folder opened at its index.html): for a passing and a
rejected candidate of a binary, a multiclass and a regression model, and for drift checks that drifted (webhook
called, then a cooldown) and did not. Each page shows every picture, fits 1000 px and 1920 px, and opens with its
verdict. Models: trained by steps.train (tests/support/models.py, tests/support/tasks.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import drift
from steps._core.data import generate, write_frame
from steps._core.policy import load_policy
from steps._storage.registry import Registry
from tests.steps.test_gate import Model, derive_policy, run_gate
from tests.support.browser import NARROW, WIDE, PageCheck, browser, check_page, serve_like_argo
from tests.support.models import Trained, trained_bundle
from tests.support.tasks import trained_task_bundle
from tests.support.webhooks import Hook

TASKS = ["binary", "multiclass", "regression"]
# Bounds no model of the tests reaches: the candidate is rejected by exactly these gates.
OUT_OF_REACH: dict[str, dict[str, dict[str, float]]] = {
    "binary": {"roc_auc": {"minimum": 0.9999}, "pr_auc": {"minimum": 0.9999}},
    "multiclass": {"accuracy": {"minimum": 0.9999}, "macro_f1": {"minimum": 0.9999}},
    "regression": {"r2": {"minimum": 0.9999}, "rmse": {"maximum": 0.001}},
}
# The pictures each task's page draws (in order); the permutation importances come with a baseline.
PICTURES = {
    "binary": ["ROC curve", "Precision-recall curve", "Confusion matrix at the threshold", "Recall per segment"],
    "multiclass": ["Confusion matrix (the most probable class)", "Precision and recall per class",
                   "Macro-F1 per segment"],
    "regression": ["Predicted vs actual", "Residuals vs predicted"],
}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module's pages (skips where Playwright or Chromium is absent)."""
    with browser() as c:
        yield c


def open_page(chromium: Any, folder: Path) -> list[PageCheck]:
    """The folder served like Argo's artifact viewer, its index.html opened at 1000 and 1920 px."""
    with serve_like_argo(folder) as base:
        return [check_page(chromium, base + "index.html", width=width) for width in (NARROW, WIDE)]


def lines(check: PageCheck) -> list[str]:
    return [line.strip() for line in check.text.splitlines() if line.strip()]


def assert_renders(checks: list[PageCheck], page: str) -> None:
    """No blocked or broken picture, no console error or CSP violation, no overflow, no missing link; every
    picture of the page is shown, as inline SVG."""
    figures = page.count("<figure>")
    assert figures >= 1 and "data:" not in page and "<script" not in page.lower()
    for check in checks:
        assert check.problems() == [], (check.width, check.problems())
        assert check.svgs == figures and check.images == 0 and check.broken_images == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    return {"binary": trained_bundle(tmp_path_factory),
            **{task: trained_task_bundle(tmp_path_factory, task) for task in ("multiclass", "regression")}}


@pytest.mark.parametrize("task", TASKS)
def test_the_gate_page_of_a_passing_candidate_opens_with_passed_and_shows_every_picture(
        task: str, trained: dict[str, Trained], chromium: Any, tmp_path: Path) -> None:
    model = Model(trained[task].bundle, trained[task].holdout, trained[task].policy)
    # The candidate against itself as the baseline: the comparisons and the importances are drawn too.
    policy = derive_policy(model.policy, tmp_path / "policy",
                           {"feature_importance_stability": {"minimum": 0.8, "comparison": "gte"}})
    gated = run_gate(model, tmp_path, policy, model.bundle)
    assert gated.code == 0 and gated.report["passed"] is True, gated.stderr
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["gate.json", "index.html"]
    checks = open_page(chromium, tmp_path / "report")
    assert_renders(checks, gated.html)
    pictures = re.findall(r"<svg role='img' aria-label='([^']+)'", gated.html)
    assert pictures[:-1] == PICTURES[task] and pictures[-1].startswith("Permutation importance")
    for check in checks:
        title, first, second = lines(check)[:3]
        assert title == f"Gate report: {gated.report['model']}"
        assert first == "Passed: the candidate meets every required gate"  # the verdict comes first
        assert second.startswith(f"{len(gated.report['gates'])} gates on {gated.report['holdout_rows']} holdout rows")


@pytest.mark.parametrize("task", TASKS)
def test_the_gate_page_of_a_rejected_candidate_names_the_failed_gates_first(
        task: str, trained: dict[str, Trained], chromium: Any, tmp_path: Path) -> None:
    model = Model(trained[task].bundle, trained[task].holdout, trained[task].policy)
    policy = derive_policy(model.policy, tmp_path / "policy", OUT_OF_REACH[task])
    gated = run_gate(model, tmp_path, policy)
    assert gated.code == 0 and gated.report["passed"] is False
    assert set(gated.report["failed"]) == set(OUT_OF_REACH[task]), gated.report["failed"]
    checks = open_page(chromium, tmp_path / "report")
    assert_renders(checks, gated.html)
    assert re.findall(r"<svg role='img' aria-label='([^']+)'", gated.html) == PICTURES[task]
    for check in checks:
        first = lines(check)[1]
        assert first == f"Rejected: failed {', '.join(gated.report['failed'])}", first
        # Each failed gate's row says FAIL; the table is the first one on the page.
        rows = {line.split("\t")[0]: line for line in lines(check) if "\t" in line}
        assert all("FAIL" in rows[name] for name in OUT_OF_REACH[task]), rows


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, trained: dict[str, Trained]) -> dict[str, Path]:
    """The binary model in production in a registry, its policy deciding on 2000 samples, and current data:
    undrifted, and drifted (generate's drift 0.8 shifts 12 of the 23 features)."""
    root = tmp_path_factory.mktemp("drift-pages")
    raw = yaml.safe_load(trained["binary"].policy.read_text())
    raw["drift"]["min_samples"] = 2000
    policy = root / trained["binary"].policy.name
    policy.write_text(yaml.safe_dump(raw, sort_keys=False))
    for name, seed, shift in (("same", 12, 0.0), ("drifted", 11, 0.8)):
        write_frame(generate(4000, seed=seed, drift=shift), root / f"{name}.parquet")
    (root / "token").write_text("s3cret\n")
    return {"root": root, "policy": policy}


def drift_check(production: dict[str, Path], registry: Path, current: str, hook: Hook, report: Path) -> dict[str, Any]:
    model = load_policy(production["policy"]).model_name
    code = drift.main(["check", "--model", model, "--registry", str(registry), "--policy", str(production["policy"]),
                       "--current", str(production["root"] / f"{current}.parquet"), "--webhook", hook.url,
                       "--token-file", str(production["root"] / "token"), "--report-dir", str(report),
                       "--webhook-backoff", "0.01"])
    assert code == 0
    assert sorted(p.name for p in report.iterdir()) == ["drift.json", "index.html"]
    doc: dict[str, Any] = json.loads((report / "drift.json").read_text())
    return doc


@pytest.fixture
def registry(trained: dict[str, Trained], tmp_path: Path) -> Path:
    folder = tmp_path / "registry"
    model = load_policy(trained["binary"].policy).model_name
    reg = Registry.open(str(folder))
    reg.register(model, trained["binary"].bundle, passed=True, gate_report={"passed": True})  # type: ignore[typeddict-item]
    reg.promote(model, 1, "production")
    return folder


def test_the_drift_page_of_a_drifted_check_says_so_and_what_was_done_first(
        production: dict[str, Path], registry: Path, chromium: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    hook = Hook()
    try:
        sent = drift_check(production, registry, "drifted", hook, tmp_path / "first")
        again = drift_check(production, registry, "drifted", hook, tmp_path / "second")
    finally:
        hook.close()
    assert len(hook.requests) == 1 and sent["trigger"]["status"] == "sent" and again["trigger"]["status"] == "cooldown"
    drifted, total = len(sent["drifted_features"]), len(sent["features"])
    for folder, says in ((tmp_path / "first", "webhook called, retraining requested (HTTP 200"),
                         (tmp_path / "second", "no new request: cooldown (a drift episode is already handled")):
        page = (folder / "index.html").read_text()
        checks = open_page(chromium, folder)
        assert_renders(checks, page)
        for check in checks:
            title, first = lines(check)[:2]
            assert title == f"Drift report: {sent['model']} v1"
            assert first.startswith(f"Drifted: {drifted} of {total} features drifted: {sent['share']:.0%} of them, "
                                    f"over drift_share {sent['drift_share']:.0%}; {says}"), first
            # The drifted features lead the table.
            rows = [line.split("\t") for line in lines(check) if line.count("\t") == 6][1:]
            assert [r[0] for r in rows[:drifted]] == sorted(sent["drifted_features"],
                                                            key=lambda n: -_score(sent, n))
    capsys.readouterr()


def test_the_drift_page_of_an_undrifted_check_says_no_drift_and_no_action(
        production: dict[str, Path], registry: Path, chromium: Any, tmp_path: Path) -> None:
    hook = Hook()
    try:
        doc = drift_check(production, registry, "same", hook, tmp_path / "r")
    finally:
        hook.close()
    assert hook.requests == [] and doc["decision"] == "no_retrain"
    page = (tmp_path / "r" / "index.html").read_text()
    checks = open_page(chromium, tmp_path / "r")
    assert_renders(checks, page)
    for check in checks:
        first = lines(check)[1]
        assert first == (f"No drift: {len(doc['drifted_features'])} of {len(doc['features'])} features drifted: "
                         f"{doc['share']:.0%} of them, within drift_share {doc['drift_share']:.0%}; no action")


def _score(doc: dict[str, Any], name: str) -> float:
    return float(next(f["score"] for f in doc["features"] if f["name"] == name))
