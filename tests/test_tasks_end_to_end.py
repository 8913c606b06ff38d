"""A regression and a multiclass table go through the loop from `mlops init` with no hand edit, as a new user takes
them: init -> run training -> production -> serve (V1 and V2, in the task's format) -> drift check on the training
data (no drift) -> a retrain on shuffled targets, rejected by the gate while v1 keeps production.

Each task on a public table (tests/data/README.md: Bikeshare's riders, the Palmer penguins' species) and on the
generated data of its reference model (`mlops data generate --task`: store demand, support tickets).
The binary version of this is tests/test_new_model.py."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.test_new_model import call, mlops, serve

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Table:
    model: str  # what `mlops init` names it: the file's name
    target: str
    task: str
    init_args: tuple[str, ...] = ()
    generate_task: str | None = None  # made by `mlops data generate --task`, else copied from tests/data


# The public tables. The generated data of each task goes through the same loop in `mlops demo --task`
# (tests/workflows/demo/test_demo_tasks.py); here one generated table still comes through `mlops init`, with a
# segment (the macro_f1_gap gate).
TABLES = [
    Table("bikeshare", "bikers", "regression"),
    Table("penguins", "species", "multiclass"),
    Table("tickets", "team", "multiclass", ("--segment", "region"), generate_task="multiclass"),
]


@dataclass(frozen=True)
class Project:
    table: Table
    folder: Path
    csv: Path
    policy: dict[str, Any]
    trained: str  # `mlops run training`'s output


@pytest.fixture(scope="module", params=TABLES, ids=[t.model for t in TABLES])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project folder where `mlops init` and one training run of the table happened."""
    table: Table = request.param
    folder = tmp_path_factory.mktemp(table.model)
    csv = folder / f"{table.model}.csv"
    if table.generate_task:
        made = mlops("data", "generate", "--task", table.generate_task, "--rows", "20000", "--seed", "7",
                     "--out", csv.name, cwd=folder)
        assert made.returncode == 0, made.stderr
    else:
        shutil.copy(DATA / csv.name, csv)
    init = mlops("init", "--data", csv.name, "--target", table.target, *table.init_args, cwd=folder)
    assert init.returncode == 0, init.stdout + init.stderr
    policy = yaml.safe_load((folder / "gates" / f"{table.model}.yaml").read_text())
    trained = mlops("run", "training", "--model", table.model, cwd=folder)
    assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-2000:]
    return Project(table, folder, csv, policy, trained.stdout)


def instances(project: Project, rows: int, complete: bool = False) -> list[dict[str, Any]]:
    """Rows of the training file as a JSON client sends them (without the target); `complete`: no missing value."""
    frame = pd.read_csv(project.csv).drop(columns=project.table.target)
    if complete:
        frame = frame.dropna()
    found: list[dict[str, Any]] = json.loads(frame.head(rows).to_json(orient="records"))
    return found


