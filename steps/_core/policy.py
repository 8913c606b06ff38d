"""The policy file of one model (`gates/<model>.yaml`): loaded strictly, so a typo is an error, not a default.

Every error names the file, the key (as a dotted path), the rule and the value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from steps._core.errors import UsageError

FEATURE_TYPES = ("numeric", "integer", "categorical")
ESTIMATORS = ("hist_gradient_boosting", "logistic_regression", "random_forest")
DRIFT_METHODS = ("psi", "jensen_shannon", "wasserstein", "ks")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_MODEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
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


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: tuple[str, ...] = ()
    unknown: str = "reject"  # categorical only: "other" maps unseen values to the other bucket


@dataclass(frozen=True)
class DataPolicy:
    source: str
    target: str
    positive_label: Any
    segment: str | None
    features: tuple[Feature, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class ModelPolicy:
    estimator: str
    params: dict[str, Any]
    threshold: float
    seed: int
    holdout_fraction: float


@dataclass(frozen=True)
class Gate:
    name: str
    minimum: float | None = None
    maximum: float | None = None
    comparison: str | None = None  # "gte" | "lte" | None
    tolerance: float = 0.0
    required: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryStep:
    set_weight: int
    pause: str | None = None
    analysis: bool = False


@dataclass(frozen=True)
class CanaryAnalysis:
    interval: str = "5m"
    count: int = 3
    failure_limit: int = 1
    # Measurements with too little traffic (or no data) are inconclusive, neither passed nor failed. More than
    # this many make the analysis Inconclusive: the Rollout pauses for a person. Default min(1, count - 1).
    inconclusive_limit: int = 1
    latency_p95_ms: float = 100.0
    error_ratio: float = 0.01
    min_requests: int = 100
    # The Prometheus the AnalysisTemplate queries (the Prometheus Operator's in-cluster service by default).
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"


@dataclass(frozen=True)
class CanaryServing:
    """The model server's pods: batching, worker processes and resources (the seed's sizes by default)."""

    workers: int = 4
    max_batch_size: int = 32
    max_batch_latency_ms: float = 5.0
    cpu_request: str = "2"
    memory_request: str = "4Gi"
    cpu_limit: str = "4"
    memory_limit: str = "6Gi"
    model_volume: str = "2Gi"  # sizeLimit of the emptyDir the init container downloads the model into


# The seed's schedule, for a policy that leaves `canary.steps` out: 10% -> 30% (each analysed) -> 60% -> 100%.
DEFAULT_CANARY_STEPS = (
    CanaryStep(10, "30m", True),
    CanaryStep(30, "30m", True),
    CanaryStep(60, "1h", False),
    CanaryStep(100),
)


@dataclass(frozen=True)
class CanaryPolicy:
    replicas: int = 5
    steps: tuple[CanaryStep, ...] = DEFAULT_CANARY_STEPS
    analysis: CanaryAnalysis = CanaryAnalysis()
    serving: CanaryServing = CanaryServing()


@dataclass(frozen=True)
class DriftPolicy:
    method: str = "psi"
    threshold: float = 0.15
    drift_share: float = 0.3
    min_samples: int = 10000
    window: str = "1h"
    schedule: str = "0 * * * *"
    cooldown: str = "6h"


@dataclass(frozen=True)
class Policy:
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


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError as err:
        raise PolicyError(f"{path}: policy file not found") from err
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from err
    return _Loader(path).policy(raw, hashlib.sha256(raw_bytes).hexdigest())


class _Loader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, rule: str, value: Any = ...) -> PolicyError:
        shown = "" if value is ... else f" (got {value!r})"
        return PolicyError(f"{self.path}: {key}: {rule}{shown}")

    def mapping(self, raw: Any, key: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key or "<top level>", "must be a mapping", raw)
        for k in raw:
            if k not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.fail(_join(key, str(k)), f"unknown key (allowed: {allowed})")
        for k in sorted(required):
            if k not in raw:
                raise self.fail(_join(key, k), "required key is missing")
        return raw

    def typed(self, raw: Any, key: str, kind: type | tuple[type, ...], name: str) -> Any:
        # bool is an int in Python; a policy that says `threshold: true` is a typo, not 1.
        if isinstance(raw, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, f"must be {name}", raw)
        if not isinstance(raw, kind):
            raise self.fail(key, f"must be {name}", raw)
        return raw

    def number(self, raw: Any, key: str, lo: float | None = None, hi: float | None = None) -> float:
        value = float(self.typed(raw, key, (int, float), "a number"))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(key, f"must be between {lo} and {hi}", raw)
        return value

    def integer(self, raw: Any, key: str, lo: int | None = None) -> int:
        value = self.typed(raw, key, int, "an integer")
        if lo is not None and value < lo:
            raise self.fail(key, f"must be at least {lo}", raw)
        return value

    def choice(self, raw: Any, key: str, choices: tuple[str, ...]) -> str:
        if raw not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}", raw)
        return raw

    def duration(self, raw: Any, key: str) -> str:
        try:
            duration_seconds(self.typed(raw, key, str, "a duration string"))
        except ValueError as err:
            raise self.fail(key, str(err)) from err
        return raw

    def quantity(self, raw: Any, key: str) -> str:
        text = str(self.typed(raw, key, (int, float, str), "a quantity like 500m, 2 or 4Gi"))
        try:
            if quantity_value(text) <= 0:
                raise ValueError(f"{text!r} must be more than zero")
        except ValueError as err:
            raise self.fail(key, str(err)) from err
        return text

    def url(self, raw: Any, key: str) -> str:
        text = self.typed(raw, key, str, "a URL")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(key, "must be an http:// or https:// URL with a host", text)
        return text

    def policy(self, raw: Any, sha256: str) -> Policy:
        top = self.mapping(raw, "", {"model_name", "data", "model", "quality"}, {"canary", "drift"})
        name = self.typed(top["model_name"], "model_name", str, "a string")
        if not _MODEL_NAME.match(name):
            raise self.fail("model_name", "must be lowercase letters, digits and '-' (a Kubernetes name)", name)
        if self.path.suffix in (".yaml", ".yml") and self.path.stem != name and self.path.parent.name == "gates":
            raise self.fail("model_name", f"must match the file name {self.path.stem!r}", name)
        data = self.data(top["data"])
        return Policy(
            model_name=name,
            data=data,
            model=self.model(top["model"]),
            quality=self.quality(top["quality"]),
            canary=self.canary(top.get("canary") or {}),
            drift=self.drift(top.get("drift") or {}),
            path=self.path,
            sha256=sha256,
        )

    def data(self, raw: Any) -> DataPolicy:
        d = self.mapping(raw, "data", {"source", "target", "features"}, {"positive_label", "segment"})
        features_raw = self.typed(d["features"], "data.features", list, "a list")
        if not features_raw:
            raise self.fail("data.features", "must list at least one feature")
        features = tuple(self.feature(f, f"data.features[{i}]") for i, f in enumerate(features_raw))
        names = [f.name for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise self.fail("data.features", "feature names must be unique", dupes)
        target = self.typed(d["target"], "data.target", str, "a string")
        if target in names:
            raise self.fail("data.target", "must not also be a feature", target)
        segment = d.get("segment")
        if segment is not None:
            self.typed(segment, "data.segment", str, "a string")
            if segment not in names:
                raise self.fail("data.segment", "must name one of the features", segment)
        return DataPolicy(
            source=self.typed(d["source"], "data.source", str, "a string"),
            target=target,
            positive_label=d.get("positive_label", 1),
            segment=segment,
            features=features,
        )

    def feature(self, raw: Any, key: str) -> Feature:
        f = self.mapping(raw, key, {"name", "type"}, {"min", "max", "nullable", "categories", "unknown"})
        name = self.typed(f["name"], f"{key}.name", str, "a string")
        key = f"{key} ({name})"
        kind = self.choice(f["type"], f"{key}.type", FEATURE_TYPES)
        nullable = self.typed(f.get("nullable", False), f"{key}.nullable", bool, "true or false")
        if kind == "categorical":
            for k in ("min", "max"):
                if k in f:
                    raise self.fail(f"{key}.{k}", "only numeric and integer features have bounds")
            cats = self.typed(f.get("categories"), f"{key}.categories", list, "a list of strings")
            if not cats or not all(isinstance(c, str) for c in cats):
                raise self.fail(f"{key}.categories", "must be a non-empty list of strings", cats)
            unknown = self.choice(f.get("unknown", "reject"), f"{key}.unknown", ("other", "reject"))
            return Feature(name, kind, nullable=nullable, categories=tuple(cats), unknown=unknown)
        for k in ("categories", "unknown"):
            if k in f:
                raise self.fail(f"{key}.{k}", "only categorical features have categories")
        lo = self.number(f["min"], f"{key}.min") if "min" in f else None
        hi = self.number(f["max"], f"{key}.max") if "max" in f else None
        if lo is not None and hi is not None and lo > hi:
            raise self.fail(f"{key}.min", f"must not exceed max {hi}", lo)
        return Feature(name, kind, min=lo, max=hi, nullable=nullable)

    def model(self, raw: Any) -> ModelPolicy:
        m = self.mapping(raw, "model", {"estimator"}, {"params", "threshold", "seed", "holdout_fraction"})
        return ModelPolicy(
            estimator=self.choice(m["estimator"], "model.estimator", ESTIMATORS),
            params=dict(self.typed(m.get("params", {}), "model.params", dict, "a mapping")),
            threshold=self.number(m.get("threshold", 0.5), "model.threshold", 0.0, 1.0),
            seed=self.integer(m.get("seed", 42), "model.seed", 0),
            holdout_fraction=self.number(m.get("holdout_fraction", 0.2), "model.holdout_fraction", 0.05, 0.5),
        )

    def quality(self, raw: Any) -> tuple[Gate, ...]:
        q = self.mapping(raw, "quality", set(), set(GATES))
        return tuple(self.gate(name, spec) for name, spec in q.items())

    def gate(self, name: str, raw: Any) -> Gate:
        key = f"quality.{name}"
        direction, extras = GATES[name]
        if direction == "required":
            g = self.mapping(raw, key, {"required"}, set())
            return Gate(name, required=self.typed(g["required"], f"{key}.required", bool, "true or false"))
        bound = "minimum" if direction == "min" else "maximum"
        g = self.mapping(raw, key, {bound}, {"comparison", "tolerance", *extras})
        comparison = g.get("comparison")
        if comparison is not None:
            expected = "gte" if direction == "min" else "lte"
            self.choice(comparison, f"{key}.comparison", (expected,))
        settings = {}
        for k, default in extras.items():
            settings[k] = self.integer(g.get(k, default), f"{key}.{k}", 1)
        value = self.number(g[bound], f"{key}.{bound}")
        return Gate(
            name,
            minimum=value if bound == "minimum" else None,
            maximum=value if bound == "maximum" else None,
            comparison=comparison,
            tolerance=self.number(g.get("tolerance", 0.0), f"{key}.tolerance", 0.0),
            settings=settings,
        )

    def canary(self, raw: Any) -> CanaryPolicy:
        c = self.mapping(raw, "canary", set(), {"replicas", "steps", "analysis", "serving"})
        steps = [] if "steps" in c else list(DEFAULT_CANARY_STEPS)
        for i, s in enumerate(self.typed(c.get("steps", []), "canary.steps", list, "a list")):
            key = f"canary.steps[{i}]"
            s = self.mapping(s, key, {"set_weight"}, {"pause", "analysis"})
            weight = self.integer(s["set_weight"], f"{key}.set_weight", 0)
            if weight > 100:
                raise self.fail(f"{key}.set_weight", "must be between 0 and 100", weight)
            pause = self.duration(s["pause"], f"{key}.pause") if "pause" in s else None
            analysis = self.typed(s.get("analysis", False), f"{key}.analysis", bool, "true or false")
            steps.append(CanaryStep(weight, pause, analysis))
        weights = [s.set_weight for s in steps]
        if weights != sorted(weights):
            raise self.fail("canary.steps", "weights must not decrease", weights)
        a = self.mapping(c.get("analysis", {}), "canary.analysis", set(), set(CanaryAnalysis.__dataclass_fields__))
        d = CanaryAnalysis()
        count = self.integer(a.get("count", d.count), "canary.analysis.count", 1)
        inconclusive_limit = self.integer(a.get("inconclusive_limit", min(d.inconclusive_limit, count - 1)),
                                          "canary.analysis.inconclusive_limit", 0)
        if inconclusive_limit >= count:
            # Argo Rollouts counts a run whose measurements were all inconclusive (within the limit) as Successful:
            # an idle canary would pass.
            raise self.fail("canary.analysis.inconclusive_limit",
                            f"must be less than canary.analysis.count ({count}), or an idle canary passes",
                            inconclusive_limit)
        analysis = CanaryAnalysis(
            interval=self.duration(a.get("interval", d.interval), "canary.analysis.interval"),
            count=count,
            failure_limit=self.integer(a.get("failure_limit", d.failure_limit), "canary.analysis.failure_limit", 0),
            inconclusive_limit=inconclusive_limit,
            latency_p95_ms=self.number(a.get("latency_p95_ms", d.latency_p95_ms), "canary.analysis.latency_p95_ms", 0),
            error_ratio=self.number(a.get("error_ratio", d.error_ratio), "canary.analysis.error_ratio", 0, 1),
            min_requests=self.integer(a.get("min_requests", d.min_requests), "canary.analysis.min_requests", 0),
            prometheus_url=self.url(a.get("prometheus_url", d.prometheus_url), "canary.analysis.prometheus_url"),
        )
        return CanaryPolicy(
            replicas=self.integer(c.get("replicas", 5), "canary.replicas", 1),
            steps=tuple(steps),
            analysis=analysis,
            serving=self.serving(c.get("serving", {})),
        )

    def serving(self, raw: Any) -> CanaryServing:
        s = self.mapping(raw, "canary.serving", set(), set(CanaryServing.__dataclass_fields__))
        d = CanaryServing()
        key = "canary.serving"
        serving = CanaryServing(
            workers=self.integer(s.get("workers", d.workers), f"{key}.workers", 1),
            max_batch_size=self.integer(s.get("max_batch_size", d.max_batch_size), f"{key}.max_batch_size", 1),
            max_batch_latency_ms=self.number(s.get("max_batch_latency_ms", d.max_batch_latency_ms),
                                             f"{key}.max_batch_latency_ms", 0),
            **{name: self.quantity(s.get(name, getattr(d, name)), f"{key}.{name}")
               for name in ("cpu_request", "memory_request", "cpu_limit", "memory_limit", "model_volume")},
        )
        for resource in ("cpu", "memory"):
            request, limit = getattr(serving, f"{resource}_request"), getattr(serving, f"{resource}_limit")
            if quantity_value(request) > quantity_value(limit):
                raise self.fail(f"{key}.{resource}_request", f"must not exceed {resource}_limit {limit}", request)
        return serving

    def drift(self, raw: Any) -> DriftPolicy:
        d = self.mapping(raw, "drift", set(), set(DriftPolicy.__dataclass_fields__))
        base = DriftPolicy()
        schedule = self.typed(d.get("schedule", base.schedule), "drift.schedule", str, "a cron expression")
        if len(schedule.split()) != 5:
            raise self.fail("drift.schedule", "must be a 5-field cron expression", schedule)
        return DriftPolicy(
            method=self.choice(d.get("method", base.method), "drift.method", DRIFT_METHODS),
            threshold=self.number(d.get("threshold", base.threshold), "drift.threshold", 0),
            drift_share=self.number(d.get("drift_share", base.drift_share), "drift.drift_share", 0, 1),
            min_samples=self.integer(d.get("min_samples", base.min_samples), "drift.min_samples", 0),
            window=self.duration(d.get("window", base.window), "drift.window"),
            schedule=schedule,
            cooldown=self.duration(d.get("cooldown", base.cooldown), "drift.cooldown"),
        )


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
