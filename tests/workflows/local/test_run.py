"""`mlops run training`: renders the model's template into a run folder and runs that YAML on the local engine.

The steps here are stand-ins written to tmp (a `steps` package in the current folder shadows the real one
for `python -m steps.<name>`, as `mlops run` puts the current folder first on PYTHONPATH); each parses exactly the
command line of docs/steps.md, so these tests check the wiring of the real template: flags, paths, artifacts,
output parameters, env, the summary. What a stand-in wants a test to see it writes to $FAKE_OUT (the project
folder, which every container of our own templates sees).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from steps._core.policy import builtin_policy_dir, load_policy
from workflows.local import run

FAKE_STEPS = {
    "__init__.py": "",
    "validate.py": '''
import argparse, json, os, sys
p = argparse.ArgumentParser()
for flag in ("--dataset", "--policy", "--out", "--report"):
    p.add_argument(flag, required=True)
a = p.parse_args()
print("policy:", a.policy)
assert os.path.isfile(a.policy), a.policy
os.makedirs(a.out)
with open(os.path.join(a.out, "data.parquet"), "wb") as dst:
    # The reference policy's data.source names generated data; another dataset is a file
    dst.write(a.dataset.encode() if a.dataset.startswith("generate:") else open(a.dataset, "rb").read(64))
json.dump({"passed": True, "dataset": a.dataset}, open(a.report, "w"))
''',
    "train.py": '''
import argparse, json, os
p = argparse.ArgumentParser()
for flag in ("--data", "--policy", "--bundle", "--holdout"):
    p.add_argument(flag, required=True)
for flag in ("--git-commit", "--reason", "--drifted-features", "--fingerprint-out"):
    p.add_argument(flag)
a = p.parse_args()
assert os.path.isfile(os.path.join(a.data, "data.parquet"))
os.makedirs(a.bundle)
json.dump({"git_commit": a.git_commit, "reason": a.reason, "drifted_features": json.loads(a.drifted_features)},
          open(os.path.join(a.bundle, "bundle.json"), "w"))
open(a.holdout, "w").write("holdout")
open(a.fingerprint_out, "w").write("f1ngerprint\\n")
''',
    "gate.py": '''
import argparse, json, os, sys
p = argparse.ArgumentParser()
for flag in ("--bundle", "--holdout", "--policy", "--report-dir", "--passed-out"):
    p.add_argument(flag, required=True)
p.add_argument("--registry")
p.add_argument("--baseline-version")
p.add_argument("--failed-out")
a = p.parse_args()
assert os.path.isfile(os.path.join(a.bundle, "bundle.json")) and os.path.isfile(a.holdout)
passed = os.environ.get("FAKE_VERDICT", "passed") == "passed"
os.makedirs(a.report_dir)
report = {"model": "fraud-detection", "passed": passed, "candidate": {"accuracy": 0.97, "pr_auc": 0.71},
          "baseline": None, "failed": [] if passed else ["pr_auc"],
          "gates": [{"name": "accuracy", "passed": True, "value": 0.97, "bound": 0.92, "bound_kind": "minimum"},
                    {"name": "pr_auc", "passed": passed, "value": 0.71, "bound": 0.5 if passed else 0.8,
                     "bound_kind": "minimum"}]}
json.dump(report, open(os.path.join(a.report_dir, "gate.json"), "w"))
open(os.path.join(a.report_dir, "index.html"), "w").write("<html></html>")
open(a.passed_out, "w").write("true" if passed else "false")
if a.failed_out:
    open(a.failed_out, "w").write("none" if passed else "pr_auc")
''',
    "register.py": '''
import argparse, json, os, sys
p = argparse.ArgumentParser()
for flag in ("--bundle", "--gate-report", "--model"):
    p.add_argument(flag, required=True)
for flag in ("--registry", "--git-commit", "--reason", "--version-out", "--registry-report-out"):
    p.add_argument(flag)
a = p.parse_args()
report = json.load(open(a.gate_report))
if a.registry_report_out:
    os.makedirs(a.registry_report_out, exist_ok=True)
    open(os.path.join(a.registry_report_out, "index.html"), "w").write("<html></html>")
json.dump({"model": a.model, "env_registry": os.environ["MLOPS_REGISTRY"], "actor": os.environ["MLOPS_ACTOR"],
           "passed": report["passed"], "commit": a.git_commit},
          open(os.path.join(os.environ["FAKE_OUT"], "registered.json"), "w"))
open(a.version_out, "w").write("7")
sys.exit(0 if report["passed"] else 1)
''',
    "rollout.py": '''
import argparse, json, os
p = argparse.ArgumentParser()
for flag in ("--model", "--version", "--target"):
    p.add_argument(flag, required=True)
for flag in ("--registry", "--policy", "--namespace", "--timeout", "--time-scale", "--outcome-out"):
    p.add_argument(flag)
a = p.parse_args()
assert os.path.isfile(a.policy), a.policy
if a.outcome_out:
    open(a.outcome_out, "w").write("promoted")
json.dump({"model": a.model, "version": a.version, "target": a.target, "time_scale": a.time_scale},
          open(os.path.join(os.environ["FAKE_OUT"], "rolled-out.json"), "w"))
''',
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder (no gates/: the packaged policy applies) holding the stand-in steps; the current folder."""
    steps = tmp_path / "steps"
    steps.mkdir()
    for name, text in FAKE_STEPS.items():
        (steps / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_REGISTRY", raising=False)
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    return tmp_path


@pytest.fixture
def dataset_csv(project: Path, dataset_csv: Path) -> Path:
    """The session's dataset, given as a path relative to the project folder (`mlops run` makes it absolute)."""
    shutil.copy(dataset_csv, project / "transactions.csv")
    return Path("transactions.csv")


def _state(project: Path) -> dict:
    (path,) = sorted((project / ".mlops" / "runs").glob("*/run.json"))[-1:]
    return json.loads(path.read_text())


def test_run_training_generates_data_runs_the_rendered_yaml_and_summarises(project, capsys):
    assert run.main(["training", "-p", "git-commit=abc123"]) == 0
    out = capsys.readouterr().out
    state = _state(project)
    assert state["phase"] == "Succeeded"
    assert {n: t["phase"] for n, t in state["tasks"].items()} == dict.fromkeys(
        ["validate", "train", "gate", "register", "rollout", f"{state['name']}.onExit"], "Succeeded")
    # Locally the rollout task deploys to the local deployment, with the canary's waits shortened.
    assert json.loads((project / "rolled-out.json").read_text()) == {
        "model": "fraud-detection", "version": "7", "target": "local", "time_scale": run.LOCAL_ROLLOUT_TIME_SCALE}
    assert state["tasks"]["train"]["outputs"]["parameters"] == {"fingerprint": "f1ngerprint"}
    assert state["tasks"]["gate"]["outputs"]["parameters"] == {"passed": "true", "failed-gates": "none"}
    # The Workflow as Argo would hold it: labelled by its exit handler's patch, titled, with the DAG's outputs
    assert {k: state["labels"][k] for k in ("argo-mlops.io/version", "argo-mlops.io/result",
                                            "argo-mlops.io/trigger", "workflows.argoproj.io/phase")} == {
        "argo-mlops.io/version": "7", "argo-mlops.io/result": "promoted", "argo-mlops.io/trigger": "manual",
        "workflows.argoproj.io/phase": "Succeeded"}
    assert state["outputs"]["parameters"]["version"] == "7"
    title = state["annotations"]["workflows.argoproj.io/title"]
    assert re.search(rf"^Title: +{re.escape(title)}$", out, flags=re.MULTILINE), out
    run_dir = Path(state["tasks"]["register"]["log"]).parents[2]  # <run>/pods/<pod>/log
    # The YAML that ran is the rendered template; no -p dataset: the policy's data.source, generated data.
    docs = yaml.safe_load_all((run_dir / "workflow.yaml").read_text())
    doc = next(d for d in docs if d["kind"] == "WorkflowTemplate")
    assert doc["metadata"]["name"] == "fraud-detection-training"
    assert state["parameters"]["dataset"] == load_policy(builtin_policy_dir() / "fraud-detection.yaml").data.source
    assert state["parameters"]["dataset"].startswith("generate:fraud-detection?rows=")
    registered = json.loads((project / "registered.json").read_text())
    assert registered == {"model": "fraud-detection", "env_registry": str(project / ".mlops" / "registry"),
                          "actor": f"argo:{state['name']}", "passed": True, "commit": "abc123"}
    assert "Registered: fraud-detection v7 (staged)" in out
    assert "Rollout: fraud-detection v7 promoted to production" in out
    assert "Gate: PASSED" in out and "accuracy=0.97" in out
    assert "gate.gate-report" in out and "index.html" in out
    # the run's page, beside run.json (workflows/local/runpage.py)
    page = re.search(r"^Run page: (\S+)$", out, flags=re.MULTILINE)
    assert page is not None and Path(page.group(1)).resolve() == (run_dir / "run.html").resolve(), out
    assert (run_dir / "run.html").is_file()
    # Argo's node tree, as `argo get` prints it, before the summary.
    tree = out[out.index("STEP "):out.index("Registered:")]
    assert re.search(rf"^ ✔ {state['name']} +training$", tree, flags=re.MULTILINE), tree
    # Children in start order, whole seconds as Argo stores them; ties by name (cmd/argo/commands/common/get.go)
    # A task with a retryStrategy is a Retry node; its one attempt is shown as `validate(0)`.
    assert re.search(rf"^ [├└]─✔ validate\(0\) +validate +{state['name']}-validate-\d+ +\d+s$", tree,
                     flags=re.MULTILINE), tree
    assert len(re.findall(r"^ [├└]─✔ ", tree, flags=re.MULTILINE)) == 5, tree


def test_the_rollout_time_scale_comes_from_the_environment_unless_given(project, dataset_csv, monkeypatch):
    monkeypatch.setenv("MLOPS_ROLLOUT_TIME_SCALE", "1")
    assert run.main(["training", "-p", f"dataset={dataset_csv}"]) == 0
    assert json.loads((project / "rolled-out.json").read_text())["time_scale"] == "1"
    assert run.main(["training", "-p", f"dataset={dataset_csv}", "-p", "rollout-time-scale=0.5"]) == 0
    assert json.loads((project / "rolled-out.json").read_text())["time_scale"] == "0.5"


def test_a_rejected_candidate_is_registered_and_the_run_fails(project, capsys, tmp_path, dataset_csv, monkeypatch):
    monkeypatch.setenv("FAKE_VERDICT", "rejected")
    assert run.main(["training", "-p", f"dataset={dataset_csv}", "--registry", str(tmp_path / "reg")]) == 1
    out = capsys.readouterr().out
    state = _state(project)
    assert state["phase"] == "Failed"
    assert state["tasks"]["register"]["phase"] == "Failed"
    assert json.loads((project / "registered.json").read_text())["env_registry"] == str(tmp_path / "reg")
    assert "Gate: REJECTED (failed: pr_auc)" in out
    assert re.search(r"^  FAIL +pr_auc: ", out, flags=re.MULTILINE), out
    assert (state["labels"]["argo-mlops.io/result"], state["labels"]["argo-mlops.io/version"]) == ("rejected", "7")


def test_editing_the_rendered_yaml_changes_what_runs(project, dataset_csv, capsys):
    """The runner follows the YAML: add a `when` to register in a rendered copy and register is skipped."""
    assert run.main(["training", "-p", f"dataset={dataset_csv}"]) == 0
    state = _state(project)
    rendered = Path(state["tasks"]["register"]["log"]).parents[2] / "workflow.yaml"
    docs = list(yaml.safe_load_all(rendered.read_text()))
    template = next(d for d in docs if d["kind"] == "WorkflowTemplate")
    dag = next(t for t in template["spec"]["templates"] if "dag" in t)
    register = next(t for t in dag["dag"]["tasks"] if t["name"] == "register")
    register["when"] = "{{tasks.gate.outputs.parameters.passed}} == false"
    edited = project / "edited.yaml"
    edited.write_text(yaml.safe_dump_all(docs))
    (project / "registered.json").unlink()
    assert run.main(["--from", str(edited), "-p", f"dataset={dataset_csv}"]) == 0
    state = _state(project)
    assert {n["displayName"]: n["phase"] for n in state["nodes"].values()}["register"] == "Skipped"
    assert not (project / "registered.json").exists()


def test_from_file_uses_the_policy_config_map_mounted_from_the_same_yaml(project, dataset_csv):
    """Without -p policy, the default /etc/mlops/policy/<model>.yaml resolves to the ConfigMap volume."""
    run.main(["training", "-p", f"dataset={dataset_csv}"])
    rendered = Path(_state(project)["tasks"]["register"]["log"]).parents[2] / "workflow.yaml"
    shutil.copy(rendered, project / "copy.yaml")
    assert run.main(["--from", "copy.yaml", "-p", f"dataset={dataset_csv}"]) == 0
    log = Path(_state(project)["tasks"]["validate"]["log"]).read_text()
    assert "policy: /etc/mlops/policy/fraud-detection.yaml" in log  # the template's default, a file of the volume


def test_several_policies_and_no_model_is_an_error_listing_them(project, policy_file, capsys):
    (project / "gates").mkdir()
    shutil.copy(policy_file, project / "gates" / "fraud-detection.yaml")
    text = policy_file.read_text().replace("model_name: fraud-detection", "model_name: churn")
    (project / "gates" / "churn.yaml").write_text(text)
    assert run.main(["training"]) == 2
    assert "choose one with --model (models: churn, fraud-detection)" in capsys.readouterr().err


def test_model_option_picks_the_template(project, policy_file, dataset_csv, capsys):
    (project / "gates").mkdir()
    text = policy_file.read_text().replace("model_name: fraud-detection", "model_name: churn")
    (project / "gates" / "churn.yaml").write_text(text)
    shutil.copy(policy_file, project / "gates" / "fraud-detection.yaml")
    assert run.main(["training", "--model", "churn", "-p", f"dataset={dataset_csv}"]) == 0
    assert _state(project)["name"] == "churn-training"
    assert _state(project)["parameters"]["policy"] == str(project / "gates" / "churn.yaml")


def test_unknown_parameter_is_a_usage_error(project, capsys):
    assert run.main(["training", "-p", "datset=x.csv"]) == 2
    assert "no parameter 'datset'" in capsys.readouterr().err


def test_a_refused_workflow_leaves_no_run_folder(project, capsys):
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "loop-"},
           "spec": {"entrypoint": "main", "templates": [
               {"name": "echo", "container": {"image": "x", "command": ["python", "-c", "print(1)"]}},
               {"name": "apply", "resource": {"action": "create", "manifest": "kind: ConfigMap"}},
               {"name": "main", "dag": {"tasks": [
                   {"name": "a", "template": "echo"},
                   {"name": "b", "template": "apply", "depends": "a"}]}}]}}
    (project / "loop.yaml").write_text(yaml.safe_dump(doc))
    assert run.main(["--from", "loop.yaml"]) == 2
    err = capsys.readouterr().err
    assert "template apply resource.action: resource template with action 'create' (runs against the cluster" in err
    assert not (project / ".mlops" / "runs").exists() or not list((project / ".mlops" / "runs").iterdir())


