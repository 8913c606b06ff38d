"""The container images (images/*.Dockerfile), checked without a container engine: what they copy exists, the
modules they run start, every image they pull (base and uv) is pinned by digest, every package they install from
an index is checked against a sha256 hash, they run as a numeric non-root user, they are multi-stage with the
dependencies installed before the sources (so a code change does not reinstall them), and the lock file pins
every dependency of pyproject.toml."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
IMAGES = sorted((ROOT / "images").glob("*.Dockerfile"))
LOCK = ROOT / "requirements.lock"
BUILD_REQUIREMENTS = ROOT / "images" / "build-requirements.txt"
# A version tag for the reader (and the updating bot), then the digest that the build really pulls.
PINNED_IMAGE = re.compile(r"[a-z0-9./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}")


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


def pulled_images(path: Path) -> list[str]:
    """Every image a Dockerfile pulls: each FROM that does not name an earlier stage, and each COPY --from=<image>."""
    found, stage_names = [], set()
    for word, args in instructions(path):
        words = [w for w in args.split() if not w.startswith("--platform")]
        if word == "FROM":
            if words[0] not in stage_names:
                found.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stage_names.add(words[2])
        elif word == "COPY" and words[0].startswith("--from="):
            source = words[0].removeprefix("--from=")
            if source not in stage_names and not source.isdigit():
                found.append(source)
    return found


def requirements(path: Path) -> dict[str, tuple[str, list[str]]]:
    """A requirements file (a lock): normalised name -> (the pinned version, its --hash values)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = {}
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        name, sep, version = words[0].split(";")[0].partition("==")
        assert sep and re.fullmatch(r"[\w.+!-]+", version), f"{path.name}: not pinned: {line.strip()!r}"
        hashes = [w.removeprefix("--hash=") for w in words[1:] if w.startswith("--hash=")]
        found[re.sub(r"[-_.]+", "-", name.split("[")[0].lower())] = (version, hashes)
    return found


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
    pins = requirements(LOCK)  # fails on any requirement that is not pinned with ==
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower())
        assert name in pins, f"requirements.lock does not pin {name} (pyproject.toml: {requirement})"


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_every_image_a_dockerfile_pulls_is_pinned_by_digest(image: Path) -> None:
    pulled = pulled_images(image)
    assert pulled, f"{image.name}: pulls no image"
    for ref in pulled:
        assert PINNED_IMAGE.fullmatch(ref), f"{image.name}: {ref} is not pinned as <name>:<version>@sha256:<digest>"


def test_the_images_build_on_one_base() -> None:
    """One pinned base for both images and both stages: the venv built in the first stage runs on the same Python."""
    bases = {args.split()[0] for image in IMAGES for word, args in instructions(image) if word == "FROM"
             and args.split()[0] in pulled_images(image)}
    assert len(bases) == 1, bases


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_uv_is_one_pinned_release(image: Path) -> None:
    uv = [ref for ref in pulled_images(image) if ref.startswith("ghcr.io/astral-sh/uv:")]
    assert len(uv) == 1 and PINNED_IMAGE.fullmatch(uv[0]), f"{image.name}: uv comes from {uv}"
    for word, args in instructions(image):
        assert not (word == "RUN" and re.search(r"pip install[^&;]*\buv\b", args)), \
            f"{image.name}: installs uv from an index ({args!r}); copy the pinned uv image's binary instead"


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_every_package_installed_from_an_index_is_checked_against_its_hash(image: Path) -> None:
    installs = [args for word, args in instructions(image) if word == "RUN" and "pip install" in args]
    assert installs, f"{image.name}: installs nothing"
    hashed = [a for a in installs if "--require-hashes" in a]
    assert any("requirements.lock" in a for a in hashed), f"{image.name}: the lock is installed without hashes"
    for args in installs:
        if "--require-hashes" in args:
            for path in re.findall(r"-r\s+(\S+)", args):
                assert path.endswith((".lock", ".txt")), (image.name, path)
            continue
        # The project itself: nothing it depends on is fetched, and its build backend is the hash-checked one.
        assert args.split()[-1] == "." and "--no-deps" in args and "--no-build-isolation" in args, \
            f"{image.name}: `{args}` may fetch packages unchecked"


def test_the_build_requirements_pin_pyprojects_build_backend_with_hashes() -> None:
    pins = requirements(BUILD_REQUIREMENTS)
    for name, (_, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    source = BUILD_REQUIREMENTS.with_suffix(".in").read_text().splitlines()
    assert [line for line in source if line.strip() and not line.startswith("#")] == build_system, \
        "images/build-requirements.in is a copy of pyproject.toml's [build-system] requires"
    for text in build_system:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name.lower())
        assert name in pins and requirement.specifier.contains(pins[name][0]), \
            f"images/build-requirements.txt does not satisfy pyproject.toml's build-system: {text}"
    copied = [args for image in IMAGES for word, args in instructions(image)
              if word == "COPY" and "images/build-requirements.txt" in args]
    assert len(copied) == len(IMAGES)


def test_the_lock_carries_a_sha256_for_every_pin() -> None:
    for name, (_, hashes) in requirements(LOCK).items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), \
            f"requirements.lock: {name} has no hash, and the images install it with --require-hashes"
