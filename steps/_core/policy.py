"""The policy file of one model (`gates/<model>.yaml`): loaded strictly, so a typo is an error, not a default.

The pydantic dataclasses below are both the file's rules and the objects the steps read; their JSON Schema is
published as gates/policy.schema.json (by `mlops compile`) so that editors complete and check the YAML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic.functional_validators import model_validator
from pydantic.json_schema import WithJsonSchema
from pydantic.types import Strict, StrictBool, StrictInt, StrictStr

from steps._core import categories
from steps._core.errors import UsageError

# The gates' table and Gate are part of the policy's interface (re-exported).
from steps._core.quality_gates import GATES as GATES
from steps._core.quality_gates import SKIPPED as SKIPPED
from steps._core.quality_gates import TASK_GATES as TASK_GATES
from steps._core.quality_gates import Gate as Gate
from steps._core.quality_gates import QualitySection, gate_from_section
from steps._core.values import (
    CONFIG,
    DURATION,
    NUMBER_TAG,
    RULE_TAG,
    Count,
    Duration,
    Fraction,
    Label,
    NonNegative,
    Number,
    Positive,
    Quantity,
    Section,
    doc,
    error_message,
    fail,
    is_url,
    one_of,
    quantity_value,
    rule,
    schema_string,
)

FEATURE_TYPES = ("numeric", "integer", "categorical")
ESTIMATORS = ("hist_gradient_boosting", "logistic_regression", "random_forest", "ridge")
TASKS = ("binary", "multiclass", "regression")
# The estimators each task can fit: logistic_regression classifies (multinomial for multiclass), ridge regresses.
TASK_ESTIMATORS = {
    "binary": ("hist_gradient_boosting", "logistic_regression", "random_forest"),
    "multiclass": ("hist_gradient_boosting", "logistic_regression", "random_forest"),
    "regression": ("hist_gradient_boosting", "random_forest", "ridge"),
}
THRESHOLD_RULES = ("fixed", "max_f1", "target_recall", "target_precision", "min_cost")
DRIFT_METHODS = ("psi", "jensen_shannon", "wasserstein", "ks")
SCHEMA_FILE = "policy.schema.json"  # beside the policies, which name it in a `yaml-language-server` comment
_MODEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
_CRON = re.compile(r"^\s*\S+(\s+\S+){4}\s*$")  # five fields
class PolicyError(UsageError, ValueError):
    """The policy file breaks a rule; the message names the file, the key and the value. A step exits 2."""


# --- the sections -----------------------------------------------------------------------------------------------


@dataclass(config=CONFIG)
class Feature(Section):
    """One column of the data contract."""

    _not_null: ClassVar[dict[str, str]] = {"min": "must be a number", "max": "must be a number"}

    name: StrictStr
    type: Annotated[StrictStr, one_of(*FEATURE_TYPES), schema_string(enum=list(FEATURE_TYPES))]
    min: Annotated[Number | None, WithJsonSchema({"type": "number"})] = None
    max: Annotated[Number | None, WithJsonSchema({"type": "number"})] = None
    nullable: StrictBool = False
    categories: Annotated[tuple[Label, ...], doc(
        "Categorical only: the values as the data writes them: text, or whole numbers for integer codes.")] = ()
    unknown: Annotated[StrictStr, one_of("other", "reject"), schema_string(enum=["other", "reject"]), doc(
        "Categorical only: `other` maps an unseen value to the other bucket, `reject` refuses it.")] = "reject"

    @model_validator(mode="before")
    @classmethod
    def _keys_of_its_type(cls, data: Any) -> Any:
        # On the file's keys, so that `unknown: reject` on a number is refused although it is the default.
        if isinstance(data, dict):
            categorical = data.get("type") == "categorical"
            for key in ("min", "max") if categorical else ("categories", "unknown"):
                if key in data:
                    raise fail(key, "only numeric and integer features have bounds" if categorical
                                else "only categorical features have categories")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.type == "categorical" and not self.categories:
            raise fail("categories", "must be a non-empty list of values")
        try:
            categories.lookup(self.categories)
        except ValueError as err:
            raise fail("categories", str(err)) from err
        if self.min is not None and self.max is not None and self.min > self.max:
            raise fail("min", f"must not exceed max {self.max}", self.min)
        return self


@dataclass(config=CONFIG)
class DataPolicy(Section):
    """The dataset and its contract: what validate checks, train learns from, serve accepts and drift bins."""

    source: Annotated[StrictStr, doc("The default dataset: CSV or Parquet; a path, file://, s3:// or generate:")]
    target: StrictStr
    features: tuple[Feature, ...]
    positive_label: Annotated[Label, doc("The target's class the model scores (its score is this class').")] = 1
    classes: Annotated[tuple[Label, ...] | None, doc(
        "The target's classes as the data writes them, e.g. [No, Yes]; the server answers with these labels. "
        "Left out: read from the training data.")] = None
    segment: Annotated[StrictStr | None, doc(
        "The column whose values the recall_gap (binary) or macro_f1_gap (multiclass) gate compares.")] = None
    target_min: Annotated[Number | None, WithJsonSchema({"type": "number"}), doc(
        "Regression only: the lowest target value validate accepts.")] = None
    target_max: Annotated[Number | None, WithJsonSchema({"type": "number"}), doc(
        "Regression only: the highest target value validate accepts.")] = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        return {f.name: f for f in self.features}[name]  # KeyError(name) for a name it lacks

    @model_validator(mode="after")
    def _consistent(self) -> DataPolicy:
        names = self.feature_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if not names:
            raise fail("features", "must list at least one feature")
        if dupes:
            raise fail("features", "feature names must be unique", dupes)
        if self.target in names:
            raise fail("target", "must not also be a feature", self.target)
        if self.segment is not None and self.segment not in names:
            raise fail("segment", "must name one of the features", self.segment)
        if self.classes is not None:
            try:
                keys = categories.lookup(self.classes)
            except ValueError as err:
                raise fail("classes", str(err)) from err
            if len(keys) < 2:
                raise fail("classes", "a target has at least two classes", list(self.classes))
        if self.target_min is not None and self.target_max is not None and self.target_min > self.target_max:
            raise fail("target_min", f"must not exceed target_max {self.target_max}", self.target_min)
        return self

    @property
    def negative_label(self) -> str | int | None:
        """The other class, when `classes` names them."""
        if self.classes is None:
            return None
        positive = categories.key(self.positive_label)
        return next(c for c in self.classes if categories.key(c) != positive)


@dataclass(config=CONFIG)
class ThresholdRule(Section):
    """How train chooses the decision threshold (a row is labelled positive at or above it), on a validation
    split of the training share, never on the holdout the gates use."""

    rule: Annotated[StrictStr, one_of(*THRESHOLD_RULES), schema_string(enum=list(THRESHOLD_RULES)), doc(
        "fixed: `value`; max_f1: the best F1; target_recall / target_precision: the highest threshold that "
        "reaches `value` recall (the lowest reaching `value` precision); min_cost: the least expected cost.")]
    value: Annotated[Fraction | None, doc("fixed: the threshold; target_*: the recall or precision.")] = None
    false_positive_cost: Annotated[NonNegative, doc("min_cost: the cost of a false alarm.")] = 1.0
    false_negative_cost: Annotated[NonNegative, doc("min_cost: the cost of a missed positive.")] = 1.0
    validation_fraction: Annotated[float, Strict(), Field(ge=0.05, le=0.5), doc(
        "The share of the training rows set aside to choose the threshold (not for fixed).")] = 0.2

    @model_validator(mode="after")
    def _value_where_needed(self) -> ThresholdRule:
        needs_value = self.rule == "fixed" or self.rule.startswith("target_")
        if needs_value and self.value is None:
            raise fail("value", f"required with rule {self.rule}")
        if not needs_value and self.value is not None:
            raise fail("value", f"only for the rules fixed, target_recall and target_precision, not {self.rule}",
                       self.value)
        if self.rule.startswith("target_") and self.value == 0:
            raise fail("value", "must be more than 0", self.value)
        return self


@dataclass(config=CONFIG)
class ModelPolicy(Section):
    """The task, the estimator, its hyper-parameters, the decision threshold, the seed and the holdout."""

    estimator: Annotated[StrictStr, one_of(*ESTIMATORS), schema_string(enum=list(ESTIMATORS))]
    task: Annotated[StrictStr, one_of(*TASKS), schema_string(enum=list(TASKS)), doc(
        "What the model predicts: binary (a class out of two, with a score), multiclass (a class out of three or "
        "more, with each class' probability) or regression (a number).")] = "binary"
    params: Annotated[dict[str, Any], doc("The estimator's parameters, as scikit-learn names them.")] = (
        dataclasses.field(default_factory=dict))
    threshold: Annotated[
        Annotated[Fraction, Tag(NUMBER_TAG)] | Annotated[ThresholdRule, Tag(RULE_TAG)],
        Discriminator(lambda value: RULE_TAG if isinstance(value, dict | ThresholdRule) else NUMBER_TAG),
        doc("A number (a fixed threshold), or a rule that chooses it at training.")] = 0.5
    seed: Count = 42
    holdout_fraction: Annotated[float, Strict(), Field(ge=0.05, le=0.5)] = 0.2
    max_training_rows: Annotated[Positive | None, doc(
        "Fit on at most this many rows: a sample of the training share (stratified on the target for classifiers, "
        "fixed by the seed) when it has more, for data larger than memory; the holdout stays the full "
        "holdout_fraction of the data, so the gates judge every held-out row. Left out: every training row.")] = None
    threads: Annotated[Positive | None, doc(
        "Threads for fitting and scoring (scikit-learn's OpenMP). Left out: the CPUs the pod may use (its CPU "
        "limit, else its CPU affinity); $MLOPS_THREADS overrides both. The model is the same for any count.")] = None

    @property
    def threshold_rule(self) -> ThresholdRule:
        """The threshold as a rule: a number is the rule `fixed` with that value."""
        if isinstance(self.threshold, ThresholdRule):
            return self.threshold
        return ThresholdRule("fixed", value=float(self.threshold))


@dataclass(config=CONFIG)
class CanaryStep(Section):
    """One step of the canary schedule."""

    _not_null: ClassVar[dict[str, str]] = {"pause": "must be a duration like 30s, 5m, 1h or 2d"}

    set_weight: Annotated[StrictInt, Field(ge=0, le=100), doc("The canary's share of the replicas, in percent.")]
    pause: Annotated[Duration | None, schema_string(pattern=DURATION.pattern)] = None
    analysis: Annotated[StrictBool, doc("Run the canary analysis after the pause.")] = False


@dataclass(config=CONFIG)
class CanaryAnalysis(Section):
    """`count` measurements, one per `interval`, of the canary's pods only."""

    interval: Duration = "5m"
    count: Positive = 3
    failure_limit: Count = 1
    inconclusive_limit: Annotated[Count, doc(
        "Measurements with too little traffic (or no data) are inconclusive, neither passed nor failed; more than "
        "this many make the analysis Inconclusive and the Rollout pauses for a person. Default min(1, count - 1).")] = 1
    latency_p95_ms: NonNegative = 100.0
    error_ratio: Fraction = 0.01
    min_requests: Count = 100
    prediction_shift: Annotated[NonNegative | None, WithJsonSchema({"type": "number", "minimum": 0}), doc(
        "Optional, any task: the highest PSI between the canary's and the stable's served prediction distributions "
        "over the interval, on bins both versions share: a multiclass model's classes (model_prediction_bin_total), "
        "a score's or a value's fixed bins otherwise (model_prediction_shift_bin_total: logit or signed-log "
        "spaced), so a retrain on drifted data is not read as a shift; left out, the analysis does not compare "
        "them.")] = None
    prometheus_url: Annotated[StrictStr, rule(is_url, "must be an http:// or https:// URL with a host"),
                              schema_string(pattern="^https?://"),
                              doc("The Prometheus the AnalysisTemplate queries.")] = (
        "http://prometheus-operated.monitoring.svc:9090")  # the Prometheus Operator's in-cluster service

    @model_validator(mode="before")
    @classmethod
    def _inconclusive_default(cls, data: Any) -> Any:
        count = data.get("count", 3) if isinstance(data, dict) else None  # 3: count's default
        if isinstance(count, int) and not isinstance(count, bool) and count >= 1 and "inconclusive_limit" not in data:
            return {**data, "inconclusive_limit": min(1, count - 1)}
        return data

    @model_validator(mode="after")
    def _idle_canary_fails(self) -> CanaryAnalysis:
        # Argo Rollouts counts a run whose measurements were all inconclusive (within the limit) as Successful.
        if self.inconclusive_limit >= self.count:
            raise fail("inconclusive_limit", f"must be less than canary.analysis.count ({self.count}), or an idle "
                        "canary passes", self.inconclusive_limit)
        return self


