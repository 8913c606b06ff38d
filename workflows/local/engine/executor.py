"""The local Executor of pods.py: one pod's containers (init containers, main or a containerSet's containers,
sidecars) as processes on this machine, each in its own view of container paths (sandbox.py), then the outputs
Argo's wait container saves: parameters from their paths, the result, the exit code, artifacts
(docs/local-runner.md, "Container", "Script", "Container set", "Daemons", "Sidecars", "Outputs", "Timeouts").

The image is not used: each container runs the host command it names. Without a working directory it runs in "/"
(most images' WORKDIR), the container's own root folder, so what it writes to relative paths is its own. Without
bubblewrap, only pods whose result cannot depend on it run, directly (no container path declared, no script, no
volume mount or working directory, /tmp named nowhere), in a folder of the pod that is also their TMPDIR; the
others are refused, naming what to install.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.local.engine import http, sandbox
from workflows.local.engine.artifacts import ArtifactError, Repository
from workflows.local.engine.environment import container_env
from workflows.local.engine.nodes import ArtifactRef, Outputs, Parameter
from workflows.local.engine.pods import ContainerResult, PodHandle, PodRefused, PodResult, PodSpec
from workflows.local.engine.retry import RetryError, parse_duration
from workflows.local.engine.sandbox import Process, SandboxRefused, View
from workflows.local.engine.volumes import VolumeError, Volumes

SCRIPT_PATH = "/argo/staging/script"  # workflow/common/common.go: ExecutorScriptSourcePath
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"  # the kubelet's
RESULT_LIMIT = 256 * 1024  # executor.go:959: the last 256 KiB of stdout are kept


class LocalExecutor:
    """Runs pods under `run_dir/pods/<pod name>`; the run's artifact repository is `run_dir/artifacts`."""

    def __init__(self, run_dir: Path, *, config_maps: dict[str, Any] | None = None, claims: tuple[str, ...] = (),
                 grace: float = 10.0, env: dict[str, str] | None = None, shared: tuple[Path, ...] = ()):
        """`env`: variables added to this machine's for every container (below the container's own); `shared`:
        host folders every container sees at their own path even under /tmp (`mlops run`'s project folder)."""
        self.run_dir = run_dir
        self.config_maps = config_maps or {}
        self.env = dict(env or {})
        self.shared = tuple(Path(p).resolve() for p in shared)
        self.grace = grace
        self.repository = Repository(run_dir / "artifacts")
        self.volumes = Volumes(run_dir / "volumes", self.config_maps, claims)

    def start(self, spec: PodSpec) -> PodHandle:
        if spec.kind == "http":
            return http.start(spec, self.run_dir / "pods" / spec.pod_name)
        pod_dir = self._pod_dir(spec.pod_name)
        try:
            sources = self.volumes.pod_sources(spec.volumes, pod_dir / "volumes")
            containers = self._containers(spec, pod_dir, sources)
            main = _main(containers)
            self.repository.place_all(spec.input_artifacts, main.view.host_path if main.view else _host)
            if spec.kind == "script":
                script = main.view.host_path(SCRIPT_PATH) if main.view else pod_dir / "script"
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(str(spec.template["script"].get("source", "")))
                script.chmod(0o755)  # StageFiles (executor.go:415-445): `sh -c` runs it as a program
        except (VolumeError, ArtifactError, SandboxRefused) as err:
            raise PodRefused(f"{spec.node_name}: {err}") from err
        return Pod(spec, containers, pod_dir, self.repository, self.grace).start()

    def store_artifact(self, source: Path, name: str, archive: str, key: str | None = None) -> ArtifactRef:
        if key is not None:
            return self.repository.store_at(source, name, key, archive)
        return self.repository.store(source, name, archive)

    def _pod_dir(self, pod_name: str) -> Path:
        base = self.run_dir / "pods" / pod_name
        pod_dir, n = base, 1
        while pod_dir.exists():
            pod_dir, n = base.with_name(f"{base.name}-{n}"), n + 1
        pod_dir.mkdir(parents=True)
        return pod_dir

    def _containers(self, spec: PodSpec, pod_dir: Path, sources: dict[str, Path]) -> list[Container]:
        tmpl = spec.template
        plans: list[tuple[str, dict[str, Any], list[str]]] = []  # role, container, own paths
        main_mounts = (tmpl.get("container") or tmpl.get("script") or {}).get("volumeMounts") or []
        for init in tmpl.get("initContainers") or []:
            plans.append(("init", _mirrored(init, main_mounts), []))
        outputs = tmpl.get("outputs") or {}
        own = [str(p["valueFrom"]["path"]) for p in outputs.get("parameters") or [] if (p.get("valueFrom") or {})
               .get("path")] + [str(a["path"]) for a in outputs.get("artifacts") or [] if a.get("path")]
        inputs = [a.path for a in spec.input_artifacts]
        if spec.kind == "containerSet":
            cset = tmpl.get("containerSet") or {}
            for ctr in cset.get("containers") or []:
                mounts = [*(cset.get("volumeMounts") or []), *(ctr.get("volumeMounts") or [])]
                paths = own + inputs if ctr.get("name") == "main" else []
                plans.append(("main", {**ctr, "volumeMounts": mounts}, paths))
        else:
            ctr = dict(tmpl.get("container") or tmpl.get("script") or {})
            ctr["name"] = "main"
            plans.append(("main", ctr, own + inputs + ([SCRIPT_PATH] if spec.kind == "script" else [])))
        for side in tmpl.get("sidecars") or []:
            plans.append(("sidecar", _mirrored(side, main_mounts), []))
        sandboxed = sandbox.bwrap() is not None
        if not sandboxed and (inputs or sandbox.needs_sandbox(tmpl)):
            raise PodRefused(f"{spec.node_name}: its container paths need bubblewrap: install it "
                             "(Debian/Ubuntu: apt-get install bubblewrap)")
        containers = [self._container(spec, role, ctr, paths, pod_dir, sources, sandboxed)
                      for role, ctr, paths in plans]
        main = _main(containers)
        for path in map(os.path.normpath, own):  # the container's own, fresh; a folder with files would hide them
            if main.view and main.view.host_path(path) == main.view.root / path.lstrip("/") and not (
                    path == "/tmp" or path.startswith("/tmp/")) and os.path.isdir(path) and os.listdir(path):
                raise PodRefused(f"{spec.node_name}: output path {path} is a folder of this machine: its content "
                                 "would be this machine's, not the image's")
        strategy = (tmpl.get("containerSet") or {}).get("retryStrategy") if spec.kind == "containerSet" else None
        if strategy:
            attempts, delay = _container_retries(spec, strategy)
            for c in containers:
                if c.role == "main":
                    c.retries, c.retry_delay = attempts - 1, delay
        return containers

    def _container(self, spec: PodSpec, role: str, ctr: dict[str, Any], own: list[str], pod_dir: Path,
                   sources: dict[str, Path], sandboxed: bool) -> Container:
        name = str(ctr.get("name") or role)
        command = [str(c) for c in ctr.get("command") or []]
        if not command:
            raise PodRefused(f"{spec.node_name}: container {name!r} has no command (the image's entrypoint is "
                             "unknown without the image); give it one, or map its image with --image-command")
        env, defined = container_env(spec, name, ctr, self.config_maps, self.env)
        if not sandboxed:
            (pod_dir / name / "tmp").mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(pod_dir / name / "tmp")
        argv = [sandbox.expand(a, defined) for a in [*command, *(str(a) for a in ctr.get("args") or [])]]
        if spec.kind == "script" and role == "main":
            argv.append(SCRIPT_PATH)
        volume_mounts = ctr.get("volumeMounts") or []
        mounts = self.volumes.mounts(sources, volume_mounts, name) if volume_mounts else {}
        for folder in self.shared:  # the host's /tmp is not the container's: a shared folder there is bound
            if folder == Path("/tmp") or Path("/tmp") in folder.parents:
                mounts.setdefault(str(folder), folder)
        view = View(pod_dir / name / "root", own=own, mounts=mounts, workdir=ctr.get("workingDir"),
                    read_only=self.volumes.read_only(sources, volume_mounts)) if sandboxed else None
        _check_command(spec, name, argv[0], env, view)
        if argv[0] in ("python", "python3") and sandbox.same_python(argv[0], env.get("PATH")):
            argv[0] = sys.executable  # the same interpreter with this environment's packages (a virtualenv's)
        return Container(name=name, role=role, argv=view.command(argv) if view else argv, env=env, view=view,
                         dependencies=[str(d) for d in ctr.get("dependencies") or []], spec=ctr,
                         stdout=pod_dir / f"{name}.stdout", stderr=pod_dir / f"{name}.stderr")


