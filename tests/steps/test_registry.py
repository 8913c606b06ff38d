"""The registry's command line, `mlops registry` (steps/registry.py): list, show, promote and rollback on a local
folder and a real S3 API, its refusals, and `python -m steps.registry`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steps._storage.registry import Registry
from steps.registry import main as registry_main
from tests.support.bundles import FAILED, MODEL, register
from tests.support.paths import ROOT


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = registry_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_shows_a_table_newest_first(
    reg: Registry, location: str, bundles: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(reg, bundles, "a")
    register(reg, bundles, "b", FAILED)
    code, out, _ = run_cli(capsys, "list", "--model", MODEL, "--registry", location)
    assert code == 0
    header, newest, oldest = out.splitlines()
    assert header.split()[:3] == ["VERSION", "STATUS", "CREATED"]
    assert newest.split()[:2] == ["v2", "rejected"] and "failed gates: pr_auc" in newest
    assert oldest.split()[:2] == ["v1", "staged"] and "accuracy=0.95 pr_auc=0.71" in oldest and "0123abcd" in oldest

    code, out, _ = run_cli(capsys, "list", "--model", MODEL, "--registry", location, "--json")
    assert [r["version"] for r in json.loads(out)["versions"]] == [1, 2]


def test_cli_show_promote_and_rollback(
    reg: Registry, location: str, bundles: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(reg, bundles, "a")
    register(reg, bundles, "b")
    common = ("--model", MODEL, "--registry", location)
    assert run_cli(capsys, "promote", *common, "--version", "1")[1].strip() == (
        "registry: churn-model v1 staged -> production"
    )
    code, out, _ = run_cli(capsys, "promote", *common, "--version", "2", "--reason", "better pr_auc")
    assert (code, out.strip()) == (0, "registry: churn-model v2 staged -> production, v1 archived")

    code, out, _ = run_cli(capsys, "show", *common, "--version", "production")
    assert out.splitlines()[0] == "churn-model v2  production"
    assert "staged -> production" in out and "better pr_auc" in out

    code, out, _ = run_cli(capsys, "show", *common, "--version", "1", "--json")
    shown = json.loads(out)
    assert (shown["record"]["status"], shown["bundle"]["version"]) == ("archived", 1)

    code, out, _ = run_cli(capsys, "rollback", *common, "--reason", "errors in canary")
    assert (code, out.strip()) == (0, "registry: churn-model rolled back: v2 archived, v1 production")


def test_cli_refuses_an_illegal_move_with_exit_2(
    reg: Registry, location: str, bundles: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(reg, bundles, "a", FAILED)
    code, out, err = run_cli(capsys, "promote", "--model", MODEL, "--registry", location, "--version", "1")
    assert code == 2 and out == ""
    assert err.strip() == (
        "registry: error: churn-model v1: cannot move from rejected to production "
        "(from rejected a version may move to: nothing)"
    )


def test_cli_runs_as_a_module(tmp_path: Path, bundles: Path) -> None:
    location = str(tmp_path / "registry")
    register(Registry.open(location), bundles, "a")
    result = subprocess.run(
        [sys.executable, "-m", "steps.registry", "show", "--model", MODEL, "--registry", location],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("churn-model v1  staged")
