"""The policy file of one model (`gates/<model>.yaml`): loaded strictly, so a typo is an error, not a default.

The pydantic dataclasses below are both the file's rules and the objects the steps read; their JSON Schema is
published as gates/policy.schema.json (by `mlops compile`) so that editors complete and check the YAML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic.functional_validators import AfterValidator, BeforeValidator, model_validator
from pydantic.json_schema import WithJsonSchema
from pydantic.types import Strict, StrictBool, StrictInt, StrictStr
from pydantic_core import ErrorDetails, PydanticCustomError

from steps._core.errors import UsageError

FEATURE_TYPES = ("numeric", "integer", "categorical")
ESTIMATORS = ("hist_gradient_boosting", "logistic_regression", "random_forest")
DRIFT_METHODS = ("psi", "jensen_shannon", "wasserstein", "ks")
SCHEMA_FILE = "policy.schema.json"  # beside the policies, which name it in a `yaml-language-server` comment
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_MODEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
_CRON = re.compile(r"^\s*\S+(\s+\S+){4}\s*$")  # five fields
# A Kubernetes resource quantity as the policy may write it: 2, "500m", "4Gi", 1.5.
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_FACTOR = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
                    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}

# The quality gates we know how to measure: name -> (direction, extra settings with their defaults).
# Direction says which bound the gate takes: "min" (higher is better) or "max" (lower is better).
GATES: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy": ("min", {}),
    "pr_auc": ("min", {}),
    "roc_auc": ("min", {}),
    "latency_p95_ms": ("max", {"calls": 1000}),
    "model_size_mb": ("max", {}),
    "feature_importance_stability": ("min", {}),
    "peak_memory_mb": ("max", {"rows": 10000}),
    "recall_gap": ("max", {"min_positives": 20}),
    "edge_cases": ("required", {}),
    "predictor_parity": ("max", {}),
}


class PolicyError(UsageError, ValueError):
    """The policy file breaks a rule; the message names the file, the key and the value. A step exits 2."""


def duration_seconds(text: str) -> int:
    """'30m' -> 1800. Raises ValueError for anything else."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 2d")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def quantity_value(text: str) -> float:
    """'500m' -> 0.5, '4Gi' -> 4294967296.0. Raises ValueError for anything else."""
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a Kubernetes quantity like 500m, 2, 512Mi or 4Gi")
    return float(m.group(1)) * _QUANTITY_FACTOR[m.group(2) or ""]


# --- value types: strict (`true` is not 1, "1" is not a number), each with the schema editors see ---------------


def _rule(ok: Callable[[str], object], rule: str) -> AfterValidator:
    """Refuses the strings `ok` rejects, with `rule (got value)`."""
    def check(value: str) -> str:
        if not ok(value):
            raise ValueError(f"{rule} (got {value!r})")
        return value
    return AfterValidator(check)


def _one_of(*choices: str) -> AfterValidator:
    return _rule(lambda value: value in choices, f"must be one of {', '.join(choices)}")


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _quantity(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a quantity like 500m, 2 or 4Gi (got {value!r})")
    if quantity_value(str(value)) <= 0:  # its ValueError names the value
        raise ValueError(f"{str(value)!r} must be more than zero")
    return str(value)


def _string(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", **schema})


def _doc(description: str) -> Any:
    """The key's description in the schema (what an editor shows beside it)."""
    return Field(description=description)


Number = Annotated[float, Strict()]  # an int or a float (read as a float), never a bool or a string
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(ge=1)]
Duration = Annotated[StrictStr, _rule(_DURATION.match, "must be a duration like 30s, 5m, 1h or 2d"),
                     _string(pattern=_DURATION.pattern)]
Quantity = Annotated[str, BeforeValidator(_quantity), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _QUANTITY.pattern}, {"type": "number", "exclusiveMinimum": 0}]})]


def _fail(key: str, rule: str, value: object = ...) -> PydanticCustomError:
    """An error at `key` of the section raising it, reported by load_policy as `file: section.key: rule`."""
    shown = "" if value is ... else f" (got {value!r})"
    return PydanticCustomError("policy", "{rule}", {"key": key, "rule": rule + shown})


_CONFIG = ConfigDict(extra="forbid", frozen=True)


