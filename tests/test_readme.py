"""The README is the newcomer's contract: its set-up commands are what CI runs, and every command in it is exercised
by a test: run here when it is cheap, by the named test when it is long (the demo, a training run, the servers),
and by its offline equivalent when it needs a cluster (kustomize + schemas, the submit request)."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# Each README command (a regular expression over the line, comment removed) and the test that exercises it.
EXERCISED_BY: dict[str, str] = {
    r"python3 -m venv .venv .* && \.venv/bin/mlops demo$": "tests/workflows/demo/test_demo.py::"
    "test_the_demo_runs_the_whole_loop_and_ends_with_the_registry_table",
    r"^\.venv/bin/mlops demo --task regression$": "tests/workflows/demo/test_demo_regression.py::"
    "test_the_regression_demo_runs_the_whole_loop",
    r"^\.venv/bin/mlops demo --task multiclass$": "tests/workflows/demo/test_demo_multiclass.py::"
    "test_the_multiclass_demo_runs_the_whole_loop",
    r"python3 -m venv .venv .* pytest -q -p no:cacheprovider -n 2 --dist loadfile$": "tests/test_readme.py::"
    "test_ci_runs_exactly_the_readme_test_command",
    r"^\.venv/bin/mlops run training$": "tests/workflows/local/test_run.py::"
    "test_run_training_generates_data_runs_the_rendered_yaml_and_summarises",
    r"^\.venv/bin/mlops run training -p dataset=\S+$": "tests/test_training_pipeline.py::"
    "test_run_training_registers_the_first_version_and_rolls_it_out_to_production",
    r"^\.venv/bin/mlops init --data \S+ --target \S+( --segment \S+)?$": "tests/test_new_model.py::credit",
    r"^\.venv/bin/mlops run training --model \S+$": "tests/test_new_model.py::credit",
    r"^\.venv/bin/mlops registry list --model \S+$": "tests/test_readme.py::test_the_cheap_readme_commands_run",
    r"^\.venv/bin/mlops registry report --model \S+ --out \S+$":
        "tests/steps/test_registry_report.py::test_writing_again_replaces_the_page_whole",
    r"^\.venv/bin/mlops data generate .*": "tests/test_readme.py::test_the_cheap_readme_commands_run",
    r"^\.venv/bin/mlops compile( --check)?$": "tests/test_readme.py::test_the_cheap_readme_commands_run",
    r"^\.venv/bin/mlops lint$": "tests/test_readme.py::test_the_cheap_readme_commands_run",
    r"^\.venv/bin/mlops submit .*--dry-run$": "tests/test_readme.py::test_the_cheap_readme_commands_run",
    r"^\.venv/bin/mlops serve --model \S+@production --port \d+$": "tests/steps/test_serve.py::"
    "test_serve_a_registry_reference",
    r"^\.venv/bin/mlops serve --model \S+@production --port \d+ --grpc-port \d+$": "tests/test_readme_clients.py::"
    "test_the_readme_clients_get_the_same_scores_over_binary_http_and_grpc",
    r"^\.venv/bin/mlops deploy --port \d+$": "tests/steps/test_deploy.py::"
    "test_mlops_deploy_serves_the_production_version_and_answers_the_control_endpoint",
    r"^\.venv/bin/mlops drift check --model \S+ --current \S+$": "tests/steps/test_drift.py::"
    "test_drifted_dataset_triggers_one_retrain_naming_the_drifted_features",
    r"^\.venv/bin/mlops events serve --port \d+$": "tests/workflows/local/test_events.py::"
    "test_mlops_events_serve_command_answers_401_and_logs_ignored_alerts",
    # Cluster commands: their offline equivalents.
    r"^kubectl create namespace mlops$": "tests/test_readme.py::test_the_cluster_commands_match_the_manifests",
    r"^kubectl -n mlops create secret generic .*": "tests/test_readme.py::"
    "test_the_cluster_commands_match_the_manifests",
    r"^kubectl apply -k manifests/overlays/\w+$": "tests/workflows/test_kustomize.py::"
    "test_every_rendered_document_validates",
    r"^argo submit .*--from workflowtemplate/.*": "tests/test_readme.py::"
    "test_argo_submit_in_the_readme_is_the_request_mlops_submit_validates",
}


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def readme_commands() -> list[str]:
    lines = []
    for block in sh_blocks():
        for line in block.splitlines():
            command = _strip_comment(line).strip()
            if command:
                lines.append(command)
    return lines


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` inside quotes or `$(...)` is not one)."""
    match = re.search(r"\s#\s", line)
    return line[: match.start()] if match else line


