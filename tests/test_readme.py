"""The README is the newcomer's contract: its set-up commands are what CI runs, and every `mlops` command in it exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def setup_commands() -> tuple[str, str]:
    blocks = [b.strip() for b in sh_blocks()]
    main_job = next(b for b in blocks if b.endswith("mlops run training"))
    tests = next(b for b in blocks if "pytest" in b)
    return main_job, tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = setup_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, "the README's test command and .ci/run have drifted apart"


def test_both_setup_commands_install_from_a_fresh_venv() -> None:
    main_job, tests = setup_commands()
    for command in (main_job, tests):
        assert command.startswith("python3 -m venv .venv"), command
        assert "uv pip install" in command


def mlops_invocations() -> list[list[str]]:
    found = []
    for block in sh_blocks():
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part.strip())
                if words and words[0].endswith("mlops"):
                    found.append(words[1:])
    return found


def subcommand_path(args: list[str]) -> list[str]:
    """The leading words of an invocation that name (sub)commands, e.g. ['registry', 'list']."""
    path = []
    for word in args:
        if word.startswith("-"):
            break
        path.append(word)
    return path[:2]


@pytest.mark.parametrize("args", mlops_invocations(), ids=lambda a: " ".join(a))
def test_every_readme_mlops_command_exists(args: list[str]) -> None:
    path = subcommand_path(args)
    proc = subprocess.run([sys.executable, "-m", "workflows.cli", *path, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"`mlops {' '.join(path)} --help` failed:\n{proc.stderr}"
