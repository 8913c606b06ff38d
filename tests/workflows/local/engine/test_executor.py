"""One pod's work as local processes: the phase, outputs, result and exit code Argo's controller would record."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local.engine.cases import bounded, case_files, differences, expectation, run_case
from workflows.local.engine.executor import DEADLINE_MESSAGE, LocalExecutor
from workflows.local.engine.pods import InputArtifact, PodHandle, PodRefused, PodResult, PodSpec
from workflows.local.engine.sandbox import bwrap, same_python

pytestmark = pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")


def spec(template: dict[str, Any], kind: str = "container", **fields: Any) -> PodSpec:
    return PodSpec(workflow="wf", node_id="wf-1", node_name="wf.step", pod_name=f"wf-step-{uuid.uuid4().hex[:6]}",
                   kind=kind, template=template, volumes=template.get("volumes") or [], **fields)


def wait(handle: PodHandle, timeout: float = 20) -> PodResult:
    deadline = time.monotonic() + timeout
    while (result := handle.poll()) is None:
        assert time.monotonic() < deadline, "the pod did not end in time"
        time.sleep(0.01)
    return result


def run(executor: LocalExecutor, template: dict[str, Any], kind: str = "container", **fields: Any) -> PodResult:
    return wait(executor.start(spec(template, kind, **fields)))


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "run", grace=2)


def params(result: PodResult) -> dict[str, str | None]:
    return {p.name: p.value for p in result.outputs.parameters}


def test_an_output_written_inside_a_shell_string_is_found_not_its_default(executor: LocalExecutor) -> None:
    name = f"out-{uuid.uuid4().hex}.txt"
    result = run(executor, {"container": {"command": ["sh", "-c"], "args": [f"echo hello > /tmp/{name}"]},
                            "outputs": {"parameters": [{"name": "m", "valueFrom": {"path": f"/tmp/{name}",
                                                                                    "default": "DEFAULT"}}]}})
    assert (result.phase, params(result), result.outputs.exit_code) == ("Succeeded", {"m": "hello"}, "0")
    assert not Path("/tmp", name).exists()


def test_path_outputs_lose_one_newline_and_the_result_is_stdout_only(executor: LocalExecutor) -> None:
    script = ("printf 'two\\n\\n' > /tmp/two; printf 'three' > /tmp/three; echo err >&2; printf 'out\\n\\n'")
    result = run(executor, {"container": {"command": ["sh", "-c", script]}, "outputs": {"parameters": [
        {"name": "two", "valueFrom": {"path": "/tmp/two"}}, {"name": "three", "valueFrom": {"path": "/tmp/three"}},
        {"name": "gone", "valueFrom": {"path": "/tmp/none", "default": "d"}}]}}, capture_result=True)
    assert params(result) == {"two": "two\n", "three": "three", "gone": "d"}
    assert result.outputs.result == "out\n"
    assert result.log is not None and "err" in result.log.read_text()


def test_the_result_is_captured_only_when_asked_and_keeps_the_last_256_kib(executor: LocalExecutor) -> None:
    template = {"container": {"command": ["python3", "-c", "print('a' * 300000 + 'END')"]}}
    assert run(executor, template).outputs.result is None
    result = run(executor, template, capture_result=True).outputs.result
    assert result is not None and len(result) == 256 * 1024 and result.endswith("aEND")


def test_a_missing_output_without_default_is_an_error_of_a_successful_command(executor: LocalExecutor) -> None:
    outputs = {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out.txt"}}]}
    ok = run(executor, {"container": {"command": ["true"]}, "outputs": outputs})
    assert (ok.phase, ok.outputs.exit_code) == ("Error", "0")
    assert "/tmp/out.txt" in ok.message
    failed = run(executor, {"container": {"command": ["sh", "-c", "exit 3"]}, "outputs": outputs})
    assert (failed.phase, failed.message, failed.exit_code) == ("Failed", "main: Error (exit code 3)", 3)


def test_a_script_runs_its_source_with_the_hosts_interpreter(executor: LocalExecutor) -> None:
    result = run(executor, {"script": {"command": ["python3"], "source": "import sys\nprint(sys.argv[0])"}},
                 kind="script", capture_result=True)
    assert (result.phase, result.outputs.result) == ("Succeeded", "/argo/staging/script")
    result = run(executor, {"script": {"command": ["sh"], "source": "echo one\necho two"}}, kind="script",
                 capture_result=True)
    assert result.outputs.result == "one\ntwo"
    result = run(executor, {"script": {"command": ["sh", "-c"], "source": "echo as a program"}}, kind="script",
                 capture_result=True)
    assert (result.phase, result.outputs.result) == ("Succeeded", "as a program")  # the file is executable


def test_env_working_dir_and_argo_variables_reach_the_command(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "run", config_maps={"settings": {"data": {"MAP": "world"}}})
    result = run(executor, {"container": {
        "command": ["sh", "-c", "echo $GREETING $(GREETING) '$$(X)' $ARGO_CONTAINER_NAME $(pwd)"],
        "env": [{"name": "BASE", "value": "hello"}, {"name": "GREETING", "value": "$(BASE) $(FROM_MAP)"}],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "FROM_"}],
        "workingDir": "/work-dir-of-the-container"}}, capture_result=True)
    assert result.outputs.result == "hello world hello world $(X) main /work-dir-of-the-container"
    assert not Path("/work-dir-of-the-container").exists()


def test_env_values_come_from_config_maps_and_secrets_from_this_machine(tmp_path: Path, monkeypatch) -> None:
    """configMapKeyRef reads the run's ConfigMaps; secretKeyRef (no Secret exists here) the same-named variable of
    this machine; an optional one that is absent leaves the variable unset, even where this machine sets it."""
    monkeypatch.setenv("TOKEN", "from-my-shell")
    monkeypatch.setenv("ENDPOINT", "the-host-s")
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    executor = LocalExecutor(tmp_path / "run", config_maps={"mlops-config": {"data": {"registry": "/r"}}})

    def ref(kind: str, name: str, key: str, optional: bool = False) -> dict[str, Any]:
        return {kind: {"name": name, "key": key, **({"optional": True} if optional else {})}}

    env = [{"name": "REGISTRY", "valueFrom": ref("configMapKeyRef", "mlops-config", "registry")},
           {"name": "ENDPOINT", "valueFrom": ref("configMapKeyRef", "mlops-config", "endpoint", optional=True)},
           {"name": "TOKEN", "valueFrom": ref("secretKeyRef", "s3", "token")},
           {"name": "MISSING_SECRET", "valueFrom": ref("secretKeyRef", "s3", "x", optional=True)}]
    result = run(executor, {"container": {"command": ["sh", "-c"], "env": env, "args": [
        "echo $REGISTRY ${ENDPOINT-unset} $TOKEN ${MISSING_SECRET-unset}"]}}, capture_result=True)
    assert result.outputs.result == "/r unset from-my-shell unset"


def test_shared_folders_and_extra_variables_reach_every_container(tmp_path: Path) -> None:
    """`mlops run` shares its project folder (under /tmp here, which containers do not otherwise see) and adds
    PYTHONPATH for its own templates."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("project data")
    executor = LocalExecutor(tmp_path / "run", env={"EXTRA": "added"}, shared=(project,))
    result = run(executor, {"container": {"command": ["sh", "-c"], "args": [
        f"cat {project}/data.txt; echo \" $EXTRA\"; echo written > {project}/out.txt"]}}, capture_result=True)
    assert (result.phase, result.outputs.result) == ("Succeeded", "project data added")
    assert (project / "out.txt").read_text() == "written\n"