def v2_inputs(project: Project, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One OIP V2 input tensor per feature of the policy's contract, typed as the contract says."""
    out = []
    for feature in project.policy["data"]["features"]:
        name, kind = feature["name"], feature["type"]
        if kind == "categorical":
            datatype = "BYTES" if isinstance(feature["categories"][0], str) else "INT64"
        else:
            datatype = "INT64" if kind == "integer" else "FP64"
        out.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": [r[name] for r in rows]})
    return out


def test_init_infers_the_task_and_training_reaches_production(project: Project) -> None:
    table, policy = project.table, project.policy
    assert policy["model"]["task"] == table.task
    labels = pd.read_csv(project.csv)[table.target]
    if table.task == "multiclass":
        assert sorted(policy["data"]["classes"]) == sorted(labels.unique())
    else:
        assert policy["data"]["target_min"] <= labels.min() and labels.max() <= policy["data"]["target_max"]
    assert f"Rollout: {table.model} v1 promoted to production" in project.trained
    assert "Gate: PASSED" in project.trained


def test_served_on_v1_in_the_task_s_format(project: Project) -> None:
    model, rows = project.table.model, instances(project, 50)
    for port in serve(model, project.folder):
        status, answer = call(port, "POST", f"/v1/models/{model}:predict", {"instances": rows})
        assert status == 200, answer
        predictions = answer["predictions"]
        assert len(predictions) == len(rows) and answer["model_version"] in (1, "1")
        if project.table.task == "regression":
            low, high = project.policy["data"]["target_min"], project.policy["data"]["target_max"]
            for p in predictions:
                assert set(p) == {"value"} and isinstance(p["value"], float) and math.isfinite(p["value"]), p
                assert low - 0.5 * (high - low) <= p["value"] <= high + 0.5 * (high - low), p
        else:
            classes = project.policy["data"]["classes"]
            for p in predictions:
                assert set(p) == {"label", "probabilities"}, p
                assert list(p["probabilities"]) == [str(c) for c in classes]
                assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
                assert all(0.0 <= v <= 1.0 for v in p["probabilities"].values())
                assert str(p["label"]) == max(p["probabilities"], key=p["probabilities"].__getitem__)


def test_served_on_v2_with_the_class_order_in_the_metadata(project: Project) -> None:
    model, rows = project.table.model, instances(project, 3, complete=True)
    for port in serve(model, project.folder):
        status, answer = call(port, "POST", f"/v2/models/{model}/infer", {"inputs": v2_inputs(project, rows)})
        assert status == 200, answer
        outputs = {o["name"]: o for o in answer["outputs"]}
        if project.table.task == "regression":
            value = outputs["value"]
            assert value["datatype"] == "FP64" and value["shape"] == [3] and len(value["data"]) == 3
            assert all(math.isfinite(v) for v in value["data"])
        else:
            classes = project.policy["data"]["classes"]
            status, metadata = call(port, "GET", f"/v2/models/{model}")
            assert status == 200 and metadata["parameters"]["classes"] == classes, metadata
            label, probabilities = outputs["label"], outputs["probabilities"]
            assert label["shape"] == [3] and label["datatype"] in ("BYTES", "INT64")
            assert probabilities["datatype"] == "FP64" and probabilities["shape"] == [3, len(classes)]
            flat = probabilities["data"]
            assert len(flat) == 3 * len(classes)  # row-major, as OIP clients reshape it
            for row, served_label in enumerate(label["data"]):
                shares = flat[row * len(classes):(row + 1) * len(classes)]
                assert sum(shares) == pytest.approx(1.0, abs=1e-6)
                assert served_label == classes[shares.index(max(shares))]
        standard_client_reads(port, project, rows, outputs)


def standard_client_reads(port: int, project: Project, rows: list[dict[str, Any]], outputs: dict[str, Any]) -> None:
    """A standard Open Inference Protocol client (tritonclient) reads the same answer the JSON carried."""
    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (a dev extra) is not installed")
    model = project.table.model
    client = http.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        inputs = []
        for tensor in v2_inputs(project, rows):
            dtype = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64}[tensor["datatype"]]
            found = http.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            found.set_data_from_numpy(np.array(tensor["data"], dtype=dtype), binary_data=False)
            inputs.append(found)
        names = list(outputs)
        result = client.infer(model, inputs, outputs=[http.InferRequestedOutput(n, binary_data=False) for n in names])
        for name in names:
            read = result.as_numpy(name)
            assert list(read.shape) == outputs[name]["shape"], name
            if outputs[name]["datatype"] == "FP64":
                assert np.allclose(read.ravel(), outputs[name]["data"], rtol=0, atol=1e-9), name
            else:
                assert [x.decode() if isinstance(x, bytes) else x for x in read.tolist()] == outputs[name]["data"]
    finally:
        client.close()


def test_the_training_file_shows_no_drift(project: Project) -> None:
    model = project.table.model
    checked = mlops("drift", "check", "--model", model, "--current", project.csv.name, "--report-dir", "drift",
                    cwd=project.folder)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    report = json.loads((project.folder / "drift" / "drift.json").read_text())
    assert report["decision"] == "no_retrain" and report["drifted_features"] == [], report["decision"]
    # The production model scores its own training file as it scored its holdout: no prediction drift, nor target
    # drift for a regression target.
    assert report["prediction"] is not None and not report["prediction"]["drifted"], report["prediction"]
    if project.table.task == "regression":
        assert report["target"] is not None and not report["target"]["drifted"], report["target"]


def test_a_shuffled_target_retrain_is_rejected_while_v1_keeps_production(project: Project) -> None:
    """Last: it registers v2. Shuffled targets carry no signal: the gate against the naive baseline rejects it."""
    table = project.table
    frame = pd.read_csv(project.csv)
    frame[table.target] = frame[table.target].sample(frac=1.0, random_state=11).to_numpy()
    frame.to_csv(project.folder / "shuffled.csv", index=False)
    rejected = mlops("run", "training", "--model", table.model, "-p", "dataset=shuffled.csv", "-p", "reason=manual",
                     cwd=project.folder)
    assert rejected.returncode == 1, rejected.stdout[-4000:] + rejected.stderr[-2000:]
    baseline_gate = "rmse_vs_mean" if table.task == "regression" else "log_loss_vs_prior"
    assert "Gate: REJECTED" in rejected.stdout and baseline_gate in rejected.stdout.split("Gate: REJECTED")[1]
    listed = mlops("registry", "list", "--model", table.model, "--json", cwd=project.folder)
    statuses = {v["version"]: v["status"] for v in json.loads(listed.stdout)["versions"]}
    assert statuses == {1: "production", 2: "rejected"}
