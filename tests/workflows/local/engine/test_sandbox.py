"""The container's own view of paths (bubblewrap) and its process group: what a command writes stays in the run."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import workflows
from workflows.local.engine.sandbox import Process, SandboxRefused, SandboxUnavailable, View, bwrap, needs_sandbox

pytestmark = pytest.mark.skipif(bwrap() is None, reason="bubblewrap is not installed")


def run(view: View, script: str, tmp_path: Path, timeout: float = 10) -> tuple[int | None, str, str]:
    process = Process(view.command(["sh", "-c", script]), dict(os.environ), tmp_path / "out", tmp_path / "err",
                      wrapped=True)
    code = process.wait(timeout)
    return code, (tmp_path / "out").read_text(), (tmp_path / "err").read_text()


def test_a_file_written_inside_a_shell_string_lands_in_the_containers_own_tmp(tmp_path: Path) -> None:
    name = f"argo-mlops-{uuid.uuid4().hex}"
    view = View(tmp_path / "root")
    code, _, err = run(view, f"echo hello > /tmp/{name}", tmp_path)
    assert code == 0, err
    assert view.host_path(f"/tmp/{name}").read_text() == "hello\n"
    assert not Path("/tmp", name).exists()  # the host's /tmp is untouched


def test_new_container_paths_are_created_in_the_run_never_on_the_host(tmp_path: Path) -> None:
    top = f"/argo-mlops-{uuid.uuid4().hex[:8]}"
    view = View(tmp_path / "root", own=[f"{top}/out/result.txt", "/mnt/argo-mlops-out"], workdir=f"{top}/wd")
    code, out, err = run(view, "pwd; mkdir -p out && echo r > out/result.txt; mkdir /mnt/argo-mlops-out; "
                               "echo m > /mnt/argo-mlops-out/f; ls /usr/bin/env", tmp_path)
    assert code == 0, err
    assert out.splitlines() == [f"{top}/wd", "/usr/bin/env"]  # the host's files stay visible
    assert view.host_path(f"{top}/wd/out/result.txt").read_text() == "r\n"
    assert view.host_path("/mnt/argo-mlops-out/f").read_text() == "m\n"
    assert not Path(top).exists() and not Path("/mnt/argo-mlops-out").exists()


def test_mounts_bind_host_folders_at_container_paths(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    view = View(tmp_path / "root", mounts={"/workspace": shared}, workdir="/workspace")
    code, _, err = run(view, "echo w > note", tmp_path)
    assert code == 0, err
    assert (shared / "note").read_text() == "w\n"
    assert view.host_path("/workspace/note") == shared / "note"


def test_a_container_path_through_a_host_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxRefused, match="not a folder"):
        View(tmp_path / "root", own=["/etc/hostname/x"]).command(["true"])


def test_without_bubblewrap_the_view_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        View(tmp_path / "root").command(["true"])


def test_exit_codes_and_signals_are_reported_as_a_container_runtime_does(tmp_path: Path) -> None:
    view = View(tmp_path / "root")
    assert run(view, "exit 3", tmp_path)[0] == 3
    assert run(view, "kill -9 $$", tmp_path)[0] == 137


def test_stop_terminates_the_whole_process_group_then_kills_after_the_grace(tmp_path: Path) -> None:
    view = View(tmp_path / "root")
    process = Process(view.command(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60; wait"]), dict(os.environ),
                      tmp_path / "out", tmp_path / "err", wrapped=True)
    time.sleep(0.3)
    started = time.monotonic()
    process.stop(grace=0.5)
    assert process.wait(10) == 137  # SIGTERM ignored: SIGKILL after the grace
    assert time.monotonic() - started < 5
    assert gone(process.pid, within=5)  # nothing of the group is left


def gone(group: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)  # killed members may be zombies until their new parent reaps them
    return False


def test_a_command_that_handles_sigterm_ends_on_its_own_terms(tmp_path: Path) -> None:
    view = View(tmp_path / "root")
    process = Process(view.command(["python3", "-c", "import signal, sys, time\n"
                                    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                                    "print('up', flush=True)\ntime.sleep(60)"]),
                      dict(os.environ), tmp_path / "out", tmp_path / "err", wrapped=True)
    deadline = time.monotonic() + 10
    while (tmp_path / "out").read_text() != "up\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    process.stop(grace=10)
    assert process.wait(10) == 0


def test_a_read_only_mount_cannot_be_written(tmp_path: Path) -> None:
    shared = tmp_path / "config"
    shared.mkdir()
    view = View(tmp_path / "root", mounts={"/config": shared}, read_only=["/config"])
    code, _, err = run(view, "echo x > /config/f", tmp_path)
    assert code != 0 and "Read-only file system" in err


def test_working_dirs_under_tmp_and_the_default_root_are_the_containers_own(tmp_path: Path) -> None:
    view = View(tmp_path / "root", workdir="/tmp")
    code, out, err = run(view, "pwd; echo x > here", tmp_path)
    assert (code, out) == (0, "/tmp\n"), err
    assert view.host_path("/tmp/here").read_text() == "x\n"
    name = f"argo-mlops-{uuid.uuid4().hex[:8]}.txt"
    view = View(tmp_path / "root2")
    code, out, err = run(view, f"pwd; echo r > {name}", tmp_path)
    assert (code, out) == (0, "/\n"), err  # most images' WORKDIR
    assert view.host_path(f"/{name}").read_text() == "r\n" and not Path("/", name).exists()


def test_the_runtimes_own_failures_are_told_from_the_commands(tmp_path: Path) -> None:
    missing = View(tmp_path / "root", mounts={"/data": tmp_path / "no-such-folder"})
    process = Process(missing.command(["true"]), dict(os.environ), tmp_path / "out", tmp_path / "err", wrapped=True)
    assert process.wait(10) == 1 and process.setup_error.startswith("bwrap: ")
    unknown = View(tmp_path / "root2")
    process = Process(unknown.command(["/no/such/command"]), dict(os.environ), tmp_path / "out", tmp_path / "err",
                      wrapped=True)
    assert process.wait(10) == 64 and process.note.startswith("failed to find name in PATH: /no/such/command")
    assert not process.setup_error


def test_a_container_path_that_is_a_folder_here_is_an_empty_folder_of_the_container(tmp_path: Path) -> None:
    view = View(tmp_path / "root", own=["/usr/share"])
    code, out, err = run(view, "ls -A /usr/share | wc -l; echo x > /usr/share/made", tmp_path)
    assert (code, out.strip()) == (0, "0"), err
    assert view.host_path("/usr/share/made").read_text() == "x\n" and not Path("/usr/share/made").exists()


@pytest.mark.parametrize("template, needed", [
    ({"container": {"command": ["echo", "hi"]}}, False),
    ({"container": {"command": ["sh", "-c", "echo hi > /tmp/x"]}}, True),
    ({"script": {"command": ["sh"], "source": "echo hi"}}, True),
    ({"container": {"command": ["true"]}, "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/p"}}]}},
     True),
    ({"container": {"command": ["true"], "workingDir": "/src"}}, True),
    ({"containerSet": {"volumeMounts": [{"name": "w", "mountPath": "/w"}], "containers": [{"name": "main"}]}}, True),
    ({"container": {"command": ["true"]}, "inputs": {"artifacts": [{"name": "a", "path": "/a"}]}}, True),
], ids=["plain", "names-tmp", "script", "output-path", "working-dir", "container-set-mount", "input-artifact"])
def test_templates_that_need_their_own_view_of_paths_are_known_up_front(template: dict[str, Any],
                                                                        needed: bool) -> None:
    assert needs_sandbox(template) is needed


@pytest.mark.parametrize("hide", ["own", "mount"])
def test_the_runners_own_python_and_checkout_stay_visible_under_a_container_path(tmp_path: Path, hide: str) -> None:
    # A clone under /tmp (CI's, or pytest's folders) is hidden by every container's own /tmp: the same happens here
    # with the folder above this checkout (and its .venv) as the container's own path or as an emptyDir mount.
    above = str(Path(workflows.__file__).resolve().parents[1].parent)
    empty = tmp_path / "empty"
    empty.mkdir()
    view = View(tmp_path / "root", own=[above] if hide == "own" else [],
                mounts={above: empty} if hide == "mount" else {})
    process = Process(view.command([sys.executable, "-c", "import workflows.local.engine; print('imported')"]),
                      dict(os.environ), tmp_path / "out", tmp_path / "err", wrapped=True)
    assert process.wait(30) == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == "imported\n"


def test_a_folder_shared_inside_the_checkout_leaves_the_rest_of_it_visible(tmp_path: Path) -> None:
    # mlops run shares the files its parameters name (the policy in the checkout's gates/) with every container: the
    # checkout, hidden above, is bound back around them, so its code still imports.
    checkout = Path(workflows.__file__).resolve().parents[1]
    view = View(tmp_path / "root", own=[str(checkout.parent)], mounts={str(checkout / "gates"): checkout / "gates"})
    process = Process(view.command([sys.executable, "-c", "import workflows.local.engine, os; "
                                    f"print(os.listdir({str(checkout / 'gates')!r}) != [])"]),
                      dict(os.environ, PYTHONPATH=str(checkout)), tmp_path / "out", tmp_path / "err", wrapped=True)
    assert process.wait(30) == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == "True\n"
