"""`mlops registry report`: a model's registry as a static page, opened in a real browser the way Argo's artifact
viewer serves it, for a binary, a multiclass and a regression model on a local folder and a real S3 API; and its
refusals of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from steps._storage.registry import Registry
from steps.registry import main as registry_main
from tests.steps._registry.scenario import COMMITS, Scenario, build
from tests.support.browser import NARROW, WIDE, browser, check_page, serve_like_argo
from workflows.cli import main as mlops_main

TASKS = ("binary", "multiclass", "regression")
# Gates only some tasks have: the page plots what the model's policy gates on, nothing else.
ONLY = {"binary": {"pr_auc", "roc_auc", "recall_gap"}, "multiclass": {"macro_f1", "log_loss", "class_recall"},
        "regression": {"rmse", "mae", "r2"}}


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = registry_main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def svgs_of(html: str) -> dict[str, str]:
    """Each inline picture by its accessible name."""
    return {m.group(1): m.group(0) for m in re.finditer(r"<svg role='img' aria-label='([^']*)'.*?</svg>", html, re.S)}


@pytest.mark.parametrize("task", TASKS)
def test_the_page_shows_versions_metrics_and_gate_reports_in_a_browser(
    task: str, reg: Registry, location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = build(reg, tmp_path / "bundles", task)
    out = tmp_path / "page"
    code, stdout, stderr = report(capsys, "--model", scenario.model, "--registry", location, "--out", str(out))
    assert (code, stderr) == (0, "")
    assert stdout.strip() == f"registry: {scenario.model}: page written to {out / 'index.html'}"

    html = (out / "index.html").read_text()
    pictures = svgs_of(html)
    assert sorted(pictures) == sorted(f"{scenario.model}: {name} across versions" for name in scenario.numeric_gates)
    assert all(f"{scenario.model}: {name} across versions" in pictures for name in ONLY[task])
    others = {name for other in TASKS if other != task for name in ONLY[other]}
    assert not [name for name in others if f"{scenario.model}: {name} across versions" in pictures]
    for svg in pictures.values():  # production ringed and labelled, the bound drawn, in every plot
        assert ">production v1<" in svg and ">canary v4<" in svg
        assert re.search(r">(minimum|maximum) [0-9.e+-]+<", svg)

    with serve_like_argo(out) as base, browser() as chromium:
        narrow, wide = (check_page(chromium, base + "index.html", width=w) for w in (NARROW, WIDE))
        assert narrow.problems() == [] and wide.problems() == []
        assert narrow.svgs == len(scenario.numeric_gates)
        text = narrow.text
        assert "v1 in production · v4 in canary · 4 versions · latest v4 canary" in text
        assert re.search(r"production since [0-9-]+ [0-9:]+ UTC, by alice@laptop: error rate up after v2", text)
        timeline = text[text.index("Versions"):text.index("Gated metrics across versions")]
        rows = re.split(r"\n(?=v[1-4] )", timeline)[1:]  # a row starts with its version and status
        assert [row.split("\t")[0] for row in rows] == ["v4 canary", "v3 rejected", "v2 archived", "v1 production"]
        assert f"\tgit push {COMMITS[2][:10]}\t" in rows[1] and f"\tfailed {scenario.failed_gate}\t" in rows[1]
        assert "\tdrift: amount, hour\t" in rows[2] and "archived by alice@laptop: error rate up after v2" in rows[2]
        assert "production by argo:rollout-v1: canary analysis passed" in rows[3]
        assert "production by alice@laptop: error rate up after v2" in rows[3]  # the rollback, and who did it
        lineage = text[text.index("Lineage"):]
        assert "\tsha256 222222222222…, 200,000 rows\tv1\t" in lineage  # v2's data, and v1 its baseline
        assert "\tsha256 111111111111…, 100,000 rows\tnone (first of its kind)\t" in lineage

        for n, gate_report in enumerate(scenario.reports, start=1):
            assert f"href='versions/{n}.html'" in html
            checks = [check_page(chromium, f"{base}versions/{n}.html", width=w) for w in (NARROW, WIDE)]
            assert [c.problems() for c in checks] == [[], []]
            page = checks[0].text
            assert f"{scenario.model} v{n}: gate report" in page
            expected = (f"v{n} rejected: failed gates: {scenario.failed_gate}" if n == 3
                        else f"v{n} passed its quality gates")
            assert expected in page
            for gate in gate_report["gates"]:
                if gate["value"] is not None:
                    assert f"{gate['name']}\t{gate['status']}\t{gate['value']:.4g}\t{gate['bound_kind']} " \
                           f"{gate['bound']:.4g}" in page
                assert gate["note"] in page


def test_writing_again_replaces_the_page_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = str(tmp_path / "registry")
    scenario = build(Registry.open(location), tmp_path / "bundles", "binary")
    out = tmp_path / "page"
    (out / "versions").mkdir(parents=True)
    (out / "versions" / "9.html").write_text("a version this registry never had")
    # through `mlops registry report`, as a user runs it
    assert mlops_main(["registry", "report", "--model", scenario.model, "--registry", location, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["1.html", "2.html", "3.html", "4.html"]
    assert json.loads((out / "registry.json").read_text())["versions"][0]["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles", "page", "registry"]  # no staging left behind


def test_a_version_whose_stored_bundle_json_is_damaged_still_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = tmp_path / "registry"
    scenario: Scenario = build(Registry.open(str(location)), tmp_path / "bundles", "regression")
    stored = location / "models" / scenario.model / "versions" / "2" / "bundle.json"
    stored.write_text(stored.read_text().replace("hist_gradient_boosting", "tampered"))
    code, _, _ = report(capsys, "--model", scenario.model, "--registry", str(location), "--out", str(tmp_path / "p"))
    assert code == 0
    page = (tmp_path / "p" / "versions" / "2.html").read_text()
    assert "bundle.json unreadable" in page and "does not match the registry index" in page
    assert "v2 passed its quality gates" in page  # the index's own record still shows


def test_bad_input_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = str(tmp_path / "registry")
    scenario = build(Registry.open(location), tmp_path / "bundles", "multiclass")
    out = tmp_path / "page"

    code, stdout, err = report(capsys, "--model", "churn-model", "--registry", location, "--out", str(out))
    assert (code, stdout) == (2, "")
    assert err.strip() == f"registry: error: model 'churn-model' has no versions in the registry at {location}"

    code, _, err = report(capsys, "--model", "Bad_Name", "--registry", location, "--out", str(out))
    assert code == 2 and "model 'Bad_Name': must be lowercase letters, digits and '-'" in err

    taken = tmp_path / "taken.html"
    taken.write_text("someone's file")
    code, _, err = report(capsys, "--model", scenario.model, "--registry", location, "--out", str(taken))
    assert code == 2 and err.strip() == f"registry: error: --out {taken}: exists and is not a folder"
    assert taken.read_text() == "someone's file"

    with pytest.raises(SystemExit) as exit_info:  # argparse: --out is required
        registry_main(["report", "--model", scenario.model, "--registry", location])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err

    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles", "registry", "taken.html"]
