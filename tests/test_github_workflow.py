""".github/workflows/model-pipeline.yml: every `mlops` command it runs exists and takes the options it passes (asked
of the real `mlops`), it runs on the paths a model is made of, it pushes the images the rendered templates run,
and only a push to main retrains."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import load_policy
from workflows import render
from workflows._common import GIT_PUSH_REASON

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "model-pipeline.yml"
POLICIES = sorted((ROOT / "gates").glob("*.yaml"))
MLOPS = Path(sys.executable).with_name("mlops")  # the console script of the environment running the tests
_SEPARATORS = {"&&", "||", ";", "|", "&", ">", ">>", "<", "(", ")"}
_KEYWORDS = {"do", "then", "else", "!", "time"}  # shell words that may precede a command


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean true.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def mlops_invocations(script: str) -> list[list[str]]:
    """The argument lists of every `mlops ...` command in a shell script (`.venv/bin/mlops` or `mlops`)."""
    # A newline ends a command, as `;` does (continuation lines joined first).
    text = script.replace("\\\n", " ").replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    found = []
    for cmd in commands:
        while cmd and cmd[0] in _KEYWORDS:
            cmd = cmd[1:]
        if cmd and Path(cmd[0]).name == "mlops":
            found.append(cmd[1:])
    return found


def invocations(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    return [(job_id, step, args) for job_id, step in steps(workflow) if "run" in step
            for args in mlops_invocations(step["run"])]


def options(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", a)]


def github_filter(pattern: str) -> re.Pattern[str]:
    """A GitHub Actions path filter as a regex: `**` crosses folders, `*` does not."""
    out = ""
    for part in re.split(r"(\*\*/|\*\*|\*)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*"}.get(part, re.escape(part))
    return re.compile(out)


def evaluate(condition: str, github: dict[str, str]) -> bool:
    """A GitHub expression made of `github.<key> ==|!= 'literal'` terms joined by && and || (no parentheses)."""
    text = condition.strip().removeprefix("${{").removesuffix("}}").strip()

    def term(t: str) -> bool:
        match = re.fullmatch(r"github\.(\w+)\s*(==|!=)\s*'([^']*)'", t.strip())
        if not match:
            raise AssertionError(f"condition term not understood by this test: {t!r}")
        key, op, literal = match.groups()
        return (github[key] == literal) == (op == "==")

    return any(all(term(t) for t in alternative.split("&&")) for alternative in text.split("||"))


def test_every_mlops_command_the_workflow_runs_exists_and_takes_its_options(workflow):
    if not MLOPS.is_file():
        pytest.skip(f"no `mlops` console script beside {sys.executable} (install the project: pip install -e .)")
    used: dict[str, set[str]] = {}
    for _, _, args in invocations(workflow):
        assert args, "a bare `mlops` call"
        used.setdefault(args[0], set()).update(options(args[1:]))
    assert {"compile", "lint", "submit"} <= set(used), f"commands run: {sorted(used)}"
    assert "--check" in used["compile"] and "--wait" in used["submit"]

    runs = {cmd: subprocess.Popen([str(MLOPS), cmd, "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for cmd in used}
    for cmd, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"`mlops {cmd} --help` exited {proc.returncode}: {err}"
        for option in sorted(used[cmd]):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", out), \
                f"`mlops {cmd} --help` does not list {option}, which the workflow passes"


def test_the_workflow_runs_on_the_paths_a_model_is_made_of(workflow):
    for event in ("push", "pull_request"):
        filters = [github_filter(p) for p in workflow["on"][event]["paths"]]
        examples = ["gates/model.yaml", "steps/train.py", "workflows/training.py", "images/steps.Dockerfile",
                    "requirements.lock", ".github/workflows/model-pipeline.yml"]
        # A policy whose data lives in the repository retrains when that data changes.
        for path in POLICIES:
            source = load_policy(path).data.source.removeprefix("file://")
            if "://" not in source and not source.startswith("generate:"):  # generated data is no file
                examples.append(source.removeprefix("./"))
        for example in examples:
            assert any(f.fullmatch(example) for f in filters), f"{event}: a change to {example} would not run it"
        assert not any(f.fullmatch("README.md") for f in filters), "a README edit should not retrain"


def test_the_tests_run_with_the_readme_commands_and_the_schemas(workflow):
    test_job = [s for job_id, s in steps(workflow) if job_id == "test"]
    runs = [s.get("run", "") for s in test_job]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = next(r for r in runs if "uv pip install" in r).strip()
    tests = next(r for r in runs if "pytest" in r).strip()
    assert f"{install} && {tests}" in readme, "the workflow's install and test commands drifted from the README's"
    fetch = next(r for r in runs if "schemas" in r)
    for schema in sorted(p.name for p in (ROOT.parent / "shared" / "schemas").glob("*.json")) or ["schema.json"]:
        assert schema in fetch
    assert "sha256sum -c" in fetch


def test_the_images_pushed_are_the_images_the_rendered_templates_run(workflow):
    job = workflow["jobs"]["images"]
    build = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["tags"] == "${{ env.IMAGE_PREFIX }}/${{ matrix.image }}:${{ github.sha }}"
    assert build["with"]["file"] == "images/${{ matrix.image }}.Dockerfile"
    built = {f"{workflow['env']['IMAGE_PREFIX']}/{name}" for name in job["strategy"]["matrix"]["image"]}
    for name in job["strategy"]["matrix"]["image"]:
        assert (ROOT / "images" / f"{name}.Dockerfile").is_file()

    def images(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [i for k, v in value.items() for i in ([v] if k == "image" and isinstance(v, str) else images(v))]
        return [i for v in value for i in images(v)] if isinstance(value, list) else []

    rendered = {re.sub(r":[^/:]+$", "", image) for path in POLICIES
                for doc in render.render_documents(load_policy(path)).values() for image in images(doc)}
    ours = {image for image in rendered if image.startswith(workflow["env"]["IMAGE_PREFIX"] + "/")}
    assert ours and ours <= built, f"rendered images not built by the workflow: {sorted(ours - built)}"


def test_only_a_push_to_main_retrains_with_the_commits_images(workflow):
    submits = [(job_id, step, args) for job_id, step, args in invocations(workflow)
               if args[0] == "submit" and "--dry-run" not in args]
    assert submits, "no `mlops submit` that talks to the Argo Server"
    contexts = {
        "push to main": ({"event_name": "push", "ref": "refs/heads/main"}, True),
        "push to a branch": ({"event_name": "push", "ref": "refs/heads/feature"}, False),
        "pull request": ({"event_name": "pull_request", "ref": "refs/pull/7/merge"}, False),
    }
    for job_id, step, args in submits:
        job = workflow["jobs"][job_id]
        for label, (github, expected) in contexts.items():
            runs = all(evaluate(c, github) for c in (job.get("if"), step.get("if")) if c)
            assert runs is expected, f"{job_id}: the submit {'skips' if expected else 'runs'} on a {label}"
        assert "images" in job["needs"], "the retrain must wait for the images it runs"
        assert step["env"]["ARGO_SERVER"] == "${{ secrets.ARGO_SERVER }}"
        assert step["env"]["ARGO_TOKEN"] == "${{ secrets.ARGO_TOKEN }}"
        given = dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("-"))
        assert given["image-tag"] in ("$GITHUB_SHA", "${{ github.sha }}")
        assert given["git-commit"] in ("${GITHUB_SHA::7}", "${{ github.sha }}")
        # The run reads as a git push in the Argo UI (title, argo-mlops.io/trigger=git-push), not as a manual one.
        assert given["reason"] == GIT_PUSH_REASON


def test_the_command_parser_sees_through_shell_syntax():
    script = ('for p in gates/*.yaml; do\n  .venv/bin/mlops submit training --policy "$p" \\\n'
              '    -p a=1 --wait || status=$?\ndone\nmlops lint && echo ok\n'
              'for m in a b; do mlops compile --check; done > /dev/null\n')
    assert mlops_invocations(script) == [["submit", "training", "--policy", "$p", "-p", "a=1", "--wait"], ["lint"],
                                         ["compile", "--check"]]