def setup_commands() -> tuple[str, str]:
    blocks = [b.strip() for b in sh_blocks()]
    main_job = next(b for b in blocks if b.endswith("mlops demo"))
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
    assert "'.[dev]'" not in main_job, "the main job needs no test dependencies"


# Cluster commands have no `mlops` words to look for: the words of their offline equivalent.
OFFLINE_WORDS: dict[str, tuple[str, ...]] = {
    r"^kubectl apply -k manifests/overlays/\w+$": ("kustomize", "overlays"),
}
# A test that reads the README's commands runs them as written.
README_READERS = {"readme_commands", "_readme_command", "setup_commands", "mlops_invocations", "README"}


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_is_exercised_by_a_test(command: str) -> None:
    """Mapped to one test, which (with the fixtures and helpers it uses) names the command's words: its
    subcommand, options and `-p` parameters. A test that stops running the command fails here, not only one
    whose name disappears."""
    matches = [(pattern, test) for pattern, test in EXERCISED_BY.items() if re.search(pattern, command)]
    assert len(matches) == 1, f"README command with {len(matches)} tests mapped (want 1): {command}"
    pattern, test = matches[0]
    path, _, name = test.partition("::")
    functions = _functions(ROOT / path)
    assert name in functions, f"{test} does not exist (it should exercise `{command}`)"
    used = _tokens(name, functions)
    if used & README_READERS:
        return
    wanted = OFFLINE_WORDS.get(pattern) or command_words(command)
    assert wanted, f"`{command}`: no words to look for in {test}; map it in OFFLINE_WORDS"
    missing = [w for w in wanted if w not in used]
    assert not missing, f"{test} no longer runs `{command}`: it never names {missing}"


def command_words(command: str) -> list[str]:
    """An `mlops` invocation's subcommand (up to two words), its options and its `-p` parameter names."""
    for part in command.split("&&"):
        words = shlex.split(part.strip())
        if not words or not words[0].endswith("mlops"):
            continue
        args = words[1:]
        path = [a for a in args[: next((i for i, a in enumerate(args) if a.startswith("-")), len(args))]][:2]
        options: list[str] = []
        for i, arg in enumerate(args):
            if arg.startswith("--"):
                options.append(arg.split("=", 1)[0])
            elif arg == "-p" and i + 1 < len(args):
                options += ["-p", args[i + 1].split("=", 1)[0]]
        return path + options
    return []


def _functions(test_file: Path) -> dict[str, ast.FunctionDef]:
    """Every function a test can lean on: its module's, the conftest.py files above it, tests/support's."""
    files = [test_file, *(p / "conftest.py" for p in test_file.parents if ROOT / "tests" in (p, *p.parents)),
             *(ROOT / "tests" / "support").rglob("*.py")]
    found: dict[str, ast.FunctionDef] = {}
    for path in reversed(files):  # the test's own module last: its names win
        if path.is_file():
            found.update({n.name: n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)})
    return found


def _tokens(name: str, functions: dict[str, ast.FunctionDef]) -> set[str]:
    """The words, names and attributes of `name` and of every fixture or helper it reaches (fixtures by
    parameter name, helpers by call)."""
    seen, todo, words = set(), [name], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        node = functions[current]
        todo += [a.arg for a in node.args.args]
        for child in ast.walk(node):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                words.update(child.value.replace("=", " ").split())
            elif isinstance(child, ast.Name):
                words.add(child.id)
                todo.append(child.id)
            elif isinstance(child, ast.Attribute):
                words.add(child.attr)
    return words


