"""The register step's `--registry-report-out DIR`: the registry page as it stands after this registration,
whether the candidate passed or was rejected; a page that cannot be written only warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps._storage.registry import Registry
from steps.register import main
from tests.support.bundles import FAILED, MODEL, PASSED, make_bundle


def register(tmp_path: Path, fingerprint: str, report: dict[str, object], out: Path) -> int:
    gate = tmp_path / f"gate-{fingerprint}.json"
    gate.write_text(json.dumps(report))
    return main(["--bundle", str(make_bundle(tmp_path / "bundles", fingerprint)), "--gate-report", str(gate),
                 "--model", MODEL, "--registry", str(tmp_path / "registry"), "--registry-report-out", str(out)])


def test_the_page_shows_the_registry_after_each_registration_passed_or_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "registry-report"
    assert register(tmp_path, "first", PASSED, out) == 0
    assert f"register: registry page {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert "no version in production · 1 version · latest v1 staged" in page
    assert "no version has been promoted yet" in page
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["1.html"]

    assert register(tmp_path, "second", FAILED, out) == 1  # rejected: the step still fails the workflow
    page = (out / "index.html").read_text()
    assert "2 versions · latest v2 rejected (failed gates: pr_auc)" in page
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["1.html", "2.html"]
    assert "v2 rejected: failed gates: pr_auc" in (out / "versions" / "2.html").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".registry-report")]  # no staging left behind


def test_a_page_that_cannot_be_written_only_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.write_text("a file, not a folder")
    assert register(tmp_path, "first", PASSED, out) == 0
    captured = capsys.readouterr()
    assert "register: churn-model v1 staged" in captured.out
    assert captured.err.strip() == (
        f"register: warning: registry page not written: --registry-report-out {out}: exists and is not a folder"
    )
    assert Registry.open(str(tmp_path / "registry")).get(MODEL, 1)["status"] == "staged"
    assert out.read_text() == "a file, not a folder"
