"""The local runner executes the YAML on disk as Argo would: substitution, artifacts, depends, when, retries,
deadlines, parallelism, and a refusal, by name, of what it cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.workflows import Ran, container, run_file, workflow
from workflows.local.runner import RunnerError

# A task that records when it ran: argv[1] is a file name, the times go to <name>.times.
STAMP = ("import sys, time; t0 = time.time(); time.sleep(float(sys.argv[2])); "
         "open(sys.argv[1] + '.times', 'w').write(f'{t0} {time.time()}')")


def times(folder: Path, name: str) -> tuple[float, float]:
    start, end = (folder / f"{name}.times").read_text().split()
    return float(start), float(end)


def stamp_task(name: str, sleep: float = 0.0, **extra: object) -> dict[str, object]:
    return {"name": name, "template": "stamp",
            "arguments": {"parameters": [{"name": "id", "value": name}, {"name": "sleep", "value": str(sleep)}]},
            **extra}


STAMP_TEMPLATE = container("stamp", STAMP, args=["{{inputs.parameters.id}}", "{{inputs.parameters.sleep}}"],
                           inputs={"parameters": [{"name": "id"}, {"name": "sleep"}]})


@pytest.fixture
def run_yaml(tmp_path: Path):
    """Write documents to tmp/workflow.yaml and run them from disk."""

    def run(*docs: dict[str, Any], params: dict[str, str] | None = None,
            config_maps: dict[str, dict[str, str]] | None = None) -> Ran:
        path = tmp_path / "workflow.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        return run_file(path, tmp_path, params, config_maps)

    return run


def test_parameters_and_artifacts_flow_from_task_to_task(run_yaml, tmp_path):
    produce = container(
        "produce",
        "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/greeting.txt', 'w').write(sys.argv[3]);"
        "open(sys.argv[2], 'w').write(sys.argv[3].upper() + '\\n')",
        args=["{{outputs.artifacts.box.path}}", "{{outputs.parameters.shout.path}}", "{{inputs.parameters.word}}"],
        inputs={"parameters": [{"name": "word"}]},
        outputs={"artifacts": [{"name": "box", "path": "/tmp/box"}],
                 "parameters": [{"name": "shout", "valueFrom": {"path": "/tmp/shout"}}]},
    )
    produce["container"]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    consume = container(
        "consume",
        "import sys; open(sys.argv[3], 'w').write(sys.argv[1] + ' ' + open(sys.argv[2] + '/greeting.txt').read())",
        args=["{{inputs.parameters.shout}}", "{{inputs.artifacts.box.path}}", "{{outputs.parameters.both.path}}"],
        inputs={"parameters": [{"name": "shout"}], "artifacts": [{"name": "box", "path": "/in/box"}]},
        outputs={"parameters": [{"name": "both", "valueFrom": {"path": "/out/both"}}]},
    )
    tasks = [
        {"name": "a", "template": "produce",
         "arguments": {"parameters": [{"name": "word", "value": "{{workflow.parameters.word}}"}]}},
        {"name": "b", "template": "consume", "depends": "a",
         "arguments": {"parameters": [{"name": "shout", "value": "{{tasks.a.outputs.parameters.shout}}"}],
                       "artifacts": [{"name": "box", "from": "{{tasks.a.outputs.artifacts.box}}"}]}},
    ]
    doc = workflow(tasks, [produce, consume], arguments={"parameters": [{"name": "word", "value": "hello"}]},
                   volumes=[{"name": "tmp", "emptyDir": {}}])
    ran = run_yaml(doc, params={"word": "bonjour"})
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.task("a").parameters == {"shout": "BONJOUR"}
    assert ran.task("b").parameters == {"both": "BONJOUR bonjour"}
    # The artifact is the producer's output, inside its own emptyDir /tmp, in the run folder.
    box = Path(ran.task("a").artifacts["box"])
    assert box == ran.result.run_dir / "tasks" / "a" / "tmp" / "box"
    assert (box / "greeting.txt").read_text() == "bonjour"


def test_depends_and_dependencies_order_the_tasks(run_yaml, tmp_path):
    tasks = [stamp_task("a", 0.2), stamp_task("b", depends="a"), stamp_task("c", dependencies=["a", "b"])]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE]))
    assert ran.result.phase == "Succeeded", ran.output
    assert times(tmp_path, "b")[0] >= times(tmp_path, "a")[1]
    assert times(tmp_path, "c")[0] >= times(tmp_path, "b")[1]


def test_independent_tasks_run_at_the_same_time(run_yaml, tmp_path):
    tasks = [stamp_task("left", 1.0), stamp_task("right", 1.0), stamp_task("join", depends="left && right")]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE]))
    assert ran.result.phase == "Succeeded", ran.output
    (l0, l1), (r0, r1) = times(tmp_path, "left"), times(tmp_path, "right")
    assert l0 < r1 and r0 < l1, "left and right did not overlap"
    assert times(tmp_path, "join")[0] >= max(l1, r1)


def test_parallelism_limits_how_many_tasks_run_at_once(run_yaml, tmp_path):
    tasks = [stamp_task("left", 0.5), stamp_task("right", 0.5)]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE], parallelism=1))
    assert ran.result.phase == "Succeeded", ran.output
    (l0, l1), (r0, r1) = times(tmp_path, "left"), times(tmp_path, "right")
    assert l1 <= r0 or r1 <= l0


def test_when_false_skips_the_task_and_its_dependents_still_run(run_yaml, tmp_path):
    tasks = [
        stamp_task("a"),
        stamp_task("b", depends="a", when="'{{workflow.parameters.mode}}' == 'full'"),
        stamp_task("c", depends="b"),
    ]
    doc = workflow(tasks, [STAMP_TEMPLATE], arguments={"parameters": [{"name": "mode", "value": "quick"}]})
    ran = run_yaml(doc)
    assert ran.phases == {"a": "Succeeded", "b": "Skipped", "c": "Succeeded"}
    assert not (tmp_path / "b.times").exists()
    assert ran.result.phase == "Succeeded"
    assert run_yaml(doc, params={"mode": "full"}).phases["b"] == "Succeeded"


def test_when_compares_a_task_output_parameter(run_yaml):
    decide = container("decide", "import sys; open(sys.argv[1], 'w').write('false')",
                       args=["{{outputs.parameters.ok.path}}"],
                       outputs={"parameters": [{"name": "ok", "valueFrom": {"path": "/out/ok"}}]})
    tasks = [{"name": "decide", "template": "decide"},
             stamp_task("deploy", depends="decide", when="{{tasks.decide.outputs.parameters.ok}} == true"),
             stamp_task("report", depends="decide", when="{{tasks.decide.outputs.parameters.ok}} != true")]
    ran = run_yaml(workflow(tasks, [decide, STAMP_TEMPLATE]))
    assert ran.phases == {"decide": "Succeeded", "deploy": "Skipped", "report": "Succeeded"}


def test_a_failed_task_omits_its_dependents_and_fails_the_workflow(run_yaml, tmp_path):
    fail = container("fail", "raise SystemExit(1)")
    tasks = [{"name": "a", "template": "fail"}, stamp_task("b", depends="a"), stamp_task("c", depends="a.Failed")]
    ran = run_yaml(workflow(tasks, [fail, STAMP_TEMPLATE]))
    assert ran.phases == {"a": "Failed", "b": "Omitted", "c": "Succeeded"}
    assert ran.result.phase == "Failed" and ran.result.exit_code == 1
    assert "exit code 1" in ran.task("a").message


RETRY = container(
    "flaky",
    # Fails with the exit code given until the counter file reaches `until`, then succeeds.
    "import sys, pathlib; p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) + 1 if p.exists() else 1;"
    "p.write_text(str(n)); raise SystemExit(0 if n >= int(sys.argv[3]) else int(sys.argv[2]))",
    args=["{{inputs.parameters.counter}}", "{{inputs.parameters.code}}", "{{inputs.parameters.until}}"],
    inputs={"parameters": [{"name": "counter"}, {"name": "code"}, {"name": "until"}]},
    retryStrategy={"limit": "3", "expression": "asInt(lastRetry.exitCode) == 3",
                   "backoff": {"duration": "0.1s", "factor": "2"}},
)


@pytest.mark.parametrize(("code", "phase", "attempts"), [(3, "Succeeded", 3), (1, "Failed", 1)],
                         ids=["exit-3-is-retried", "exit-1-is-not"])
def test_retry_strategy_retries_only_the_transient_exit_code(run_yaml, tmp_path, code, phase, attempts):
    args = [{"name": "counter", "value": "count"}, {"name": "code", "value": str(code)},
            {"name": "until", "value": "3"}]
    ran = run_yaml(workflow([{"name": "t", "template": "flaky", "arguments": {"parameters": args}}], [RETRY]))
    assert ran.task("t").phase == phase, ran.output
    assert ran.task("t").attempts == attempts
    assert (tmp_path / "count").read_text() == str(attempts)


def test_retries_stop_at_the_limit(run_yaml, tmp_path):
    args = [{"name": "counter", "value": "count"}, {"name": "code", "value": "3"}, {"name": "until", "value": "99"}]
    ran = run_yaml(workflow([{"name": "t", "template": "flaky", "arguments": {"parameters": args}}], [RETRY]))
    assert ran.task("t").phase == "Failed"
    assert ran.task("t").attempts == 4  # the first attempt and limit=3 retries
    assert "retrying" in ran.output


def test_active_deadline_kills_the_task_and_its_children(run_yaml, tmp_path):
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            "open('child.pid', 'w').write(str(child.pid)); time.sleep(60)")
    slow = container("slow", code, activeDeadlineSeconds="1")
    began = time.monotonic()
    ran = run_yaml(workflow([{"name": "t", "template": "slow"}], [slow]))
    assert time.monotonic() - began < 15
    assert ran.task("t").phase == "Failed"
    assert "activeDeadlineSeconds" in ran.task("t").message
    child = int((tmp_path / "child.pid").read_text())
    assert not _alive(child), "the task's child process survived the deadline"


def test_workflow_deadline_stops_the_run(run_yaml):
    slow = container("slow", "import time; time.sleep(60)")
    tasks = [{"name": "t", "template": "slow"}, stamp_task("after", depends="t")]
    began = time.monotonic()
    ran = run_yaml(workflow(tasks, [slow, STAMP_TEMPLATE], activeDeadlineSeconds=1))
    assert time.monotonic() - began < 15
    assert ran.result.phase == "Failed" and "activeDeadlineSeconds" in ran.result.message
    assert ran.phases == {"t": "Failed", "after": "Omitted"}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["spec"]["templates"].append({"name": "s", "script": {"image": "x", "source": "x"}}) or
         d["spec"]["templates"][-2]["dag"]["tasks"].append({"name": "s", "template": "s"}), "script templates"),
        (lambda d: d["spec"]["templates"][-1]["dag"]["tasks"][0].update(withItems=[1, 2]), "withItems loops"),
        (lambda d: d["spec"].update(onExit="stamp"), "onExit"),
        (lambda d: d["spec"]["templates"][0].update(memoize={"key": "k"}), "memoize"),
        (lambda d: d["spec"]["templates"][0]["container"].update(command=["sh", "-c", "true"]), "'sh'"),
        (lambda d: d["spec"]["templates"][0]["container"].update(
            env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]), "fieldRef"),
    ],
    ids=["script", "withItems", "onExit", "memoize", "shell-command", "env-fieldRef"],
)
def test_unsupported_features_are_refused_by_name_before_anything_runs(run_yaml, tmp_path, change, named):
    doc = workflow([stamp_task("a")], [STAMP_TEMPLATE])
    change(doc)
    with pytest.raises(RunnerError, match="does not support") as err:
        run_yaml(doc)
    assert named in str(err.value)
    assert not (tmp_path / "a.times").exists()


def test_unknown_parameter_is_an_error(run_yaml):
    doc = workflow([stamp_task("a")], [STAMP_TEMPLATE], arguments={"parameters": [{"name": "mode", "value": "x"}]})
    with pytest.raises(RunnerError, match=r"no parameter 'mood' \(parameters: mode\)"):
        run_yaml(doc, params={"mood": "y"})


def test_env_comes_from_values_config_maps_and_the_local_environment(run_yaml, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "from-my-shell")
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    show = container("show", "import os, json; json.dump({k: os.environ.get(k) for k in "
                             "['ACTOR', 'REGISTRY', 'ENDPOINT', 'TOKEN', 'MISSING_SECRET']}, open('env.json', 'w'))")
    show["container"]["env"] = [
        {"name": "ACTOR", "value": "argo:{{workflow.name}}"},
        {"name": "REGISTRY", "valueFrom": {"configMapKeyRef": {"name": "mlops-config", "key": "registry"}}},
        {"name": "ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "mlops-config", "key": "endpoint",
                                                               "optional": True}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "token", "optional": True}}},
        {"name": "MISSING_SECRET", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "x", "optional": True}}},
    ]
    ran = run_yaml(workflow([{"name": "t", "template": "show"}], [show]),
                   config_maps={"mlops-config": {"registry": "/somewhere/registry"}})
    assert ran.result.phase == "Succeeded", ran.output
    env = json.loads((tmp_path / "env.json").read_text())
    assert env == {"ACTOR": f"argo:{ran.result.name}", "REGISTRY": "/somewhere/registry", "ENDPOINT": None,
                   "TOKEN": "from-my-shell", "MISSING_SECRET": None}


def test_a_required_secret_missing_locally_is_an_error_naming_the_variable(run_yaml, monkeypatch):
    monkeypatch.delenv("API_KEY", raising=False)
    show = container("show", "pass")
    show["container"]["env"] = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    ran = run_yaml(workflow([{"name": "t", "template": "show"}], [show]))
    assert ran.task("t").phase == "Error"
    assert "$API_KEY" in ran.task("t").message


def test_mount_paths_map_into_the_run_folder(run_yaml, tmp_path):
    read = container("read", "import sys; open(sys.argv[2] + '/copy', 'w').write(open(sys.argv[1]).read())",
                     args=["{{inputs.parameters.config}}", "/scratch"],
                     inputs={"parameters": [{"name": "config", "value": "/etc/app/settings.yaml"}]})
    read["container"]["volumeMounts"] = [{"name": "settings", "mountPath": "/etc/app"},
                                         {"name": "scratch", "mountPath": "/scratch"}]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"},
                  "data": {"settings.yaml": "threshold: 0.5\n"}}
    doc = workflow([{"name": "t", "template": "read"}], [read],
                   volumes=[{"name": "settings", "configMap": {"name": "app-settings"}},
                            {"name": "scratch", "emptyDir": {}}])
    ran = run_yaml(doc, config_map)
    assert ran.result.phase == "Succeeded", ran.output
    assert (ran.result.run_dir / "tasks" / "t" / "scratch" / "copy").read_text() == "threshold: 0.5\n"


def test_a_local_parameter_is_never_rewritten_as_a_container_path(run_yaml, tmp_path):
    # tmp_path is usually under /tmp, which this template mounts: the local file must still be read.
    data = tmp_path / "data.txt"
    data.write_text("local bytes")
    read = container("read", "import sys; open('seen.txt', 'w').write(open(sys.argv[1]).read())",
                     args=["{{workflow.parameters.data}}"])
    read["container"]["volumeMounts"] = [{"name": "tmp", "mountPath": str(tmp_path.parent)}]
    doc = workflow([{"name": "t", "template": "read"}], [read], volumes=[{"name": "tmp", "emptyDir": {}}],
                   arguments={"parameters": [{"name": "data", "value": "unused"}]})
    ran = run_yaml(doc, params={"data": str(data)})
    assert ran.result.phase == "Succeeded", ran.output
    assert (tmp_path / "seen.txt").read_text() == "local bytes"


def test_an_unresolved_variable_errors_the_task_naming_it(run_yaml):
    echo = container("echo", "pass", args=["{{workflow.parameters.nope}}"])
    ran = run_yaml(workflow([{"name": "t", "template": "echo"}], [echo]))
    assert ran.task("t").phase == "Error"
    assert "{{workflow.parameters.nope}}" in ran.task("t").message


def test_the_runner_follows_the_yaml_on_disk(run_yaml, tmp_path):
    """Editing the YAML file changes what runs: a dependency and a `when`."""
    fail = container("fail", "raise SystemExit(1)")
    tasks = [{"name": "a", "template": "fail"}, stamp_task("b", depends="a"), stamp_task("c", when="true")]
    ran = run_yaml(workflow(tasks, [fail, STAMP_TEMPLATE]))
    assert ran.phases == {"a": "Failed", "b": "Omitted", "c": "Succeeded"}
    path = ran.path
    text = path.read_text()
    edited = text.replace("depends: a\n", "depends: a.Failed\n").replace("when: 'true'", "when: 'false'")
    assert edited != text
    path.write_text(edited)
    again = run_file(path, tmp_path)
    assert again.phases == {"a": "Failed", "b": "Succeeded", "c": "Skipped"}
    assert (again.result.run_dir / "workflow.yaml").exists() is False  # run_file runs the file itself


def test_run_json_records_every_task(run_yaml):
    ran = run_yaml(workflow([stamp_task("a"), stamp_task("b", depends="a")], [STAMP_TEMPLATE]))
    state = json.loads((ran.result.run_dir / "run.json").read_text())
    assert state["phase"] == "Succeeded"
    assert {name: t["phase"] for name, t in state["tasks"].items()} == {"a": "Succeeded", "b": "Succeeded"}
    assert Path(state["tasks"]["a"]["log"]).name == "log"


def test_ctrl_c_kills_running_tasks_and_exits_130(tmp_path):
    slow = container("slow", "import os, time; open('task.pid', 'w').write(str(os.getpid())); time.sleep(60)")
    doc = workflow([{"name": "t", "template": "slow"}], [slow])
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-P", "-m", "workflows", "run", "--from", "wf.yaml"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_file = tmp_path / "task.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists(), "the task never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Interrupted" in out
    assert not _alive(int(pid_file.read_text()))
    (state_file,) = (tmp_path / ".mlops" / "runs").glob("*/run.json")
    assert json.loads(state_file.read_text())["phase"] == "Interrupted"


def _alive(pid: int) -> bool:
    time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