def test_a_deadline_stops_the_pod_and_fails_it_with_the_kubelets_message(executor: LocalExecutor) -> None:
    started = time.monotonic()
    result = run(executor, {"container": {"command": ["sleep", "60"]}}, deadline=time.time() + 0.5)
    assert (result.phase, result.message) == ("Failed", DEADLINE_MESSAGE)
    assert time.monotonic() - started < 5


def test_stop_ends_the_pod_with_the_given_phase(executor: LocalExecutor) -> None:
    handle = executor.start(spec({"container": {"command": ["sleep", "60"]}}))
    assert handle.poll() is None
    handle.stop("Failed", "Stopped with strategy 'Stop'")
    result = wait(handle, timeout=10)
    assert (result.phase, result.message, result.outputs.exit_code) == ("Failed", "Stopped with strategy 'Stop'",
                                                                        "143")


@pytest.mark.parametrize("container, reason", [
    ({"image": "alpine"}, "has no command"),
    ({"command": ["no-such-command-on-this-host"]}, "not on this machine"),
    ({"command": ["sh"], "env": [{"name": "NO_SUCH_SECRET_HERE", "valueFrom": {"secretKeyRef": {"name": "s",
                                                                                               "key": "k"}}}]},
     r"set \$NO_SUCH_SECRET_HERE"),
    ({"command": ["sh"], "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
     "CreateContainerConfigError"),
    ({"command": ["sh"], "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
     "no local source"),
], ids=["no-command", "missing-command", "env-from-missing-secret", "env-from-missing-config-map-key",
        "env-from-field"])
def test_what_cannot_run_here_is_refused_at_start(executor: LocalExecutor, container: dict[str, Any],
                                                  reason: str) -> None:
    with pytest.raises(PodRefused, match=reason):
        executor.start(spec({"container": container}))


def test_init_containers_run_first_and_their_failure_is_an_error(executor: LocalExecutor) -> None:
    template = {"initContainers": [{"name": "setup", "command": ["sh", "-c", "exit 2"]}],
                "container": {"command": ["true"]}}
    result = run(executor, template)
    assert (result.phase, result.message, result.exit_code) == ("Error", "setup: Error (exit code 2)", None)


def test_argo_template_variable_holds_the_template(executor: LocalExecutor) -> None:
    template = {"name": "t", "container": {"command": ["sh", "-c", "echo \"$ARGO_TEMPLATE\""]}}
    result = run(executor, template, capture_result=True)
    assert json.loads(result.outputs.result or "")["name"] == "t"


def test_input_artifacts_are_placed_before_the_command_starts(executor: LocalExecutor, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    ref = executor.store_artifact(folder, "data", "tar")
    inputs = [InputArtifact(name="data", path="/inputs/data", key=ref.key),
              InputArtifact(name="msg", path="/tmp/msg", raw="hi", mode=0o600)]
    result = run(executor, {"container": {"command": ["sh", "-c", "cat /inputs/data/a.txt; stat -c %a /tmp/msg"]}},
                 input_artifacts=inputs, capture_result=True)
    assert (result.phase, result.outputs.result) == ("Succeeded", "A600")


EXECUTOR_CASES = [c for c in case_files() if c.name.startswith(("068", "069", "070", "071", "072", "073", "074",
                                                                 "075", "076"))]


@pytest.mark.parametrize("case", EXECUTOR_CASES, ids=[c.stem for c in EXECUTOR_CASES])
def test_conformance_case_of_the_executor_gives_argos_result(case: Path, tmp_path: Path) -> None:
    """Artifacts, volumes, containerSets, daemons and sidecars end to end through the engine's entry point."""
    expected = expectation(case)
    with bounded(float((expected.get("run") or {}).get("timeout", 60))):
        result = run_case(case, tmp_path / "run", tmp_path / "state")
    assert differences(result, expected) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_container_set_runs_by_dependencies_and_a_failure_stops_its_dependents(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "ws", "emptyDir": {}}], "containerSet": {
        "volumeMounts": [{"name": "ws", "mountPath": "/ws"}],
        "containers": [
            {"name": "a", "command": ["sh", "-c", "echo a > /ws/a"]},
            {"name": "b", "command": ["sh", "-c", "cat /ws/a; exit 5"], "dependencies": ["a"]},
            {"name": "main", "command": ["echo", "never"], "dependencies": ["b"]}]}}
    result = run(executor, template, kind="containerSet")
    by_name = {c.name: (c.phase, c.exit_code, c.message) for c in result.containers}
    assert by_name == {"a": ("Succeeded", 0, ""), "b": ("Failed", 5, "b: Error (exit code 5): "),
                       "main": ("Failed", 5, 'main: Error (exit code 5): dependency "b" exited with non-zero code: 5')}
    assert (result.phase, result.message, result.outputs.exit_code) == ("Failed", "b: Error (exit code 5)", "5")


def test_sidecars_are_stopped_when_main_ends_and_their_sigterm_exit_is_ignored(executor: LocalExecutor) -> None:
    started = time.monotonic()
    result = run(executor, {"container": {"command": ["sleep", "0.3"]},
                            "sidecars": [{"name": "side", "command": ["sleep", "60"]}]})
    assert (result.phase, result.message) == ("Succeeded", "")
    assert time.monotonic() - started < 5


def test_a_sidecar_failing_on_its_own_fails_the_pod(executor: LocalExecutor) -> None:
    result = run(executor, {"container": {"command": ["sleep", "1"]},
                            "sidecars": [{"name": "side", "command": ["sh", "-c", "exit 3"]}]})
    assert (result.phase, result.message) == ("Failed", "side: Error (exit code 3)")


def test_a_daemon_is_ready_once_its_probe_passes_and_stopping_it_succeeds(executor: LocalExecutor) -> None:
    port = free_port()
    handle = executor.start(spec({"daemon": True, "container": {
        "command": ["sh", "-c", f"sleep 0.5; exec python3 -m http.server {port} --bind 127.0.0.1"],
        "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1}}}, daemon=True))
    assert not handle.ready
    deadline = time.monotonic() + 15
    while not handle.ready:
        assert handle.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    assert handle.pod_ip == "127.0.0.1"
    handle.stop("Succeeded", "")
    assert wait(handle, timeout=10).phase == "Succeeded"


def test_a_daemon_whose_process_exits_is_failed(executor: LocalExecutor) -> None:
    result = run(executor, {"daemon": True, "container": {"command": ["true"]}}, daemon=True)
    assert result.phase == "Failed"


def test_without_bubblewrap_only_pods_without_container_paths_run(executor: LocalExecutor, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "echo", "mktemp"):
        (bin_dir / tool).symlink_to(str(shutil.which(tool)))
    monkeypatch.setenv("PATH", str(bin_dir))
    result = run(executor, {"container": {"command": ["sh", "-c", "echo direct; mktemp"]}}, capture_result=True)
    assert result.phase == "Succeeded" and (result.outputs.result or "").startswith(f"direct\n{executor.run_dir}/")
    with pytest.raises(PodRefused, match="apt-get install bubblewrap"):  # /tmp named: it would be the host's
        executor.start(spec({"container": {"command": ["sh", "-c", "ls /tmp"]}}))
    outputs = {"parameters": [{"name": "o", "valueFrom": {"path": "/tmp/o"}}]}
    with pytest.raises(PodRefused, match="apt-get install bubblewrap"):
        executor.start(spec({"container": {"command": ["sh", "-c", "echo x > /tmp/o"]}, "outputs": outputs}))


def test_a_container_set_retries_a_failed_container_as_its_retry_strategy_says(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "ws", "emptyDir": {}}], "containerSet": {
        "retryStrategy": {"retries": "3", "duration": "100ms"},
        "volumeMounts": [{"name": "ws", "mountPath": "/ws"}],
        "containers": [{"name": "main",
                        "command": ["sh", "-c", "echo x >> /ws/tries; [ $(wc -l < /ws/tries) -ge 3 ]"]}]}}
    result = run(executor, template, kind="containerSet")
    assert (result.phase, [c.phase for c in result.containers]) == ("Succeeded", ["Succeeded"])
    template["containerSet"]["retryStrategy"] = {"retries": 2}  # type: ignore[index]
    result = run(executor, template, kind="containerSet")
    assert (result.phase, result.message) == ("Failed", "main: Error (exit code 1)")


def test_a_command_another_container_writes_into_a_shared_volume_is_not_refused(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "ws", "emptyDir": {}}], "containerSet": {
        "volumeMounts": [{"name": "ws", "mountPath": "/ws"}],
        "containers": [
            {"name": "build",
             "command": ["sh", "-c", "printf '#!/bin/sh\\necho built\\n' > /ws/run; chmod +x /ws/run"]},
            {"name": "main", "command": ["/ws/run"], "dependencies": ["build"]}]}}
    result = run(executor, template, kind="containerSet", capture_result=True)
    assert (result.phase, result.outputs.result) == ("Succeeded", "built")


def test_a_daemon_waits_for_its_sidecars_readiness_too(executor: LocalExecutor) -> None:
    handle = executor.start(spec({"daemon": True, "volumes": [{"name": "flags", "emptyDir": {}}],
                                  "container": {"command": ["sleep", "60"]}, "sidecars": [
        {"name": "side", "command": ["sleep", "60"], "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
         "readinessProbe": {"exec": {"command": ["test", "-e", "/flags/ready"]}, "periodSeconds": 1}}]},
        daemon=True))
    time.sleep(1.5)
    assert handle.poll() is None and not handle.ready
    [flags] = executor.run_dir.glob("pods/*/volumes/emptyDir/flags")
    (flags / "ready").touch()
    deadline = time.monotonic() + 10
    while not handle.ready:
        assert handle.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    handle.stop("Succeeded", "")
    assert wait(handle, timeout=10).phase == "Succeeded"


def test_python_is_this_interpreter_only_when_it_is_the_hosts(executor: LocalExecutor, tmp_path: Path) -> None:
    template = {"container": {"command": ["python3", "-c", "import sys; print(sys.executable)"]}}
    assert run(executor, template, capture_result=True).outputs.result == sys.executable
    other = tmp_path / "other-python"
    other.mkdir()
    (other / "python3").write_text("#!/bin/sh\necho another python\n")
    (other / "python3").chmod(0o755)
    assert not same_python("python3", f"{other}:{os.environ['PATH']}")  # a launcher of another interpreter


def test_an_init_container_mirroring_mains_mounts_prepares_its_volume(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "ws", "emptyDir": {}}],
                "initContainers": [{"name": "fetch", "mirrorVolumeMounts": True,
                                    "command": ["sh", "-c", "echo fetched > /ws/data"]}],
                "container": {"command": ["cat", "/ws/data"], "volumeMounts": [{"name": "ws", "mountPath": "/ws"}]}}
    assert run(executor, template, capture_result=True).outputs.result == "fetched"


