"""`mlops run --from` runs a DAG on this machine as Argo would: parameters and artifacts from task to task, depends,
when, retries, deadlines, parallelism, env from ConfigMaps and this machine's variables, and a refusal, by name,
of what it cannot run. Each task's own files are its container's: what it reports, it reports the Argo way
(output parameters and artifacts), and what must outlive a pod lives in a volume."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.workflows import Ran, container, run_file, workflow
from workflows.local import api
from workflows.local.engine.sandbox import bwrap

pytestmark = pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")

# A task that records when it ran, as its output parameter `times`.
STAMP = ("import sys, time; t0 = time.time(); time.sleep(float(sys.argv[1])); "
         "open('/tmp/times', 'w').write(f'{t0} {time.time()}')")


def times(ran: Ran, name: str) -> tuple[float, float]:
    start, end = ran.task(name)["outputs"]["parameters"]["times"].split()
    return float(start), float(end)


def stamp_task(name: str, sleep: float = 0.0, **extra: object) -> dict[str, object]:
    return {"name": name, "template": "stamp",
            "arguments": {"parameters": [{"name": "sleep", "value": str(sleep)}]}, **extra}


STAMP_TEMPLATE = container("stamp", STAMP, args=["{{inputs.parameters.sleep}}"],
                           inputs={"parameters": [{"name": "sleep"}]},
                           outputs={"parameters": [{"name": "times", "valueFrom": {"path": "/tmp/times"}}]})
# A volume every pod of the run mounts at /state: what outlives one attempt (a counter, a pid).
STATE = {"volumeClaimTemplates": [{"metadata": {"name": "state"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}


def state_file(ran: Ran, name: str) -> Path:
    return ran.result.run_dir / "volumes" / "claims" / "state" / name


@pytest.fixture
def run_yaml(tmp_path: Path):
    """Write documents to tmp/workflow.yaml and run them from disk."""

    def run(*docs: dict[str, Any], params: dict[str, str] | None = None,
            config_maps: list[dict[str, Any]] | None = None) -> Ran:
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
        outputs={"parameters": [{"name": "both", "valueFrom": {"path": "/tmp/both"}}]},
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
    assert ran.task("a")["outputs"]["parameters"] == {"shout": "BONJOUR"}
    assert ran.task("b")["outputs"]["parameters"] == {"both": "BONJOUR bonjour"}
    # The artifact is the producer's folder, kept by the run's repository as Argo's executor archives it.
    assert ran.artifact("a", "box") == {"box/greeting.txt": b"bonjour"}


@pytest.mark.parametrize("field", ["depends", "dependencies"])
def test_depends_and_dependencies_order_the_tasks(run_yaml, field):
    after = {"depends": lambda *names: " && ".join(names), "dependencies": lambda *names: list(names)}[field]
    tasks = [stamp_task("a", 0.2), stamp_task("b", **{field: after("a")}), stamp_task("c", **{field: after("a", "b")})]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE]))
    assert ran.result.phase == "Succeeded", ran.output
    assert times(ran, "b")[0] >= times(ran, "a")[1]
    assert times(ran, "c")[0] >= times(ran, "b")[1]


def test_independent_tasks_run_at_the_same_time(run_yaml):
    tasks = [stamp_task("left", 1.5), stamp_task("right", 1.5), stamp_task("join", depends="left && right")]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE]))
    assert ran.result.phase == "Succeeded", ran.output
    (l0, l1), (r0, r1) = times(ran, "left"), times(ran, "right")
    assert l0 < r1 and r0 < l1, "left and right did not overlap"
    assert times(ran, "join")[0] >= max(l1, r1)


def test_parallelism_limits_how_many_tasks_run_at_once(run_yaml):
    tasks = [stamp_task("left", 0.5), stamp_task("right", 0.5)]
    ran = run_yaml(workflow(tasks, [STAMP_TEMPLATE], parallelism=1))
    assert ran.result.phase == "Succeeded", ran.output
    (l0, l1), (r0, r1) = times(ran, "left"), times(ran, "right")
    assert l1 <= r0 or r1 <= l0


def test_when_false_skips_the_task_and_its_dependents_still_run(run_yaml):
    tasks = [
        stamp_task("a"),
        stamp_task("b", depends="a", when="'{{workflow.parameters.mode}}' == 'full'"),
        stamp_task("c", depends="b"),
    ]
    doc = workflow(tasks, [STAMP_TEMPLATE], arguments={"parameters": [{"name": "mode", "value": "quick"}]})
    ran = run_yaml(doc)
    assert ran.phases == {"a": "Succeeded", "b": "Skipped", "c": "Succeeded"}
    assert "b" not in ran.tasks  # no pod ran
    assert ran.result.phase == "Succeeded"
    assert run_yaml(doc, params={"mode": "full"}).phases["b"] == "Succeeded"


def test_when_compares_a_task_output_parameter(run_yaml):
    decide = container("decide", "import sys; open(sys.argv[1], 'w').write('false')",
                       args=["{{outputs.parameters.ok.path}}"],
                       outputs={"parameters": [{"name": "ok", "valueFrom": {"path": "/tmp/ok"}}]})
    tasks = [{"name": "decide", "template": "decide"},
             stamp_task("deploy", depends="decide", when="{{tasks.decide.outputs.parameters.ok}} == true"),
             stamp_task("report", depends="decide", when="{{tasks.decide.outputs.parameters.ok}} != true")]
    ran = run_yaml(workflow(tasks, [decide, STAMP_TEMPLATE]))
    assert ran.phases == {"decide": "Succeeded", "deploy": "Skipped", "report": "Succeeded"}


def test_a_failed_task_omits_its_dependents_and_fails_the_workflow(run_yaml):
    fail = container("fail", "raise SystemExit(1)")
    tasks = [{"name": "a", "template": "fail"}, stamp_task("b", depends="a"), stamp_task("c", depends="a.Failed")]
    ran = run_yaml(workflow(tasks, [fail, STAMP_TEMPLATE]))
    assert ran.phases == {"a": "Failed", "b": "Omitted", "c": "Succeeded"}
    assert ran.result.phase == "Failed" and ran.result.exit_code == 1
    assert "exit code 1" in ran.task("a")["message"]


RETRY = container(
    "flaky",
    # Fails with the exit code given until the counter (in the run's volume) reaches `until`, then succeeds.
    "import sys, pathlib; p = pathlib.Path('/state/count'); n = int(p.read_text()) + 1 if p.exists() else 1;"
    "p.write_text(str(n)); raise SystemExit(0 if n >= int(sys.argv[2]) else int(sys.argv[1]))",
    args=["{{inputs.parameters.code}}", "{{inputs.parameters.until}}"],
    inputs={"parameters": [{"name": "code"}, {"name": "until"}]},
    retryStrategy={"limit": "3", "expression": "asInt(lastRetry.exitCode) == 3",
                   "backoff": {"duration": "0.1s", "factor": "2"}},
)
RETRY["container"]["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]


@pytest.mark.parametrize(("code", "phase", "attempts"), [(3, "Succeeded", 3), (1, "Failed", 1)],
                         ids=["exit-3-is-retried", "exit-1-is-not"])
def test_retry_strategy_retries_only_the_transient_exit_code(run_yaml, code, phase, attempts):
    args = [{"name": "code", "value": str(code)}, {"name": "until", "value": "3"}]
    ran = run_yaml(workflow([{"name": "t", "template": "flaky", "arguments": {"parameters": args}}], [RETRY],
                            **STATE))
    assert ran.task("t")["phase"] == phase, ran.output
    assert ran.task("t")["attempts"] == attempts
    assert state_file(ran, "count").read_text() == str(attempts)


def test_retries_stop_at_the_limit(run_yaml):
    args = [{"name": "code", "value": "3"}, {"name": "until", "value": "99"}]
    ran = run_yaml(workflow([{"name": "t", "template": "flaky", "arguments": {"parameters": args}}], [RETRY],
                            **STATE))
    assert ran.task("t")["phase"] == "Failed"
    assert ran.task("t")["attempts"] == 4  # the first attempt and limit=3 retries
    assert "t(3)" in ran.output  # each attempt is a node of its own, as in Argo


def test_active_deadline_kills_the_task_and_its_children(run_yaml):
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            "open('/state/child.pid', 'w').write(str(child.pid)); time.sleep(60)")
    slow = container("slow", code, activeDeadlineSeconds="1")
    slow["container"]["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    began = time.monotonic()
    ran = run_yaml(workflow([{"name": "t", "template": "slow"}], [slow], **STATE))
    assert time.monotonic() - began < 20
    assert ran.task("t")["phase"] == "Failed"
    assert "deadline" in ran.task("t")["message"]
    child = int(state_file(ran, "child.pid").read_text())
    assert not _alive(child), "the task's child process survived the deadline"


def test_workflow_deadline_stops_the_run(run_yaml):
    slow = container("slow", "import time; time.sleep(60)")
    tasks = [{"name": "t", "template": "slow"}, stamp_task("after", depends="t")]
    began = time.monotonic()
    ran = run_yaml(workflow(tasks, [slow, STAMP_TEMPLATE], activeDeadlineSeconds=1))
    assert time.monotonic() - began < 20
    assert ran.result.phase == "Failed", ran.output
    assert ran.phases["t"] == "Failed" and "deadline" in ran.task("t")["message"], ran.output
    assert ran.phases.get("after", "Omitted") == "Omitted"
    assert "after" not in ran.tasks


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["spec"]["templates"].append({"name": "k", "resource": {"action": "create", "manifest": "x"}}) or
         d["spec"]["templates"][-2]["dag"]["tasks"].append({"name": "k", "template": "k"}), "resource template"),
        (lambda d: d["spec"]["templates"][0]["container"].update(
            env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]), "fieldRef"),
        (lambda d: d["spec"]["templates"][0]["container"].update(
            env=[{"name": "API_KEY_NOT_SET_HERE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
         "set $API_KEY_NOT_SET_HERE"),
        (lambda d: d["spec"]["templates"][0]["container"].update(args=["{{workflow.parameters.nope}}"]),
         "{{workflow.parameters.nope}}"),
    ],
    ids=["resource-template", "env-fieldRef", "env-secret-not-set", "unresolved-variable"],
)
def test_what_cannot_run_is_refused_by_name_before_anything_runs(run_yaml, tmp_path, change, named):
    doc = workflow([stamp_task("a")], [STAMP_TEMPLATE])
    change(doc)
    with pytest.raises(api.Refused) as err:
        run_yaml(doc)
    assert named in str(err.value)
    assert not (tmp_path / ".mlops" / "runs").exists()


def test_env_comes_from_values_config_maps_and_the_local_environment(run_yaml, monkeypatch):
    monkeypatch.setenv("TOKEN", "from-my-shell")
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    show = container("show", "import os, json; json.dump({k: os.environ.get(k) for k in "
                             "['ACTOR', 'REGISTRY', 'ENDPOINT', 'TOKEN', 'MISSING_SECRET']}, open('/tmp/env', 'w'))",
                     outputs={"parameters": [{"name": "env", "valueFrom": {"path": "/tmp/env"}}]})
    show["container"]["env"] = [
        {"name": "ACTOR", "value": "argo:{{workflow.name}}"},
        {"name": "REGISTRY", "valueFrom": {"configMapKeyRef": {"name": "mlops-config", "key": "registry"}}},
        {"name": "ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "mlops-config", "key": "endpoint",
                                                               "optional": True}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "token", "optional": True}}},
        {"name": "MISSING_SECRET", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "x", "optional": True}}},
    ]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlops-config"},
                  "data": {"registry": "/somewhere/registry"}}
    ran = run_yaml(workflow([{"name": "t", "template": "show"}], [show]), config_maps=[config_map])
    assert ran.result.phase == "Succeeded", ran.output
    env = json.loads(ran.task("t")["outputs"]["parameters"]["env"])
    assert env == {"ACTOR": f"argo:{ran.result.tree.workflow}", "REGISTRY": "/somewhere/registry", "ENDPOINT": None,
                   "TOKEN": "from-my-shell", "MISSING_SECRET": None}


def test_volume_mounts_are_the_container_s_paths(run_yaml):
    read = container("read", "import sys; open(sys.argv[2] + '/copy', 'w').write(open(sys.argv[1]).read())",
                     args=["{{inputs.parameters.config}}", "/scratch"],
                     inputs={"parameters": [{"name": "config", "value": "/etc/app/settings.yaml"}]},
                     outputs={"parameters": [{"name": "copy", "valueFrom": {"path": "/scratch/copy"}}]})
    read["container"]["volumeMounts"] = [{"name": "settings", "mountPath": "/etc/app"},
                                         {"name": "scratch", "mountPath": "/scratch"}]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"},
                  "data": {"settings.yaml": "threshold: 0.5\n"}}
    doc = workflow([{"name": "t", "template": "read"}], [read],
                   volumes=[{"name": "settings", "configMap": {"name": "app-settings"}},
                            {"name": "scratch", "emptyDir": {}}])
    ran = run_yaml(doc, config_maps=[config_map])
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.task("t")["outputs"]["parameters"]["copy"] == "threshold: 0.5"
    assert not Path("/etc/app/settings.yaml").exists()  # this machine's /etc is untouched


def test_a_parameter_reaches_the_command_as_written(run_yaml, tmp_path):
    """A value is never rewritten, even when it looks like a path under a volume the template mounts."""
    value = str(tmp_path / "data.txt")
    echo = container("echo", "import sys; open('/tmp/seen', 'w').write(sys.argv[1])",
                     args=["{{workflow.parameters.data}}"],
                     outputs={"parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/seen"}}]})
    echo["container"]["volumeMounts"] = [{"name": "tmp", "mountPath": str(tmp_path.parent)}]
    doc = workflow([{"name": "t", "template": "echo"}], [echo], volumes=[{"name": "tmp", "emptyDir": {}}],
                   arguments={"parameters": [{"name": "data", "value": "unused"}]})
    ran = run_yaml(doc, params={"data": value})
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.task("t")["outputs"]["parameters"]["seen"] == value


def test_the_run_follows_the_yaml_on_disk(run_yaml, tmp_path):
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


def test_run_json_records_every_task(run_yaml):
    ran = run_yaml(workflow([stamp_task("a"), stamp_task("b", depends="a")], [STAMP_TEMPLATE]))
    state = json.loads((ran.result.run_dir / "run.json").read_text())
    assert state["phase"] == "Succeeded"
    assert {name: t["phase"] for name, t in state["tasks"].items()} == {"a": "Succeeded", "b": "Succeeded"}
    assert Path(state["tasks"]["a"]["log"]).name == "log"


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
