"""The container images (images/*.Dockerfile), checked without a container engine: what they copy exists, the
modules they run start, base images are pinned, they run as a numeric non-root user, they are multi-stage with
the dependencies installed before the sources (so a code change does not reinstall them), and the lock file pins
every dependency of pyproject.toml."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = sorted((ROOT / "images").glob("*.Dockerfile"))
LOCK = ROOT / "requirements.lock"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages(path: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            found.append([])
        found[-1].append(ins)
    return found


def modules_run(path: Path) -> list[str]:
    """The `python -m X` modules an image runs: its ENTRYPOINT plus CMD."""
    command: list[str] = []
    for word, args in instructions(path):
        if word in ("ENTRYPOINT", "CMD"):
            command += json.loads(args)
    return [command[i + 1] for i, w in enumerate(command[:-1]) if w == "-m"]


def test_there_are_a_step_image_and_a_server_image() -> None:
    assert {p.name for p in IMAGES} >= {"steps.Dockerfile", "serve.Dockerfile"}


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_base_images_are_pinned_never_latest(image: Path) -> None:
    for word, args in instructions(image):
        if word == "FROM":
            ref = args.split()[0]
            assert ":" in ref and not ref.endswith(":latest"), f"{image.name}: FROM {ref} is not pinned to a tag"
            assert re.search(r":\d+\.\d+\.\d+", ref), f"{image.name}: FROM {ref}: pin a full version, not a moving tag"


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_the_final_stage_runs_as_a_numeric_non_root_user(image: Path) -> None:
    users = [args for word, args in stages(image)[-1] if word == "USER"]
    assert users, f"{image.name}: the final stage sets no USER (it would run as root)"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"{image.name}: USER {user!r} must be numeric (runAsNonRoot checks it)"
    assert int(user.split(":")[0]) != 0, f"{image.name}: USER {user} is root"


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_images_are_multi_stage_and_the_final_stage_copies_only_the_built_environment(image: Path) -> None:
    found = stages(image)
    assert len(found) >= 2, f"{image.name}: single stage; build tools would ship in the image"
    final = found[-1]
    assert not any(word == "RUN" and "install" in args for word, args in final), \
        f"{image.name}: the final stage installs packages; install in the build stage"
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final)


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_dependencies_are_installed_before_the_sources_are_copied(image: Path) -> None:
    build = stages(image)[0]
    lock_install = next(i for i, (w, a) in enumerate(build) if w == "RUN" and "requirements.lock" in a)
    lock_copy = next(i for i, (w, a) in enumerate(build) if w == "COPY" and "requirements.lock" in a)
    source_copies = [i for i, (w, a) in enumerate(build) if w == "COPY" and re.match(r"(steps|workflows)/", a)]
    assert source_copies, f"{image.name}: copies no sources"
    assert lock_copy < lock_install < min(source_copies), \
        f"{image.name}: a source change would reinstall every dependency"


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_everything_copied_from_the_repository_exists(image: Path) -> None:
    for word, args in instructions(image):
        if word == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"{image.name}: COPY {source}: not in the repository"


def test_the_server_image_runs_the_model_server() -> None:
    serve = ROOT / "images" / "serve.Dockerfile"
    entry = [args for word, args in instructions(serve) if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["python", "-m", "steps.serve"]


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_each_module_an_image_runs_exists_and_starts(image: Path) -> None:
    modules = sorted(set(modules_run(image)))
    assert modules, f"{image.name}: runs no python module"
    for module in modules:
        proc = subprocess.run([sys.executable, "-m", module, "--help"], check=False, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"{image.name}: python -m {module} --help failed: {proc.stderr[-500:]}"
        assert "usage" in proc.stdout.lower()


def test_every_step_the_workflows_run_exists_and_starts() -> None:
    """The step image runs whatever `python -m steps.<name>` the rendered templates name."""
    rendered = "\n".join(p.read_text() for p in (ROOT / "manifests" / "generated").rglob("*.yaml"))
    names = sorted(set(re.findall(r"steps\.([a-z_]+)\b", rendered)) - {"serve"})
    assert names, "no step found in manifests/generated"
    for name in names:
        assert (ROOT / "steps" / f"{name}.py").is_file(), f"a template runs steps.{name}, which does not exist"
        proc = subprocess.run([sys.executable, "-m", f"steps.{name}", "--help"], check=False, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"python -m steps.{name} --help: {proc.stderr[-500:]}"


def test_the_lock_file_pins_every_dependency_of_pyproject() -> None:
    assert LOCK.is_file(), "requirements.lock is missing (the images install from it)"
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.+!-]+", version.split(";")[0].strip()), f"not pinned: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name.split("[")[0].lower())] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower())
        assert name in pins, f"requirements.lock does not pin {name} (pyproject.toml: {requirement})"