@pytest.mark.parametrize(
    ("read", "text", "message"),
    [(run.non_negative, "x", "must be a number (got 'x')"), (run.non_negative, "-1", "must not be negative (got '-1')"),
     (run.positive, "0", "must be positive (got '0')"), (run.positive, "-2", "must be positive (got '-2')")],
    ids=["not-a-number", "negative", "zero-is-not-positive", "negative-is-not-positive"],
)
def test_number_options_name_the_rule_and_the_value(read, text, message):
    """--backoff-scale (non_negative) and `mlops submit --poll-interval` (positive) read numbers alike."""
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        read(text)
    assert run.non_negative("0") == 0.0 and run.positive("0.5") == 0.5


def test_parameters_are_name_value_pairs_split_at_the_first_equals_sign(capsys):
    assert run.parse_parameters(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    assert run.main(["training", "-p", "dataset"]) == 2
    assert "-p 'dataset': expected NAME=VALUE" in capsys.readouterr().err


def test_a_local_run_records_the_checkout_s_commit(tmp_path):
    """Inside a git work tree the training run's git-commit is the checkout's (with -dirty for local changes);
    elsewhere the template's default stands."""
    assert run.checkout_commit(tmp_path) is None
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("one")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "one"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert run.checkout_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two")
    assert run.checkout_commit(tmp_path) == f"{head}-dirty"


# --- mlops run --from on the new engine -----------------------------------------------------------------------

APPROVAL = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "approval"},
    "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [
            [{"name": "approve", "template": "approve"}],
            [{"name": "act", "template": "act", "arguments": {"parameters": [
                {"name": "answer", "value": "{{steps.approve.outputs.parameters.answer}}"}]}}]]},
        {"name": "approve", "suspend": {}, "outputs": {"parameters": [
            {"name": "answer", "globalName": "answer", "valueFrom": {"supplied": {}, "default": "no"}}]}},
        {"name": "act", "inputs": {"parameters": [{"name": "answer"}]},
         "container": {"image": "alpine:3.20", "command": ["sh", "-c"],
                       "args": ["echo answer={{inputs.parameters.answer}}"]}}]}}