@dataclass(config=_CONFIG)
class _Section:
    """A mapping of the file. An unknown key is refused, naming the allowed ones; so is null for the keys in
    `_not_null` (optional, and with no value to fall back on: left empty, they are a mistake, not a default)."""

    _not_null: ClassVar[dict[str, str]] = {}  # key -> the rule a null breaks

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):  # read from the file (built in Python, the signature checks the keys)
            allowed = sorted(f.name for f in dataclasses.fields(cls))
            for key, value in data.items():
                if key not in allowed:
                    raise _fail(str(key), f"unknown key (allowed: {', '.join(allowed)})")
                if value is None and key in cls._not_null:
                    raise _fail(key, cls._not_null[key], value)
        return data


# --- the sections -----------------------------------------------------------------------------------------------


@dataclass(config=_CONFIG)
class Feature(_Section):
    """One column of the data contract."""

    _not_null: ClassVar[dict[str, str]] = {"min": "must be a number", "max": "must be a number"}

    name: StrictStr
    type: Annotated[StrictStr, _one_of(*FEATURE_TYPES), _string(enum=list(FEATURE_TYPES))]
    min: Annotated[Number | None, WithJsonSchema({"type": "number"})] = None
    max: Annotated[Number | None, WithJsonSchema({"type": "number"})] = None
    nullable: StrictBool = False
    categories: Annotated[tuple[StrictStr, ...], _doc("Categorical only: the values, typed as in the data.")] = ()
    unknown: Annotated[StrictStr, _one_of("other", "reject"), _string(enum=["other", "reject"]), _doc(
        "Categorical only: `other` maps an unseen value to the other bucket, `reject` refuses it.")] = "reject"

    @model_validator(mode="before")
    @classmethod
    def _keys_of_its_type(cls, data: Any) -> Any:
        # On the file's keys, so that `unknown: reject` on a number is refused although it is the default.
        if isinstance(data, dict):
            categorical = data.get("type") == "categorical"
            for key in ("min", "max") if categorical else ("categories", "unknown"):
                if key in data:
                    raise _fail(key, "only numeric and integer features have bounds" if categorical
                                else "only categorical features have categories")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.type == "categorical" and not self.categories:
            raise _fail("categories", "must be a non-empty list of strings")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _fail("min", f"must not exceed max {self.max}", self.min)
        return self


@dataclass(config=_CONFIG)
class DataPolicy(_Section):
    """The dataset and its contract: what validate checks, train learns from, serve accepts and drift bins."""

    source: Annotated[StrictStr, _doc("The default dataset: CSV or Parquet; a path, file://, s3:// or generate:")]
    target: StrictStr
    features: tuple[Feature, ...]
    positive_label: Any = 1
    segment: Annotated[StrictStr | None, _doc("The column whose values the recall_gap gate compares.")] = None

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
            raise _fail("features", "must list at least one feature")
        if dupes:
            raise _fail("features", "feature names must be unique", dupes)
        if self.target in names:
            raise _fail("target", "must not also be a feature", self.target)
        if self.segment is not None and self.segment not in names:
            raise _fail("segment", "must name one of the features", self.segment)
        return self


@dataclass(config=_CONFIG)
class ModelPolicy(_Section):
    """The estimator, its hyper-parameters, the decision threshold, the seed and the holdout."""

    estimator: Annotated[StrictStr, _one_of(*ESTIMATORS), _string(enum=list(ESTIMATORS))]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # as scikit-learn names them
    threshold: Annotated[Fraction, _doc("A row is labelled positive when its score is at or above this.")] = 0.5
    seed: Count = 42
    holdout_fraction: Annotated[float, Strict(), Field(ge=0.05, le=0.5)] = 0.2


@dataclasses.dataclass(frozen=True)
class Gate:
    """One quality gate as the gate step evaluates it (from the file's `quality` section)."""

    name: str
    minimum: float | None = None
    maximum: float | None = None
    comparison: str | None = None  # "gte" | "lte" | None
    tolerance: float = 0.0
    required: bool = True
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