def _container_retries(spec: PodSpec, strategy: dict[str, Any]) -> tuple[int, float]:
    """ContainerSetTemplate.GetRetryStrategy: `retries` attempts in all (wait.Backoff Steps), `duration` (a Go
    duration) apart."""
    text, duration = str(strategy.get("retries", "")).strip(), str(strategy.get("duration") or "").strip()
    if not text.isdigit() or int(text) < 1 or (duration and (duration.isdigit() or duration.startswith("-"))):
        raise PodRefused(f"{spec.node_name}: containerSet.retryStrategy {strategy} is not pinned down locally "
                         "(retries must be a whole number from 1, duration a Go duration)")
    try:
        return int(text), parse_duration(duration) if duration else 0.0
    except RetryError as err:
        raise PodRefused(f"{spec.node_name}: containerSet.retryStrategy.duration: {err}") from err


def _mirrored(ctr: dict[str, Any], main_mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """UserContainer.mirrorVolumeMounts: an init container or sidecar also mounts the main container's volumes."""
    if not ctr.get("mirrorVolumeMounts"):
        return ctr
    return {**ctr, "volumeMounts": [*(ctr.get("volumeMounts") or []), *main_mounts]}


def _main(containers: list[Container]) -> Container:
    """The container whose outputs count: `main` (a containerSet's container of that name)."""
    mains = [c for c in containers if c.role == "main"]
    return next((c for c in mains if c.name == "main"), mains[-1])


def _host(path: str) -> Path:
    return Path(path)


def _check_command(spec: PodSpec, name: str, command: str, env: dict[str, str], view: View | None) -> None:
    if "/" in command:
        if not command.startswith("/") or (view and view.host_path(command) != view.root / command.lstrip("/")):
            return  # relative, or in a volume another container may fill first: known only when it runs
        found = Path(command).exists() or bool(view and view.host_path(command).exists())
    else:
        found = shutil.which(command, path=env.get("PATH")) is not None
    if not found:
        raise PodRefused(f"{spec.node_name}: container {name!r}: command {command!r} is not on this machine "
                         "(the image is not used locally)")


@dataclass
class Container:
    """One container of the pod: `role` is init, main (a containerSet has several) or sidecar."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str]
    view: View | None
    dependencies: list[str]
    spec: dict[str, Any]
    stdout: Path
    stderr: Path
    process: Process | None = None
    skipped: bool = False  # never ran: a dependency failed, or the pod ended first
    retries: int = 0  # a containerSet's retryStrategy: attempts left after a failure, `retry_delay` apart
    retry_delay: float = 0.0
    _retry_at: float | None = None
    note: str = ""  # what the emissary says about its exit (a dependency failed, a command not found)
    _code: int | None = None
    _probe: http.Probe | None = None

    def run(self) -> None:
        self.note = ""
        try:
            self.process = Process(self.argv, self.env, self.stdout, self.stderr, wrapped=self.view is not None,
                                   append=self.process is not None, cwd=None if self.view else self.env.get("TMPDIR"))
        except OSError as err:  # the runtime could not start it (an argument list too long...): Error
            self.process, self._code, self.note, self.retries = None, 64, f"cannot start: {err}", 0

    def wait_for(self, dependencies: list[Container]) -> None:
        """The emissary of a containerSet container waits for its dependencies in order; the first that failed
        ends it with that exit code, without running (emissary.go:185-206)."""
        for dep in dependencies:
            if not dep.ended:
                return
            if dep.skipped:
                self.skipped = True
                return
            if dep.exit_code:
                self._code = dep.exit_code
                self.note = f'dependency "{dep.name}" exited with non-zero code: {dep.exit_code}'
                return
        self.run()

    def probe(self) -> bool:
        """Ready: running, and its readiness probe (if any) passed once."""
        if self._probe is None:
            self._probe = http.Probe(self.spec.get("readinessProbe") or {}, self.spec.get("ports") or [],
                                     self.view.command if self.view else list, self.env)
        return self._probe.passed(self.process.started_at if self.process else time.time())

    def retry(self) -> None:
        """The emissary's retry.OnError: a failed command runs again once the delay passed."""
        if self.retries <= 0 or self.exit_code in (None, 0):
            return
        if self._retry_at is None:
            self._retry_at = time.monotonic() + self.retry_delay
        elif time.monotonic() >= self._retry_at:
            self.retries, self._retry_at = self.retries - 1, None
            self.run()

    @property
    def exit_code(self) -> int | None:
        if self.process is None:
            return self._code
        code = self.process.poll()
        self.note = self.process.note or self.note
        return code

    @property
    def ended(self) -> bool:
        return self.skipped or (self.exit_code is not None and (self.exit_code == 0 or self.retries <= 0))


class Pod:
    """A running pod; `poll` moves it on: init containers one by one, then main (or the containerSet's containers
    as their dependencies succeed) with the sidecars, then the sidecars stopped, then the outputs."""

    def __init__(self, spec: PodSpec, containers: list[Container], pod_dir: Path, repository: Repository,
                 grace: float):
        self.spec = spec
        self.containers = containers
        self.pod_dir = pod_dir
        self.repository = repository
        self.grace = grace
        self.started_at = time.time()
        self._stage = "init"
        self._stopped: tuple[str, str] | None = None
        self._result: PodResult | None = None
        self._ready = False

    def start(self) -> Pod:
        self._advance()
        return self

    @property
    def ready(self) -> bool:
        return self._ready and self._result is None

    @property
    def pod_ip(self) -> str:
        return "127.0.0.1"

    def poll(self) -> PodResult | None:
        if self._result is not None:
            return self._result
        if self._stopped is None and self.spec.deadline is not None and time.time() >= self.spec.deadline:
            self.stop("Failed", DEADLINE_MESSAGE)
        if self._stopped is not None:
            if all(c.ended or c.process is None for c in self.containers):
                self._result = self._finish()
            return self._result
        self._advance()
        return self._result

    def stop(self, phase: str, message: str) -> None:
        if self._result is not None or self._stopped is not None:
            return
        self._stopped = (phase, message)
        for c in self.containers:
            c.retries = 0
            if c.process is None:
                c.skipped = True
            else:
                c.process.stop(self.grace)

    def _advance(self) -> None:
        if self._stage == "init":
            for c in self._role("init"):
                if c.process is None:
                    c.run()
                if c.exit_code is None:
                    return
                if c.exit_code != 0:
                    self._result = self._finish()
                    return
            self._stage = "main"
            for c in self._role("sidecar"):
                c.run()
        if self._stage == "main":
            mains = {c.name: c for c in self._role("main")}
            for c in mains.values():
                if c.process is not None:
                    c.retry()
                elif not c.ended:
                    c.wait_for([mains[d] for d in c.dependencies if d in mains])
            if self.spec.daemon and not self._ready:
                self._probe()
            if not all(c.ended for c in mains.values()):
                return
            self._stage = "sidecars"
            for c in self._role("sidecar"):
                if c.process is not None:
                    c.process.stop(self.grace)
        if all(c.ended for c in self._role("sidecar")):
            self._result = self._finish()

    def _role(self, role: str) -> list[Container]:
        return [c for c in self.containers if c.role == role]

    def _probe(self) -> None:
        """Daemoned once every container runs and passes its readiness probe (operator.go:1533-1559)."""
        running = [c for c in self.containers if c.role != "init"]
        self._ready = all(c.process is not None and c.exit_code is None and c.probe() for c in running)

    def _finish(self) -> PodResult:
        mains = self._role("main")
        main = _main(mains)
        outputs = Outputs(exit_code=None if main.exit_code is None else str(main.exit_code))
        failure = self._failure()
        saved = self._save_outputs(main, outputs) if main.process is not None else None
        if self._stopped is not None:
            phase, message = self._stopped
        elif failure is not None:
            phase, message = failure
        elif saved is not None:
            phase, message = "Error", f"wait: Error (exit code 1): {saved}"
        elif self.spec.daemon:
            phase, message = "Failed", "daemoned pod exited"
        else:
            phase, message = "Succeeded", ""
        results = []
        if self.spec.kind == "containerSet":
            results = [self._container_result(c, phase) for c in mains]
        return PodResult(phase=phase, message=message, exit_code=main.exit_code, outputs=outputs,
                         containers=results, started_at=self.started_at, finished_at=time.time(), log=self._log())

    def _failure(self) -> tuple[str, str] | None:
        """inferFailedReason (operator.go:1785-1916): init containers, then main, then sidecars (137/143 ignored)."""
        for role, phase in (("init", "Error"), ("main", "Failed"), ("sidecar", "Failed")):
            for c in self._role(role):
                code = c.exit_code
                if c.process is not None and c.process.setup_error or c.note.startswith("cannot start: "):
                    return "Error", f"{c.name}: {c.process.setup_error if c.process else c.note}"  # the runtime's
                if code and not (role == "sidecar" and code in (137, 143)):
                    return phase, f"{c.name}: Error (exit code {code})" + (f": {c.note}" if c.note else "")
        return None

    def _container_result(self, c: Container, pod_phase: str) -> ContainerResult:
        code = c.exit_code
        if code is None:
            phase, message = ("Failed", "Pod Failed whilst container running") if pod_phase != "Succeeded" else (
                "Succeeded", "")
        else:
            reason = "Completed" if code == 0 else "Error"
            phase = "Succeeded" if code == 0 else "Error" if code == 64 else "Failed"
            message = "" if code == 0 else f"{c.name}: {reason} (exit code {code}): {c.note}"
        process = c.process
        return ContainerResult(name=c.name, phase=phase, exit_code=code, message=message,
                               started_at=process.started_at if process else None,
                               finished_at=process.finished_at if process else None)

    def _save_outputs(self, main: Container, outputs: Outputs) -> str | None:
        """What the wait container saves (executor.go:738-785, 929-967); the first error, or None."""
        tmpl_outputs = self.spec.template.get("outputs") or {}
        where = main.view.host_path if main.view else Path
        if self.spec.capture_result:
            with open(main.stdout, "rb") as out:  # only the tail is kept: read no more of it
                out.seek(max(out.seek(0, os.SEEK_END) - RESULT_LIMIT - 1, 0))
                tail = out.read()
            tail = tail[:-1] if tail.endswith(b"\n") else tail
            outputs.result = tail[-RESULT_LIMIT:].decode("utf-8", errors="replace")
        lenient = self._stopped is not None  # stopped: outputs as far as they exist
        errors: list[str] = []  # PostMain: parameters up to the first error, then every artifact (aggregated)
        for param in tmpl_outputs.get("parameters") or []:
            value_from = param.get("valueFrom") or {}
            value = param.get("value")
            if value_from.get("path"):
                try:
                    value = where(str(value_from["path"])).read_text(errors="replace")
                except OSError as err:
                    if "default" not in value_from:
                        if lenient:
                            continue
                        errors.append(f"open {value_from['path']}: {(err.strerror or str(err)).lower()}")
                        break
                    value = str(value_from["default"])
                value = value[:-1] if value.endswith("\n") else value
            outputs.parameters.append(Parameter(str(param["name"]), None if value is None else str(value)))
        failed: list[str] = []
        for art in tmpl_outputs.get("artifacts") or []:
            try:
                ref = self.repository.save_output(art, where(str(art.get("path", ""))))
            except ArtifactError as err:
                failed.append(f"{err}; ")
                continue
            if ref is not None:
                outputs.artifacts.append(ref)
        if failed and not lenient:
            errors.append("".join(failed))
        return errors[0] if errors else None

    def _log(self) -> Path:
        log = self.pod_dir / "log"
        with open(log, "wb") as out:
            for c in self.containers:
                if c.process is None:
                    continue
                for stream in (c.stdout, c.stderr):
                    if stream.stat().st_size:
                        out.write(f"== {c.name} {stream.suffix.lstrip('.')} ==\n".encode())
                        with open(stream, "rb") as src:
                            shutil.copyfileobj(src, out)
        return log
