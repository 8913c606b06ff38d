"""The `mlops` command line: fast help, the subcommands it dispatches to, `data generate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workflows import cli

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_command_without_importing_heavy_libraries():
    code = ("import sys\nfrom workflows.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('hera', 'pandas', 'sklearn', 'jsonschema') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "[]", "mlops --help imported a heavy library"
    for command in ("data", "compile", "lint", "run", "registry"):
        assert any(line.strip().startswith(command) for line in lines), command


def test_data_generate_writes_the_requested_rows(tmp_path, capsys):
    out = tmp_path / "d.parquet"
    assert cli.main(["data", "generate", "--rows", "500", "--seed", "3", "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 500 and "is_fraud" in frame.columns
    assert f"wrote 500 rows to {out}" in capsys.readouterr().out


def test_data_generate_rejects_bad_input_with_a_clear_error(tmp_path, capsys):
    assert cli.main(["data", "generate", "--rows", "10", "--drift", "2", "--out", str(tmp_path / "d.csv")]) == 2
    assert "--drift: must be between 0 and 1 (got 2.0)" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()


def test_subcommands_dispatch_to_their_modules(tmp_path, monkeypatch, policy_file, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["compile", "--policy", str(policy_file), "--out", "gen"]) == 0
    assert cli.main(["compile", "--check", "--policy", str(policy_file), "--out", "gen"]) == 0
    assert cli.main(["lint", "gen"]) == 0
    assert "file(s) OK" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["deploy-everything"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_registry_is_delegated_to_the_registry_step():
    registry = pytest.importorskip("steps.registry", reason="steps/registry.py is not written yet")
    assert cli.COMMANDS["registry"][1] == registry.__name__
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["registry", "--help"])
    assert exit_info.value.code == 0


def test_python_dash_m_runs_the_command_line():
    for module in ("workflows", "workflows.cli"):
        done = subprocess.run([sys.executable, "-m", module, "lint", "--help"], cwd=ROOT, capture_output=True,
                              check=False, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0 and "usage: mlops lint" in done.stdout, module