HTTP_PORT = 8080  # the model server's HTTP port in its pods (steps.serve's default)


@dataclass(config=CONFIG)
class CanaryServing(Section):
    """The model server's pods: batching, worker processes and resources (the seed's sizes by default)."""

    workers: Positive = 4
    max_batch_size: Positive = 32
    max_batch_latency_ms: NonNegative = 5.0
    cpu_request: Quantity = "2"
    memory_request: Quantity = "4Gi"
    cpu_limit: Quantity = "4"
    memory_limit: Quantity = "6Gi"
    model_volume: Annotated[Quantity, doc("The size limit of the folder the model is downloaded into.")] = "2Gi"
    grpc_port: Annotated[Annotated[StrictInt, Field(ge=1, le=65535)] | None, doc(
        "Also serve the KServe V2 gRPC API (inference.GRPCInferenceService) on this port: the pods get a container "
        "port and the Services a port named grpc (off when unset; the probes stay on HTTP).")] = None

    @model_validator(mode="after")
    def _requests_within_limits(self) -> CanaryServing:
        for request, limit in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
            asked, allowed = getattr(self, request), getattr(self, limit)
            if quantity_value(asked) > quantity_value(allowed):
                raise fail(request, f"must not exceed {limit} {allowed}", asked)
        if self.grpc_port == HTTP_PORT:
            raise fail("grpc_port", f"must differ from the server's HTTP port {HTTP_PORT}", self.grpc_port)
        return self