@pytest.mark.skipif(not run.api.engine_available(), reason="the new engine is not there")
def test_from_prints_argo_get_and_a_suspended_run_resumes_with_a_supplied_value(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "approval.yaml").write_text(yaml.safe_dump(APPROVAL))
    assert run.main(["--from", "approval.yaml"]) == 1  # stopped, waiting: not Succeeded
    out = capsys.readouterr().out
    run_dir = next((tmp_path / ".mlops" / "runs").iterdir())
    assert f"continue with `mlops run --resume {run_dir.relative_to(tmp_path)}`" in out
    assert re.search(r"^Status: +Running$", out, flags=re.MULTILINE), out
    assert json.loads((run_dir / "run.json").read_text())["phase"] == "Running"

    assert run.main(["--resume", str(run_dir), "--supply", "approve.answer=yes"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Status: +Succeeded$", out, flags=re.MULTILINE), out
    assert re.search(r"^Output Parameters:\n  answer: +yes$", out, flags=re.MULTILINE), out
    tree = out[out.index("STEP"):]
    assert re.search(r"^ ✔ approval +main$", tree, flags=re.MULTILINE), tree
    assert re.search(r"^ ├───✔ approve +approve$", tree, flags=re.MULTILINE), tree
    assert re.search(r"^ └───✔ act +act +approval-act-\d+ +\d+s$", tree, flags=re.MULTILINE), tree
    nodes = {n["displayName"]: n for n in json.loads((run_dir / "run.json").read_text())["nodes"].values()}
    assert nodes["approve"]["outputs"]["parameters"] == {"answer": "yes"}
    assert nodes["act"]["inputs"]["parameters"] == {"answer": "yes"}


def test_resume_of_a_folder_that_is_no_run_is_a_usage_error(tmp_path, capsys):
    assert run.main(["--resume", str(tmp_path)]) == 2
    assert "is not a run `mlops run` started" in capsys.readouterr().err


@pytest.mark.skipif(not run.api.engine_available(), reason="the new engine is not there")
def test_run_json_is_there_while_the_workflow_runs(tmp_path):
    import os
    import sys
    import time

    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "slow"}, "spec": {
        "entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "first", "template": "nap"}],
                                       [{"name": "second", "template": "nap"}]]},
            {"name": "nap", "container": {"image": "alpine", "command": ["sleep", "1.5"]}}]}}
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = subprocess.Popen([sys.executable, "-P", "-m", "workflows", "run", "--from", "slow.yaml"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        for path in tmp_path.glob(".mlops/runs/*/run.json"):  # replaced whole each time: never half-written
            seen.add(json.loads(path.read_text())["phase"])
        time.sleep(0.1)
    assert proc.wait(timeout=30) == 0
    (path,) = tmp_path.glob(".mlops/runs/*/run.json")
    seen.add(json.loads(path.read_text())["phase"])
    assert seen == {"Running", "Succeeded"}


@pytest.mark.skipif(not run.api.engine_available(), reason="the new engine is not there")
def test_ctrl_c_stops_every_pod_and_exits_130_the_workflow_failed_as_argo_stop_ends_it(tmp_path):
    import os
    import signal
    import sys
    import time

    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "long"}, "spec": {
        "entrypoint": "nap", "templates": [{"name": "nap", "container": {
            "image": "python:3.11", "command": ["python3", "-c", "import os, time; print(os.getpid(), flush=True); "
                                                                 "time.sleep(60)"]}}]}}
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = subprocess.Popen([sys.executable, "-P", "-m", "workflows", "run", "--from", "long.yaml"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, pid = time.monotonic() + 30, ""
    while not pid and time.monotonic() < deadline:  # the task's stdout, as the pod's log keeps it
        pid = "".join(p.read_text() for p in tmp_path.glob(".mlops/runs/*/pods/*/main.stdout")).strip()
        time.sleep(0.05)
    assert pid, "the task never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Interrupted" in out
    gone_by = time.monotonic() + 5
    while time.monotonic() < gone_by:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the task {pid} still runs")
    (state_file,) = tmp_path.glob(".mlops/runs/*/run.json")
    state = json.loads(state_file.read_text())
    assert (state["phase"], state["message"]) == ("Failed", "Stopped with strategy 'Stop'")
