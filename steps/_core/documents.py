"""The JSON documents that cross processes, each defined once: its writer builds it with this type and its
readers read it through the same type (mypy checks both sides).

| document | written by | read by |
| --- | --- | --- |
| `bundle.json` (`BundleManifest`) | train, then the registry (adds `version`, `gate`) | gate, register, serve,
  drift, registry |
| `source.json` (`SourceRecord`) | validate | train |
| `gate.json` (`GateReport`) | gate | register, the registry, `mlops run`'s summary |
| `index.json` (`RegistryIndex`) | the registry, by compare-and-swap | every registry reader |
| `drift.json` (`DriftReport`) | drift | `mlops demo`, people |
| `run.json` (`RunDocument`) | the local runner | `mlops run`'s summary, tests |

`docs/steps.md` describes each field for people.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# --- the model bundle ------------------------------------------------------------------------------------------


class FeatureRecord(TypedDict):
    """One feature of the data contract as bundle.json records it (steps._model.contract.feature_to_dict)."""

    name: str
    type: str  # numeric | integer | categorical
    nullable: bool
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    categories: NotRequired[list[str | int]]
    unknown: NotRequired[str]  # categorical only: reject | other


class ContractRecord(TypedDict):
    target: str
    positive_label: NotRequired[Any]  # binary only
    segment: str | None
    features: list[FeatureRecord]
    # the target's classes as the data writes them: binary the negative first; multiclass in the order of the
    # model's probability columns; regression: absent (bundles trained before: absent)
    classes: NotRequired[list[str | int]]
    # binary | multiclass | regression (bundles trained before recording it: binary)
    task: NotRequired[str]
    # regression: the policy's data.target_min / target_max
    target_min: NotRequired[float | None]
    target_max: NotRequired[float | None]


class SourceRecord(TypedDict):
    """The dataset a run read (validate's source.json, and `data` in bundle.json)."""

    uri: str
    sha256: str
    rows: int
    format: str  # csv | parquet


class CompiledPredictorRecord(TypedDict):
    """What bundle.json says about model.trees.json: its file and size, or why there is none."""

    file: str | None
    reason: NotRequired[str]
    format: NotRequired[str]
    trees: NotRequired[int]
    nodes: NotRequired[int]


class TrainingRecord(TypedDict):
    """The lineage train records of a run: bundle.json without `format_version` and `files`, which
    steps._model.bundle.write_manifest adds."""

    model: str
    fingerprint: str
    created_at: str
    git_commit: str
    reason: str
    drifted_features: list[str]
    data: SourceRecord
    estimator: str
    params: dict[str, Any]
    seed: int
    threshold: float | None  # binary; None for multiclass and regression
    # how the threshold was chosen (model.threshold): the rule, and on a validation split its precision, recall,
    # F1 and whether a target was reached (bundles trained before: absent)
    threshold_rule: NotRequired[dict[str, Any]]
    policy_sha256: str
    contract: ContractRecord
    library_versions: dict[str, str]
    metrics: dict[str, Any]  # numbers; train_class_shares (multiclass) is a list
    compiled_predictor: CompiledPredictorRecord


class BundleManifest(TrainingRecord):
    """bundle.json: every file's sha256 (`files`) and the lineage of the training run."""

    format_version: int
    files: dict[str, str]
    # added by the registry to the copy it stores
    version: NotRequired[int]
    gate: NotRequired[GateReport]


# --- the gate --------------------------------------------------------------------------------------------------


class GateEntry(TypedDict):
    """One gate's verdict in gate.json."""

    name: str
    passed: bool  # false only for a failure (or a skip the policy blocks on): the gate does not hold the model back
    status: NotRequired[str]  # pass | fail | skipped (gate reports written before: absent)
    value: float | None
    bound: float | None
    bound_kind: str  # minimum | maximum | required
    comparison: str | None  # gte | lte
    baseline_value: float | None
    tolerance: float | None
    interval: NotRequired[list[float] | None]  # bootstrap bounds of (candidate - baseline), where measured
    note: str


class BaselineRecord(TypedDict):
    version: int | str | None
    metrics: dict[str, float | None]


class GateReport(TypedDict):
    """gate.json."""

    model: str
    passed: bool
    holdout_rows: int
    candidate: dict[str, float | None]
    baseline: BaselineRecord | None
    gates: list[GateEntry]
    failed: list[str]
    skipped: NotRequired[list[str]]  # gates that could not be evaluated (whether or not they block)


# --- the registry ----------------------------------------------------------------------------------------------


# One lifecycle transition: who moved the version, from what to what, when, why, with what evidence. `from` is
# a Python keyword, hence the functional form.
HistoryEntry = TypedDict("HistoryEntry", {
    "from": str | None, "to": str, "at": str, "by": str, "why": str, "details": NotRequired[dict[str, Any]],
})


class GateSummary(TypedDict):
    passed: bool
    failed: list[str]
    checked: list[str]


class VersionRecord(TypedDict):
    """A version in index.json."""

    version: int
    status: str  # staged | canary | production | archived | rejected
    fingerprint: str
    created_at: str
    git_commit: str | None
    reason: str | None
    bundle_sha256: str
    files: dict[str, str]
    metrics: dict[str, float]
    gate: GateSummary
    history: list[HistoryEntry]


class RegistryIndex(TypedDict):
    """index.json: the only mutable object of a model in the registry."""

    format_version: int
    model: str
    versions: list[VersionRecord]


# --- the drift check -------------------------------------------------------------------------------------------


class FeatureDriftRecord(TypedDict):
    """One feature's score in drift.json (steps._drift.rule.FeatureDrift.to_dict); no infinities or NaN."""

    name: str
    type: str
    method: str
    score: float | None
    p_value: float | None
    drifted: bool
    count: int
    bins: list[str]
    reference: list[float]
    current: list[float]


class TriggerRecord(TypedDict):
    """What became of the retrain request (steps._drift.trigger.Trigger.to_dict)."""

    status: str  # sent | cooldown | not_configured | none | error
    idempotency_key: NotRequired[str | None]
    attempts: NotRequired[int]
    detail: NotRequired[str]


class DriftResultRecord(TypedDict):
    """The policy's rule over every feature (steps._drift.rule.DriftResult.to_dict)."""

    method: str
    threshold: float
    drift_share: float
    min_samples: int
    samples: int
    share: float
    decision: str  # retrain | no_retrain | waiting_for_more_data
    reason: str
    drifted_features: list[str]
    features: list[FeatureDriftRecord]
    # prediction drift (the served / scored predictions against profile.json's `prediction`) and, for regression,
    # target drift (a current dataset's target against profile.json's `target`); None when not measured. Reported
    # beside the features, never counted in `share` (steps/_drift/rule.py says why).
    prediction: NotRequired[FeatureDriftRecord | None]
    target: NotRequired[FeatureDriftRecord | None]


class DriftReport(DriftResultRecord):
    """drift.json: the rule's result, what it compared, and what became of the retrain request."""

    model: str
    production_version: int
    source: str
    window: str
    checked_at: str
    trigger: TriggerRecord


# --- a local run -----------------------------------------------------------------------------------------------


class NodeOutputs(TypedDict):
    parameters: dict[str, str]
    artifacts: dict[str, str]  # name -> local path


class NodeRecord(TypedDict):
    template: str
    phase: str  # Pending | Running | Succeeded | Failed | Error | Skipped | Omitted
    message: str
    exitCode: int | None
    attempts: int
    duration: float | None
    outputs: NodeOutputs
    log: str
    # Measured by the local runner (os.wait4 of each container's process): the largest process's peak resident
    # memory, in bytes, and the CPU time (user + system) of the pod's processes, in seconds. Absent when no
    # process ran (or it has not ended yet).
    maxRSSBytes: NotRequired[int]
    cpuSeconds: NotRequired[float]


class RunDocument(TypedDict):
    """run.json in a local run's folder: the workflow's phase as Argo's, and every node's."""

    name: str
    phase: str  # Running | Succeeded | Failed | Error
    message: str
    parameters: dict[str, str]
    duration: float
    tasks: dict[str, NodeRecord]
    # The Workflow's metadata.labels and metadata.annotations as Argo would hold them when the run stopped:
    # spec.workflowMetadata applied (substituted), labels a resource template patched onto the Workflow, and the
    # controller's own (workflows.argoproj.io/phase, /completed, /workflow-template...). The Argo UI shows the
    # annotations workflows.argoproj.io/title and /description (markdown) in place of the name.
    labels: dict[str, str]
    annotations: dict[str, str]
    # The entrypoint's outputs (its node's status.nodes[<workflow>].outputs: what the Argo UI shows for the
    # workflow's root node): `parameters` by name, `artifacts` by name (the path in the run folder), `exitCode`.
    outputs: dict[str, Any]