def mlops_invocations() -> list[list[str]]:
    found = []
    for command in readme_commands():
        for part in command.split("&&"):
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
    if path[:1] in (["run"], ["submit"]):
        path = path[:1]  # `run training`: `training` is the template, not a subcommand
    proc = subprocess.run([sys.executable, "-m", "workflows.cli", *path, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"`mlops {' '.join(path)} --help` failed:\n{proc.stderr}"
    for option in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert option in proc.stdout, f"`mlops {' '.join(path)}` has no option {option}"


def _mlops(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workflows.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_cheap_readme_commands_run(tmp_path: Path, schemas_dir: Path) -> None:
    """Run as written (from the checkout), outputs into a scratch folder."""
    cheap = ("data generate", "registry list", "compile --check", "lint", "submit")
    ran = []
    for args in mlops_invocations():
        joined = " ".join(args)
        if not joined.startswith(cheap):
            continue
        if args[:2] == ["data", "generate"]:
            args = [*args[:-1], str(tmp_path / args[-1])]  # --out into the scratch folder
            args[args.index("--rows") + 1] = "2000"
        if args[:2] == ["registry", "list"]:
            args = [*args, "--registry", str(tmp_path / "registry")]
        proc = _mlops(args, ROOT)
        assert proc.returncode == 0, f"`mlops {joined}`:\n{proc.stdout}\n{proc.stderr}"
        ran.append(joined)
    assert {r.split(" -")[0] for r in ran} >= {"data generate", "registry list", "compile", "lint", "submit training"}


def _readme_command(prefix: str) -> str:
    return next(c for c in readme_commands() if c.startswith(prefix))


def test_the_cluster_commands_match_the_manifests() -> None:
    """The namespace and the Secrets (names and keys) the README creates are the ones the rendered tree reads."""
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests/overlays/production")],
                              capture_output=True, text=True, check=False)
    if rendered.returncode != 0 and "not found" in rendered.stderr + str(rendered.args):
        pytest.skip("kubectl is not installed")
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    namespace = _readme_command("kubectl create namespace").split()[-1]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {namespace}
    wanted: dict[str, set[str]] = {}
    for command in readme_commands():
        if command.startswith(f"kubectl -n {namespace} create secret generic"):
            words = shlex.split(command)
            name = words[words.index("generic") + 1]
            wanted[name] = {w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")}
    used: dict[str, set[str]] = {}
    for ref in _secret_refs(docs):
        used.setdefault(ref[0], set()).add(ref[1])
    assert set(wanted) == set(used), (wanted, used)
    for name, keys in used.items():
        assert keys <= wanted[name], f"the manifests read {name} keys {keys - wanted[name]} the README never sets"


def _secret_refs(node: Any) -> list[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef, and the webhook's authSecret, in the documents."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "authSecret") and isinstance(value, dict):
                found.append((value["name"], value["key"]))
            else:
                found += _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _secret_refs(item)
    return found


def test_argo_submit_in_the_readme_is_the_request_mlops_submit_validates(schemas_dir: Path) -> None:
    """`argo submit --from workflowtemplate/T -p k=v` creates a Workflow referring to T with those parameters:
    `mlops submit --dry-run` builds exactly that request, checked against the Workflow schema before printing."""
    words = shlex.split(_readme_command("argo submit"))
    template = next(w for w in words if w.startswith("workflowtemplate/")).split("/", 1)[1]
    namespace = words[words.index("-n") + 1]
    parameters = [words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "-p"]
    model = template.removesuffix("-training")
    proc = _mlops(["submit", "training", "--model", model, "-n", namespace, "--dry-run", "--schemas",
                   str(schemas_dir), *[a for p in parameters for a in ("-p", f"{p}=x")]], ROOT)
    assert proc.returncode == 0, proc.stderr
    workflow = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Workflow")
    assert workflow["spec"]["workflowTemplateRef"] == {"name": template}
    assert workflow["metadata"]["namespace"] == namespace
    assert [p["name"] for p in workflow["spec"]["arguments"]["parameters"]] == parameters


def test_the_check_notices_a_test_that_no_longer_runs_its_command(tmp_path: Path) -> None:
    """What `test_every_readme_command_is_exercised_by_a_test` relies on: a test's words, through its fixtures."""
    module = tmp_path / "test_x.py"
    module.write_text(textwrap.dedent("""\
        import pytest

        @pytest.fixture
        def served(tmp_path):
            return run(["serve", "--model", "m@production", "--port", "8080"])

        def test_runs_it(served):
            assert served

        def test_stopped_running_it():
            assert run(["serve", "--model", "m@3"])
        """))
    functions = _functions(module)
    wanted = command_words(".venv/bin/mlops serve --model fraud-detection@production --port 8080")
    assert wanted == ["serve", "--model", "--port"]
    assert set(wanted) <= _tokens("test_runs_it", functions)
    assert "--port" not in _tokens("test_stopped_running_it", functions)
    assert command_words(".venv/bin/mlops run training -p dataset=data.csv") == ["run", "training", "-p", "dataset"]


def test_every_alert_s_runbook_is_a_readme_section() -> None:
    """Each alert of the rendered PrometheusRule links its runbook: a `#### <AlertName>` section of this README,
    under "Operating it", which GitHub anchors as the name in lower case."""
    rule = yaml.safe_load((ROOT / "manifests" / "generated" / "_monitoring" / "prometheusrule.yaml").read_text())
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]
    assert alerts
    operating = README[README.index("\n## Operating it\n"):]
    operating = operating[:operating.index("\n## ", 1)]
    headings = set(re.findall(r"^#### (\w+)$", operating, flags=re.MULTILINE))
    for r in alerts:
        url = r["annotations"]["runbook_url"]
        assert url.endswith("/README.md#" + r["alert"].lower()), url
        assert r["alert"] in headings, f"{r['alert']}: no README section for its runbook"
    assert headings == {r["alert"] for r in alerts}, "a runbook for an alert that no longer exists"