def test_a_command_missing_when_it_runs_fails_like_executable_not_found(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "ws", "emptyDir": {}}],
                "container": {"command": ["/ws/never-written"], "volumeMounts": [{"name": "ws", "mountPath": "/ws"}]}}
    result = run(executor, template)
    assert (result.phase, result.outputs.exit_code) == ("Failed", "64")  # the emissary's code
    assert result.message.startswith("main: Error (exit code 64): failed to find name in PATH: /ws/never-written")


def test_a_failed_commands_outputs_are_kept_artifacts_even_after_a_missing_parameter(
        executor: LocalExecutor) -> None:
    template = {"container": {"command": ["sh", "-c", "echo partial > /tmp/report; exit 2"]}, "outputs": {
        "parameters": [{"name": "missing", "valueFrom": {"path": "/tmp/missing"}}],
        "artifacts": [{"name": "report", "path": "/tmp/report"}]}}
    result = run(executor, template)
    assert (result.phase, result.message) == ("Failed", "main: Error (exit code 2)")
    assert [a.name for a in result.outputs.artifacts] == ["report"]


def test_an_empty_dir_mounted_at_tmp_holds_the_outputs_and_inputs(executor: LocalExecutor) -> None:
    template = {"volumes": [{"name": "tmp", "emptyDir": {}}],
                "container": {"command": ["sh", "-c", "cat /tmp/in > /tmp/out"],
                              "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]},
                "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]}}
    result = run(executor, template, input_artifacts=[InputArtifact(name="in", path="/tmp/in", raw="through")])
    assert (result.phase, params(result)) == ("Succeeded", {"out": "through"})


def test_an_output_at_a_folder_this_machine_has_is_refused(executor: LocalExecutor) -> None:
    template = {"container": {"command": ["true"]}, "outputs": {"artifacts": [{"name": "etc", "path": "/etc"}]}}
    with pytest.raises(PodRefused, match="/etc is a folder of this machine"):
        executor.start(spec(template))
    template["outputs"] = {"artifacts": [{"name": "tmp", "path": "/tmp"}]}  # the container's own /tmp
    assert run(executor, template).outputs.artifacts[0].name == "tmp"
    leftover = Path("/etc/hostname")  # a file of this machine at an output path: the container has its own, fresh
    template = {"container": {"command": ["sh", "-c", "test ! -e /etc/hostname && echo mine > /etc/hostname"]},
                "outputs": {"parameters": [{"name": "h", "valueFrom": {"path": str(leftover)}}]}}
    result = run(executor, template)
    assert (result.phase, params(result)) == ("Succeeded", {"h": "mine"}) and leftover.read_text() != "mine\n"


def test_a_tool_missing_on_this_machine_is_named_in_the_message(executor: LocalExecutor) -> None:
    result = run(executor, {"container": {"command": ["sh", "-c", "no-such-tool-argo-mlops -l"]}})
    assert (result.phase, result.outputs.exit_code) == ("Failed", "127")
    assert "no-such-tool-argo-mlops: not found (not on this machine; the image is not used)" in result.message


def test_a_command_line_the_system_cannot_start_is_an_error_not_a_crash(executor: LocalExecutor) -> None:
    result = run(executor, {"container": {"command": ["echo", "x" * 200_000]}})  # past the kernel's 128 KiB
    assert result.phase == "Error" and "cannot start" in result.message
