"""The example policies of the other tasks (gates/examples/: demand-forecast, regression; ticket-triage, multiclass)
render beside the fraud detector as a project with three models renders them: each model its own set of manifests,
and nothing task-specific in the templates (a model's manifests differ from another's only by what its policy says)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps._core.policy import builtin_policy_dir, load_policy
from workflows.render import render_model

EXAMPLES = {"demand-forecast": "regression", "ticket-triage": "multiclass"}
FRAUD = builtin_policy_dir() / "fraud-detection.yaml"


def mlops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workflows.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize(("model", "task"), list(EXAMPLES.items()))
def test_each_example_is_a_policy_of_its_task(model: str, task: str) -> None:
    policy = load_policy(builtin_policy_dir() / "examples" / f"{model}.yaml")
    assert policy.model_name == model and policy.model.task == task
    assert policy.data.source == f"generate:{model}?rows=100000&seed=42"


def test_three_models_of_three_tasks_render_their_own_sets_and_lint(tmp_path: Path) -> None:
    (tmp_path / "gates").mkdir()
    shutil.copy(FRAUD, tmp_path / "gates")
    for model in EXAMPLES:
        shutil.copy(builtin_policy_dir() / "examples" / f"{model}.yaml", tmp_path / "gates")
    compiled = mlops("compile", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    generated = tmp_path / "manifests" / "generated"
    sets = {model: sorted(str(p.relative_to(generated / model)) for p in (generated / model).rglob("*.yaml"))
            for model in ["fraud-detection", *EXAMPLES]}
    assert sets["demand-forecast"] == sets["ticket-triage"] == sets["fraud-detection"]
    top = yaml.safe_load((generated / "kustomization.yaml").read_text())
    assert {"fraud-detection", "demand-forecast", "ticket-triage"} <= set(top["resources"])
    names: dict[tuple[str, str], str] = {}
    for path in generated.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "metadata" in doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in names, f"{key} in {path} and {names[key]}"  # no model overwrites another's
                names[key] = str(path)
    linted = mlops("lint", "manifests/generated", cwd=tmp_path)
    assert linted.returncode == 0, linted.stdout[-2000:] + linted.stderr[-2000:]


@pytest.mark.parametrize("model", list(EXAMPLES))
def test_a_model_s_manifests_differ_from_the_fraud_detector_s_only_by_its_policy(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example with the fraud detector's deployment settings (canary, data.source) renders the fraud detector's
    manifests but for the model's name, the policy itself and its digest: the templates know no task."""
    raw: dict[str, Any] = yaml.safe_load((builtin_policy_dir() / "examples" / f"{model}.yaml").read_text())
    fraud_raw = yaml.safe_load(FRAUD.read_text())
    raw["canary"], raw["data"]["source"] = fraud_raw["canary"], fraud_raw["data"]["source"].replace(
        "fraud-detection", model)
    monkeypatch.chdir(tmp_path)  # both rendered from ./gates/, as `mlops compile` renders a project's models
    Path("gates").mkdir()
    Path("gates", f"{model}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(FRAUD, "gates")
    ours = render_model(load_policy(Path("gates", f"{model}.yaml")))
    fraud = render_model(load_policy(Path("gates", "fraud-detection.yaml")))
    assert sorted(ours) == sorted(fraud)

    def normal(text: str, name: str) -> tuple[str, list[str]]:
        """(the comments without blanks: they wrap by the name's length; the lines of the YAML)."""
        lines = re.sub(r"policy-sha256: [0-9a-f]{64}", "policy-sha256: SHA", text.replace(name, "MODEL")).splitlines()
        comments = re.sub(r"\s+", "", "".join(line.lstrip("#") for line in lines if line.startswith("#")))
        return comments, [line for line in lines if not line.startswith("#")]

    for file in sorted(ours):
        if file == "policy-configmap.yaml":
            configmap = yaml.safe_load(ours[file])
            assert yaml.safe_load(next(iter(configmap["data"].values())))["model"]["task"] == EXAMPLES[model]
            continue
        assert normal(ours[file], model) == normal(fraud[file], "fraud-detection"), file