# The seed's schedule, for a policy that leaves `canary.steps` out: 10% -> 30% (each analysed) -> 60% -> 100%.
DEFAULT_CANARY_STEPS = (CanaryStep(10, "30m", True), CanaryStep(30, "30m", True), CanaryStep(60, "1h", False),
                        CanaryStep(100))


@dataclass(config=CONFIG)
class CanaryPolicy(Section):
    """The Argo Rollouts canary: the serving Rollout, its analysis and the rollout step follow it."""

    replicas: Positive = 5
    steps: Annotated[tuple[CanaryStep, ...], doc(
        "Each step: set_weight, then an optional pause, then (analysis: true) the analysis.")] = DEFAULT_CANARY_STEPS
    analysis: CanaryAnalysis = CanaryAnalysis()
    serving: CanaryServing = CanaryServing()

    @model_validator(mode="after")
    def _weights_grow(self) -> CanaryPolicy:
        weights = [s.set_weight for s in self.steps]
        if weights != sorted(weights):
            raise fail("steps", "weights must not decrease", weights)
        return self


@dataclass(config=CONFIG)
class DriftPolicy(Section):
    """The drift rule: drift when at least `drift_share` of the features score `threshold` or more."""

    method: Annotated[StrictStr, one_of(*DRIFT_METHODS), schema_string(enum=list(DRIFT_METHODS))] = "psi"
    threshold: NonNegative = 0.15
    drift_share: Fraction = 0.3
    min_samples: Count = 10000
    window: Duration = "1h"
    schedule: Annotated[StrictStr, rule(_CRON.match, "must be a 5-field cron expression"),
                        schema_string(pattern=_CRON.pattern)] = "0 * * * *"
    cooldown: Duration = "6h"


