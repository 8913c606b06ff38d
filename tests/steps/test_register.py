"""The register step, `python -m steps.register`: exit codes, the one-line result, idempotency, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from steps._storage.registry import Registry
from steps.register import main
from tests.support.bundles import FAILED, MODEL, PASSED, make_bundle
from tests.support.paths import ROOT
from tests.support.processes import free_port


def write_report(tmp_path: Path, report: dict[str, Any], name: str = "gate.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return path


def run_step(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.register", *argv],
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def location(tmp_path: Path) -> str:
    return str(tmp_path / "registry")


def test_a_passed_candidate_is_staged_with_exit_0(tmp_path: Path, location: str) -> None:
    bundle = make_bundle(tmp_path, "5f2c9a1b77e0")
    result = run_step(
        "--bundle", str(bundle), "--gate-report", str(write_report(tmp_path, PASSED)), "--model", MODEL,
        "--registry", location, "--version-out", str(tmp_path / "out" / "version"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "register: churn-model v1 staged (fingerprint 5f2c9a1b…)\n"
    assert (tmp_path / "out" / "version").read_text() == "1"
    assert Registry.open(location).get(MODEL, 1)["status"] == "staged"


def test_a_rejected_candidate_is_recorded_with_exit_1(
    tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path, "weak")
    version_out = tmp_path / "version"
    argv = ["--bundle", str(bundle), "--gate-report", str(write_report(tmp_path, FAILED)), "--model", MODEL]
    assert main([*argv, "--registry", location, "--version-out", str(version_out)]) == 1
    expected = "register: churn-model v1 rejected: failed gates: pr_auc (fingerprint weak…)"
    assert capsys.readouterr().out.strip() == expected
    assert version_out.read_text() == "1"
    record = Registry.open(location).get(MODEL, 1)
    assert (record["status"], record["gate"]["failed"]) == ("rejected", ["pr_auc"])


def test_registering_the_same_bundle_twice_returns_the_same_version(
    tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--bundle", str(make_bundle(tmp_path, "again")), "--gate-report", str(write_report(tmp_path, PASSED)),
        "--model", MODEL, "--registry", location, "--version-out", str(tmp_path / "version"),
    ]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 0
    last_line = capsys.readouterr().out.splitlines()[-1]
    assert last_line.startswith("register: churn-model v1 already registered, now staged")
    assert (tmp_path / "version").read_text() == "1"
    assert len(Registry.open(location).versions(MODEL)) == 1


def test_commit_reason_and_actor_are_recorded(
    tmp_path: Path, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ACTOR", "argo:retrain-x7k2p")
    monkeypatch.setenv("MLOPS_REGISTRY", location)  # no --registry: the environment decides
    bundle = make_bundle(tmp_path, "lineage")
    argv = ["--bundle", str(bundle), "--gate-report", str(write_report(tmp_path, PASSED)), "--model", MODEL]
    assert main([*argv, "--git-commit", "feedbeef", "--reason", "automated_drift_detection"]) == 0
    record = Registry.open(location).get(MODEL, 1)
    assert (record["git_commit"], record["reason"]) == ("feedbeef", "automated_drift_detection")
    assert record["history"][0]["by"] == "argo:retrain-x7k2p"


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"model": MODEL, "gates": []}, "field 'passed' must be true or false, got None"),
        ({"model": MODEL, "passed": "yes"}, "field 'passed' must be true or false, got 'yes'"),
        ({"model": "other-model", "passed": True}, "field 'model' is 'other-model', but --model is 'churn-model'"),
        ([1, 2], "must be a JSON object, found list"),
    ],
    ids=["no-verdict", "verdict-not-boolean", "other-model", "not-an-object"],
)
def test_a_bad_gate_report_exits_2_naming_the_field(
    tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str], report: Any, message: str
) -> None:
    gate = write_report(tmp_path, report)
    argv = ["--bundle", str(make_bundle(tmp_path, "x")), "--gate-report", str(gate), "--model", MODEL]
    assert main([*argv, "--registry", location]) == 2
    assert capsys.readouterr().err.strip() == f"register: error: --gate-report {gate}: {message}"
    assert Registry.open(location).versions(MODEL) == []


def test_a_missing_or_tampered_bundle_exits_2(
    tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = str(write_report(tmp_path, PASSED))
    missing = tmp_path / "nowhere"
    assert main(["--bundle", str(missing), "--gate-report", gate, "--model", MODEL, "--registry", location]) == 2
    assert "bundle.json: missing: not a model bundle" in capsys.readouterr().err

    bundle = make_bundle(tmp_path, "t")
    (bundle / "profile.json").write_text("{}")
    assert main(["--bundle", str(bundle), "--gate-report", gate, "--model", MODEL, "--registry", location]) == 2
    assert "profile.json: sha256" in capsys.readouterr().err
    assert Registry.open(location).versions(MODEL) == []


def test_an_invalid_model_name_exits_2(tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--bundle", str(make_bundle(tmp_path, "x")), "--gate-report", str(write_report(tmp_path, PASSED))]
    assert main([*argv, "--model", "../escape", "--registry", location]) == 2
    assert "model '../escape': must be lowercase letters" in capsys.readouterr().err


@pytest.mark.integration
def test_registers_into_s3(tmp_path: Path, s3_bucket: str) -> None:
    location = f"s3://{s3_bucket}/registry"
    bundle = make_bundle(tmp_path, "on-s3")
    result = run_step(
        "--bundle", str(bundle), "--gate-report", str(write_report(tmp_path, PASSED)), "--model", MODEL,
        "--registry", location,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Registry.open(location).get(MODEL, "latest")["fingerprint"] == "on-s3"
    assert Registry.open(location).fetch(MODEL, 1, tmp_path / "fetched").joinpath("model.skops").is_file()


@pytest.mark.integration
def test_unreachable_s3_exits_3_with_a_clear_message(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # a closed port
    result = run_step(
        "--bundle", str(make_bundle(tmp_path, "x")), "--gate-report", str(write_report(tmp_path, PASSED)),
        "--model", MODEL, "--registry", "s3://mlops-registry/models",
        env={
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "MLOPS_S3_ATTEMPTS": "1", "MLOPS_S3_CONNECT_TIMEOUT": "1",
            "MLOPS_S3_READ_TIMEOUT": "2",
        },
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("register: error: s3://mlops-registry/models/models/churn-model/index.json:")
    assert f"S3 at {endpoint} unreachable or failing" in result.stderr
    assert "Traceback" not in result.stderr
