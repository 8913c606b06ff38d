"""The simplest real Executor (workflows/local/engine/pods.py) for the controller's tests until the sandboxed one
lands: each pod's main container (container or script) runs as a subprocess under bubblewrap with its own `/tmp`
(so `sh -c "echo x > /tmp/out"` writes the pod's file, not the host's), outputs read from there. No sidecars,
containerSets, volumes or artifacts: those are refused (PodRefused).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from workflows.local.engine.nodes import ERROR, FAILED, SUCCEEDED, ArtifactRef, Outputs, Parameter
from workflows.local.engine.pods import PodRefused, PodResult, PodSpec

RESULT_LIMIT = 256 * 1024
STAGING = "/tmp/.argo-staging/script"  # Argo's /argo/staging/script, kept inside the pod's own /tmp


class LocalHandle:
    def __init__(self, spec: PodSpec, proc: subprocess.Popen[bytes], folder: Path, started: float):
        self.spec, self.proc, self.folder, self.started = spec, proc, folder, started
        self._result: PodResult | None = None
        self._stopped: tuple[str, str] | None = None

    @property
    def ready(self) -> bool:
        return self.proc.poll() is None

    @property
    def pod_ip(self) -> str:
        return "127.0.0.1"

    def poll(self) -> PodResult | None:
        if self._result is not None:
            return self._result
        if self.proc.poll() is None:
            if self.spec.deadline is not None and time.time() > self.spec.deadline:
                self.stop(FAILED, "Pod was active on the node longer than the specified deadline")
            else:
                return None
        self._result = self._collect()
        return self._result

    def stop(self, phase: str, message: str) -> None:
        if self._stopped is None:
            self._stopped = (phase, message)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _collect(self) -> PodResult:
        code = self.proc.returncode
        outputs = Outputs(exit_code=str(code) if code is not None and code >= 0 else str(128 - (code or 0)))
        phase, message = (SUCCEEDED, "") if code == 0 else (FAILED, f"Error (exit code {outputs.exit_code})")
        for param in (self.spec.template.get("outputs") or {}).get("parameters") or []:
            value_from = param.get("valueFrom") or {}
            if value_from.get("path"):
                try:
                    text = self._container_path(value_from["path"]).read_text()
                    outputs.parameters.append(Parameter(param["name"], text[:-1] if text.endswith("\n") else text))
                except OSError as err:
                    if value_from.get("default") is None:
                        phase, message = ERROR, f"open {value_from['path']}: no such file or directory"
                        del err
                        continue
                    outputs.parameters.append(Parameter(param["name"], str(value_from["default"])))
            elif param.get("value") is not None:
                outputs.parameters.append(Parameter(param["name"], str(param["value"])))
        if self.spec.capture_result:
            data = (self.folder / "stdout").read_bytes()[-RESULT_LIMIT:].decode("utf-8", "replace")
            outputs.result = data[:-1] if data.endswith("\n") else data
        if self._stopped is not None:
            phase, message = self._stopped
        return PodResult(phase=phase, message=message, exit_code=code, outputs=outputs, started_at=self.started,
                         finished_at=time.time(), log=self.folder / "stdout")

    def _container_path(self, path: str) -> Path:
        if path == "/tmp" or path.startswith("/tmp/"):
            return self.folder / "tmp" / path[len("/tmp/"):]
        return Path(path)


class LocalExecutor:
    """Executor: subprocesses in a bubblewrap view with a private /tmp, under `run_dir/pods/<pod>`."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def start(self, spec: PodSpec) -> LocalHandle:
        tmpl = spec.template
        if spec.kind == "containerSet" or tmpl.get("sidecars") or tmpl.get("initContainers") or spec.volumes:
            raise PodRefused(f"template {tmpl.get('name')}: the test executor runs one main container only")
        container: dict[str, Any] = dict(tmpl.get("script") or tmpl.get("container") or {})
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        if not container.get("command") or shutil.which(argv[0]) is None:
            raise PodRefused(f"template {tmpl.get('name')}: no command, or {argv[:1]} is not on this host")
        folder = self.run_dir / "pods" / spec.pod_name
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        if spec.kind == "script":
            staged = folder / "tmp" / STAGING[len("/tmp/"):]
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(str(container.get("source", "")))
            argv.append(STAGING)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", **spec.env}
        env.update({e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e})
        wrapped = ["bwrap", "--bind", "/", "/", "--bind", str(folder / "tmp"), "/tmp", "--dev", "/dev",
                   "--proc", "/proc", "--chdir", container.get("workingDir") or "/", "--die-with-parent", "--",
                   *argv]
        with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
            proc = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        return LocalHandle(spec, proc, folder, time.time())

    def store_artifact(self, source: Path, name: str, archive: str) -> ArtifactRef:
        raise PodRefused("the test executor keeps no artifacts")