@dataclass(config=CONFIG)
class _Document(Section):
    """A policy file, gates/<model>.yaml: every threshold that decides whether a model moves forward."""

    model_name: Annotated[StrictStr, rule(_MODEL_NAME.match, "must be lowercase letters, digits and '-' (a "
                                           "Kubernetes name)"), schema_string(pattern=_MODEL_NAME.pattern),
                          doc("A Kubernetes name, and the policy file's name: gates/<model_name>.yaml.")]
    data: DataPolicy
    model: ModelPolicy
    quality: QualitySection  # type: ignore[valid-type]  # a class made from GATES
    canary: CanaryPolicy | None = None
    drift: DriftPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _written_for_the_task(cls, data: Any) -> Any:
        # On the file's keys: a binary-only key written for another task is a mistake, although it has a default.
        if not isinstance(data, dict):
            return data
        model, section = data.get("model"), data.get("data")
        task = model.get("task", "binary") if isinstance(model, dict) else "binary"
        if task not in TASKS:
            return data  # the task's own rule reports it
        if task != "binary":
            if isinstance(section, dict) and "positive_label" in section:
                raise fail("data.positive_label", f"only a binary model has a positive label (model.task is {task})",
                           section["positive_label"])
            if isinstance(model, dict) and "threshold" in model:
                raise fail("model.threshold", f"only a binary model has a decision threshold (model.task is {task})",
                           model["threshold"])
        if task != "regression" and isinstance(section, dict):
            for key in ("target_min", "target_max"):
                if key in section:
                    raise fail(f"data.{key}", f"only a regression target has a range (model.task is {task})",
                               section[key])
        quality = data.get("quality")
        if isinstance(quality, dict):
            for name in quality:
                if name in GATES and name not in TASK_GATES[task]:
                    raise fail(f"quality.{name}", f"not a gate of a {task} model (its gates: "
                               f"{', '.join(sorted(TASK_GATES[task]))})")
        return data

    @model_validator(mode="after")
    def _consistent_with_the_task(self) -> _Document:
        task, data, model = self.model.task, self.data, self.model
        if model.estimator not in TASK_ESTIMATORS[task]:
            raise fail("model.estimator", f"a {task} model is fit by one of {', '.join(TASK_ESTIMATORS[task])}",
                       model.estimator)
        if task == "regression" and data.classes is not None:
            raise fail("data.classes", "a regression target has no classes", list(data.classes))
        if task == "binary" and data.classes is not None:
            if len(data.classes) != 2:
                raise fail("data.classes", "a binary target has exactly two classes", list(data.classes))
            if categories.key(data.positive_label) not in categories.lookup(data.classes):
                raise fail("data.positive_label", f"must be one of data.classes ({categories.shown(data.classes)})",
                           data.positive_label)
        if task == "multiclass" and data.classes is not None and len(data.classes) < 3:
            raise fail("data.classes", "a multiclass target has three classes or more (two: model.task binary)",
                       list(data.classes))
        return self