def _gate_section(name: str, direction: str, extras: dict[str, Any]) -> Any:
    """The section one gate takes in the file, made from its GATES entry."""
    if direction == "required":
        doc = f"{name}: with `required: true` a failure rejects the candidate; with false it is only reported."
        fields: dict[str, Any] = {"required": StrictBool}
        defaults: dict[str, Any] = {}
    else:
        bound, comparison = ("minimum", "gte") if direction == "min" else ("maximum", "lte")
        doc = (f"{name}: `{bound}` is an absolute bound; `comparison: {comparison}` also compares the candidate to the "
               "production model on the same holdout, within `tolerance`.")
        fields = {bound: Number, "comparison": Annotated[StrictStr, _one_of(comparison), _string(enum=[comparison])]
                  | None, "tolerance": NonNegative, **dict.fromkeys(extras, Positive)}
        defaults = {"comparison": None, "tolerance": 0.0, **extras}
    return dataclass(type(name, (_Section,), {"__doc__": doc, "__annotations__": fields, **defaults}), config=_CONFIG)


# One field per gate, optional, but typed without None: a gate left empty (null) is refused, not quietly dropped.
_QualitySection = dataclass(type("QualitySection", (_Section,), {
    "__doc__": "The quality gates: a gate left out is not evaluated.",
    "__annotations__": {name: _gate_section(name, *spec) for name, spec in GATES.items()},
    **dict.fromkeys(GATES),
}), config=_CONFIG)


@dataclass(config=_CONFIG)
class CanaryStep(_Section):
    """One step of the canary schedule."""

    _not_null: ClassVar[dict[str, str]] = {"pause": "must be a duration like 30s, 5m, 1h or 2d"}

    set_weight: Annotated[StrictInt, Field(ge=0, le=100), _doc("The canary's share of the replicas, in percent.")]
    pause: Annotated[Duration | None, _string(pattern=_DURATION.pattern)] = None
    analysis: Annotated[StrictBool, _doc("Run the canary analysis after the pause.")] = False