@dataclasses.dataclass(frozen=True)
class Policy:
    """A loaded policy file: its sections, its gates in the file's order, and where it came from."""

    model_name: str
    data: DataPolicy
    model: ModelPolicy
    quality: tuple[Gate, ...]
    canary: CanaryPolicy
    drift: DriftPolicy
    path: Path
    sha256: str

    def gate(self, name: str) -> Gate | None:
        return next((g for g in self.quality if g.name == name), None)


def builtin_policy_dir() -> Path:
    """The policies shipped with the package (gates/ as package data)."""
    return Path(str(resources.files("gates")))


def policy_path(model: str, policy: str | Path | None = None) -> Path:
    """Where the policy of `model` is: `--policy FILE` when given, else ./gates/<model>.yaml, else the packaged one."""
    if policy:
        return Path(policy)
    local = Path("gates") / f"{model}.yaml"
    if local.is_file():
        return local
    return builtin_policy_dir() / f"{model}.yaml"


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file, made from the sections above."""
    schema = TypeAdapter(_Document).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "argo-mlops policy"}


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file. The PolicyError lists every problem, one a line (`file: key: rule (got
    value)`), except that an unknown or misplaced key ends the checks of the mapping it is in."""
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError as err:
        raise PolicyError(f"{path}: policy file not found (name the file with --policy FILE, or write one from "
                          "your data with `mlops init --data FILE --target COLUMN`)") from err
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from err
    try:
        doc = TypeAdapter(_Document).validate_python(raw)
    except ValidationError as err:
        raise PolicyError("\n".join(f"{path}: {error_message(e, raw)}" for e in err.errors())) from err
    if path.suffix in (".yaml", ".yml") and path.stem != doc.model_name and path.parent.name == "gates":
        raise PolicyError(f"{path}: model_name: must match the file name {path.stem!r} (got {doc.model_name!r})")
    # In the file's order.
    quality = tuple(gate_from_section(name, getattr(doc.quality, name)) for name in raw["quality"])
    return Policy(doc.model_name, doc.data, doc.model, quality, doc.canary or CanaryPolicy(),
                  doc.drift or DriftPolicy(), path, hashlib.sha256(raw_bytes).hexdigest())