@dataclass(config=_CONFIG)
class CanaryAnalysis(_Section):
    """`count` measurements, one per `interval`, of the canary's pods only."""

    interval: Duration = "5m"
    count: Positive = 3
    failure_limit: Count = 1
    inconclusive_limit: Annotated[Count, _doc(
        "Measurements with too little traffic (or no data) are inconclusive, neither passed nor failed; more than "
        "this many make the analysis Inconclusive and the Rollout pauses for a person. Default min(1, count - 1).")] = 1
    latency_p95_ms: NonNegative = 100.0
    error_ratio: Fraction = 0.01
    min_requests: Count = 100
    prometheus_url: Annotated[StrictStr, _rule(_is_url, "must be an http:// or https:// URL with a host"),
                              _string(pattern="^https?://"), _doc("The Prometheus the AnalysisTemplate queries.")] = (
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
            raise _fail("inconclusive_limit", f"must be less than canary.analysis.count ({self.count}), or an idle "
                        "canary passes", self.inconclusive_limit)
        return self


@dataclass(config=_CONFIG)
class CanaryServing(_Section):
    """The model server's pods: batching, worker processes and resources (the seed's sizes by default)."""

    workers: Positive = 4
    max_batch_size: Positive = 32
    max_batch_latency_ms: NonNegative = 5.0
    cpu_request: Quantity = "2"
    memory_request: Quantity = "4Gi"
    cpu_limit: Quantity = "4"
    memory_limit: Quantity = "6Gi"
    model_volume: Annotated[Quantity, _doc("The size limit of the folder the model is downloaded into.")] = "2Gi"

    @model_validator(mode="after")
    def _requests_within_limits(self) -> CanaryServing:
        for request, limit in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
            asked, allowed = getattr(self, request), getattr(self, limit)
            if quantity_value(asked) > quantity_value(allowed):
                raise _fail(request, f"must not exceed {limit} {allowed}", asked)
        return self


# The seed's schedule, for a policy that leaves `canary.steps` out: 10% -> 30% (each analysed) -> 60% -> 100%.
DEFAULT_CANARY_STEPS = (CanaryStep(10, "30m", True), CanaryStep(30, "30m", True), CanaryStep(60, "1h", False),
                        CanaryStep(100))


@dataclass(config=_CONFIG)
class CanaryPolicy(_Section):
    """The Argo Rollouts canary: the serving Rollout, its analysis and the rollout step follow it."""

    replicas: Positive = 5
    steps: Annotated[tuple[CanaryStep, ...], _doc(
        "Each step: set_weight, then an optional pause, then (analysis: true) the analysis.")] = DEFAULT_CANARY_STEPS
    analysis: CanaryAnalysis = CanaryAnalysis()
    serving: CanaryServing = CanaryServing()

    @model_validator(mode="after")
    def _weights_grow(self) -> CanaryPolicy:
        weights = [s.set_weight for s in self.steps]
        if weights != sorted(weights):
            raise _fail("steps", "weights must not decrease", weights)
        return self


@dataclass(config=_CONFIG)
class DriftPolicy(_Section):
    """The drift rule: drift when at least `drift_share` of the features score `threshold` or more."""

    method: Annotated[StrictStr, _one_of(*DRIFT_METHODS), _string(enum=list(DRIFT_METHODS))] = "psi"
    threshold: NonNegative = 0.15
    drift_share: Fraction = 0.3
    min_samples: Count = 10000
    window: Duration = "1h"
    schedule: Annotated[StrictStr, _rule(_CRON.match, "must be a 5-field cron expression"),
                        _string(pattern=_CRON.pattern)] = "0 * * * *"
    cooldown: Duration = "6h"


@dataclass(config=_CONFIG)
class _Document(_Section):
    """A policy file, gates/<model>.yaml: every threshold that decides whether a model moves forward."""

    model_name: Annotated[StrictStr, _rule(_MODEL_NAME.match, "must be lowercase letters, digits and '-' (a "
                                           "Kubernetes name)"), _string(pattern=_MODEL_NAME.pattern),
                          _doc("A Kubernetes name, and the policy file's name: gates/<model_name>.yaml.")]
    data: DataPolicy
    model: ModelPolicy
    quality: _QualitySection  # type: ignore[valid-type]  # a class made from GATES
    canary: CanaryPolicy | None = None
    drift: DriftPolicy | None = None


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
        raise PolicyError(f"{path}: policy file not found") from err
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from err
    try:
        doc = TypeAdapter(_Document).validate_python(raw)
    except ValidationError as err:
        raise PolicyError("\n".join(f"{path}: {_message(e, raw)}" for e in err.errors())) from err
    if path.suffix in (".yaml", ".yml") and path.stem != doc.model_name and path.parent.name == "gates":
        raise PolicyError(f"{path}: model_name: must match the file name {path.stem!r} (got {doc.model_name!r})")
    quality = tuple(_gate(name, getattr(doc.quality, name)) for name in raw["quality"])  # in the file's order
    return Policy(doc.model_name, doc.data, doc.model, quality, doc.canary or CanaryPolicy(),
                  doc.drift or DriftPolicy(), path, hashlib.sha256(raw_bytes).hexdigest())


def _gate(name: str, spec: Any) -> Gate:
    direction, extras = GATES[name]
    if direction == "required":
        return Gate(name, required=spec.required)
    return Gate(name, minimum=getattr(spec, "minimum", None), maximum=getattr(spec, "maximum", None),
                comparison=spec.comparison, tolerance=spec.tolerance, settings={k: getattr(spec, k) for k in extras})


_TYPE_RULES = {  # pydantic's error types, in the policy's words
    "float_type": "must be a number", "int_type": "must be an integer", "string_type": "must be a string",
    "bool_type": "must be true or false", "tuple_type": "must be a list", "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping", "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def _message(error: ErrorDetails, raw: Any) -> str:
    """`key: rule (got value)` for one of pydantic's errors; the key is a dotted path with list indexes, where a
    list item with a name shows it: `data.features[3] (amount).min`."""
    kind, ctx, loc = error["type"], error.get("ctx", {}), list(error["loc"])
    if kind == "policy":  # ours (_fail): the section's location, then the key
        loc.append(ctx["key"])
    key, node = "", raw
    for i, part in enumerate(loc):
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        name = node.get("name") if isinstance(part, int) and isinstance(node, dict) else None
        if isinstance(name, str) and loc[i + 1:] not in ([], ["name"]):
            key += f" ({name})"
    if kind == "policy":
        rule = ctx["rule"]
    elif kind == "value_error":
        rule = str(ctx["error"])
    elif kind == "missing":
        rule = "required key is missing"
    else:
        text = _TYPE_RULES[kind].format(**ctx) if kind in _TYPE_RULES else error["msg"]
        rule = f"{text} (got {error['input']!r})"
    return f"{key or '<top level>'}: {rule}"
