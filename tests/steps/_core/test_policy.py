"""The policy loader: the reference policy loads, every rule refuses a bad file naming the key and the value, the
defaults fill what a file leaves out, and the published JSON Schema agrees with the loader."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from steps._core.errors import UsageError
from steps._core.policy import (
    DEFAULT_CANARY_STEPS,
    GATES,
    SCHEMA_FILE,
    CanaryAnalysis,
    CanaryPolicy,
    CanaryServing,
    DriftPolicy,
    Feature,
    PolicyError,
    ThresholdRule,
    builtin_policy_dir,
    load_policy,
    policy_path,
    policy_schema,
)

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "gates" / "fraud-detection.yaml"
REFERENCE = yaml.safe_load(POLICY.read_text())
DELETE = object()


def changed(*edits: tuple[str, Any]) -> dict[str, Any]:
    """The reference policy with each `key.path` (list indexes as numbers) set to a value, or removed (DELETE)."""
    doc = copy.deepcopy(REFERENCE)
    for path, value in edits:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = doc
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


def write(folder: Path, doc: Any, name: str = "policy.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_policy(folder: Path, canary: str) -> Path:
    """The reference policy with another `canary:` section."""
    return write(folder, {**REFERENCE, "canary": yaml.safe_load(canary)["canary"]})


def refusal(tmp_path: Path, doc: Any) -> str:
    path = write(tmp_path, doc)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message  # every error names the file first
    return message


# --- the reference policy -------------------------------------------------------------------------------------


def test_the_reference_policy_loads_with_every_section():
    policy = load_policy(POLICY)
    assert policy.model_name == "fraud-detection"
    assert policy.path == POLICY and policy.sha256 == hashlib.sha256(POLICY.read_bytes()).hexdigest()
    assert policy.data.feature_names == [f["name"] for f in REFERENCE["data"]["features"]]
    assert policy.data.feature("amount") == Feature("amount", "numeric", min=0.0, max=100000.0)
    region = policy.data.feature("region")
    assert (region.type, region.categories, region.unknown) == ("categorical", ("north", "south", "east", "west"),
                                                                 "reject")
    assert policy.data.feature("distance_from_home_km").nullable is True
    with pytest.raises(KeyError, match="colour"):
        policy.data.feature("colour")
    assert (policy.data.target, policy.data.positive_label, policy.data.segment) == ("is_fraud", 1, "region")
    assert policy.model.estimator == "hist_gradient_boosting" and policy.model.params["max_iter"] == 150
    assert [g.name for g in policy.quality] == list(REFERENCE["quality"])  # the file's order
    assert policy.canary.steps == DEFAULT_CANARY_STEPS
    assert policy.drift == DriftPolicy()


def test_numbers_are_read_as_floats_and_quantities_as_strings():
    policy = load_policy(POLICY)
    amount = policy.data.feature("amount")
    assert type(amount.min) is float and type(policy.model.threshold) is float
    assert type(policy.canary.analysis.latency_p95_ms) is float
    assert type(policy.canary.serving.max_batch_latency_ms) is float
    assert policy.canary.serving.cpu_request == "2" and policy.canary.serving.memory_limit == "6Gi"


def test_gates_carry_their_bound_comparison_and_settings():
    policy = load_policy(POLICY)
    accuracy = policy.gate("accuracy")
    assert accuracy is not None
    assert (accuracy.minimum, accuracy.maximum, accuracy.comparison, accuracy.tolerance) == (0.92, None, "gte", 0.01)
    latency = policy.gate("latency_p95_ms")
    assert latency is not None and (latency.maximum, latency.settings) == (50.0, {"calls": 1000})
    edge = policy.gate("edge_cases")
    assert edge is not None and edge.required is True
    assert policy.gate("f1") is None


# --- defaults ---------------------------------------------------------------------------------------------------


def test_sections_left_out_get_the_seeds_defaults(tmp_path):
    doc = changed(("canary", DELETE), ("drift", DELETE), ("model", {"estimator": "random_forest"}),
                  ("quality", {"latency_p95_ms": {"maximum": 10}, "recall_gap": {"maximum": 0.2}}))
    policy = load_policy(write(tmp_path, doc))
    assert policy.canary == CanaryPolicy() and policy.canary.steps == DEFAULT_CANARY_STEPS
    assert [s.set_weight for s in DEFAULT_CANARY_STEPS] == [10, 30, 60, 100]
    assert policy.canary.analysis == CanaryAnalysis() and policy.canary.serving == CanaryServing()
    assert policy.drift == DriftPolicy(method="psi", threshold=0.15, drift_share=0.3, min_samples=10000,
                                       window="1h", schedule="0 * * * *", cooldown="6h")
    model = policy.model
    assert (model.params, model.threshold, model.seed, model.holdout_fraction) == ({}, 0.5, 42, 0.2)
    latency, recall_gap = policy.quality
    assert (latency.comparison, latency.tolerance, latency.required, latency.settings) == (None, 0.0, True,
                                                                                           {"calls": 1000})
    assert recall_gap.settings == {"min_positives": GATES["recall_gap"][1]["min_positives"]}


@pytest.mark.parametrize("section", ["canary", "drift"])
def test_an_empty_section_means_its_defaults(tmp_path, section):
    policy = load_policy(write(tmp_path, changed((section, None))))
    assert getattr(policy, section) == {"canary": CanaryPolicy(), "drift": DriftPolicy()}[section]


def test_an_empty_list_of_canary_steps_is_kept_empty(tmp_path):
    assert load_policy(write(tmp_path, changed(("canary.steps", [])))).canary.steps == ()


def test_feature_and_data_defaults(tmp_path):
    doc = changed(("data.positive_label", DELETE), ("data.segment", DELETE), ("quality.recall_gap", DELETE),
                  ("data.features", [{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical",
                                                                         "categories": ["a"]}]))
    data = load_policy(write(tmp_path, doc)).data
    assert data.features == (Feature("x", "numeric"), Feature("c", "categorical", categories=("a",)))
    assert (data.features[0].min, data.features[0].nullable, data.features[1].unknown) == (None, False, "reject")
    assert (data.positive_label, data.segment) == (1, None)


def test_a_threshold_is_a_number_or_a_rule(tmp_path):
    fixed = load_policy(write(tmp_path, changed(("model.threshold", 0.3)))).model
    assert fixed.threshold_rule == ThresholdRule("fixed", value=0.3)
    rule = load_policy(write(tmp_path, changed(("model.threshold", {"rule": "target_recall", "value": 0.8})))).model
    assert (rule.threshold_rule.rule, rule.threshold_rule.value, rule.threshold_rule.validation_fraction) == (
        "target_recall", 0.8, 0.2)
    cost = load_policy(write(tmp_path, changed(("model.threshold", {"rule": "min_cost", "false_negative_cost": 9})))
                       ).model.threshold_rule
    assert (cost.false_positive_cost, cost.false_negative_cost) == (1.0, 9.0)


def test_labels_and_categories_keep_the_type_the_data_has(tmp_path):
    doc = changed(("data.positive_label", "Yes"), ("data.classes", ["No", "Yes"]),
                  ("data.features.17.categories", [0, 1, 2]))
    data = load_policy(write(tmp_path, doc)).data
    assert data.features[17].categories == (0, 1, 2)
    assert (data.positive_label, data.negative_label, data.classes) == ("Yes", "No", ("No", "Yes"))


@pytest.mark.parametrize(("count", "limit"), [(1, 0), (2, 1), (5, 1)], ids=["count-1", "count-2", "count-5"])
def test_inconclusive_limit_defaults_to_one_below_count_at_most_one(tmp_path, count, limit):
    policy = load_policy(write(tmp_path, changed(("canary.analysis", {"count": count}))))
    assert policy.canary.analysis.inconclusive_limit == limit


# --- one failing example per rule ------------------------------------------------------------------------------

GATE_NAMES = ", ".join(sorted(GATES))
BAD: list[tuple[str, tuple[tuple[str, Any], ...], str]] = [
    # the file and its sections
    ("unknown-top-level-key", (("colour", 1),),
     "colour: unknown key (allowed: canary, data, drift, model, model_name, quality)"),
    ("missing-section", (("model", DELETE),), "model: required key is missing"),
    ("section-not-a-mapping", (("data", ["x"]),), "data: must be a mapping (got ['x'])"),
    ("model-name-not-kubernetes", (("model_name", "Fraud_Detection"),),
     "model_name: must be lowercase letters, digits and '-' (a Kubernetes name) (got 'Fraud_Detection')"),
    ("model-name-not-a-string", (("model_name", 5),), "model_name: must be a string (got 5)"),
    # data
    ("no-features", (("data.features", []),), "data.features: must list at least one feature"),
    ("features-not-a-list", (("data.features", {"a": 1}),), "data.features: must be a list (got {'a': 1})"),
    ("duplicate-feature", (("data.features.1.name", "amount"),),
     "data.features: feature names must be unique (got ['amount'])"),
    ("target-is-a-feature", (("data.target", "amount"),), "data.target: must not also be a feature (got 'amount')"),
    ("segment-not-a-feature", (("data.segment", "city"),), "data.segment: must name one of the features (got 'city')"),
    ("source-missing", (("data.source", DELETE),), "data.source: required key is missing"),
    ("positive-label-a-yaml-boolean", (("data.positive_label", True),),
     "data.positive_label: is a YAML boolean (got True): YAML reads an unquoted yes/no, on/off, true/false, y/n as "
     "true or false; quote the value as the data writes it, e.g. 'Yes'"),
    ("classes-a-yaml-boolean", (("data.classes", ["No", False]),), "data.classes[1]: is a YAML boolean (got False)"),
    ("classes-not-two", (("data.classes", [0, 1, 2]),),
     "data.classes: a binary target has exactly two classes (got [0, 1, 2])"),
    ("positive-label-not-a-class", (("data.classes", ["No", "Yes"]),),
     "data.positive_label: must be one of data.classes (No, Yes) (got 1)"),
    # a feature: its name in the key
    ("feature-not-a-mapping", (("data.features.0", "amount"),), "data.features[0]: must be a mapping (got 'amount')"),
    ("feature-name-not-a-string", (("data.features.0.name", 3),), "data.features[0].name: must be a string (got 3)"),
    ("feature-type", (("data.features.0.type", "money"),),
     "data.features[0] (amount).type: must be one of numeric, integer, categorical (got 'money')"),
    ("bool-is-not-a-number", (("data.features.0.min", True),), "data.features[0] (amount).min: must be a number "
                                                               "(got True)"),
    ("string-is-not-a-number", (("data.features.0.max", "10"),),
     "data.features[0] (amount).max: must be a number (got '10')"),
    ("empty-bound", (("data.features.0.min", None),), "data.features[0] (amount).min: must be a number (got None)"),
    ("min-above-max", (("data.features.3.min", 30000),),
     "data.features[3] (account_age_days).min: must not exceed max 20000.0 (got 30000.0)"),
    ("nullable-not-a-bool", (("data.features.0.nullable", "yes"),),
     "data.features[0] (amount).nullable: must be true or false (got 'yes')"),
    ("bounds-on-categorical", (("data.features.16.min", 1),),
     "data.features[16] (merchant_category).min: only numeric and integer features have bounds"),
    ("categorical-without-categories", (("data.features.17.categories", DELETE),),
     "data.features[17] (channel).categories: must be a non-empty list of values"),
    ("category-a-yaml-boolean", (("data.features.17.categories", ["pos", True]),),
     "data.features[17] (channel).categories[1]: is a YAML boolean (got True): YAML reads an unquoted"),
    ("category-a-float", (("data.features.17.categories", ["pos", 1.5]),),
     "data.features[17] (channel).categories[1]: must be a string or a whole number, as the data writes it "
     "(got 1.5)"),
    ("category-twice-as-text-and-number", (("data.features.17.categories", ["1", 1]),),
     "data.features[17] (channel).categories: categories '1' and 1 are the same value"),
    ("categories-on-number", (("data.features.0.categories", ["a"]),),
     "data.features[0] (amount).categories: only categorical features have categories"),
    ("unknown-on-number", (("data.features.0.unknown", "reject"),),
     "data.features[0] (amount).unknown: only categorical features have categories"),
    ("unknown-value", (("data.features.17.unknown", "maybe"),),
     "data.features[17] (channel).unknown: must be one of other, reject (got 'maybe')"),
    ("unknown-feature-key", (("data.features.0.units", "EUR"),),
     "data.features[0] (amount).units: unknown key (allowed: categories, max, min, name, nullable, type, unknown)"),
    # model
    ("estimator", (("model.estimator", "magic"),),
     "model.estimator: must be one of hist_gradient_boosting, logistic_regression, random_forest, ridge (got 'magic')"),
    ("params-not-a-mapping", (("model.params", None),), "model.params: must be a mapping (got None)"),
    ("threshold-above-one", (("model.threshold", 1.5),), "model.threshold: must be at most 1.0 (got 1.5)"),
    ("threshold-rule-unknown", (("model.threshold", {"rule": "best"}),),
     "model.threshold.rule: must be one of fixed, max_f1, target_recall, target_precision, min_cost (got 'best')"),
    ("threshold-target-without-value", (("model.threshold", {"rule": "target_recall"}),),
     "model.threshold.value: required with rule target_recall"),
    ("threshold-value-where-none-is-read", (("model.threshold", {"rule": "max_f1", "value": 0.3}),),
     "model.threshold.value: only for the rules fixed, target_recall and target_precision, not max_f1 (got 0.3)"),
    ("threshold-rule-misspelt-key", (("model.threshold", {"rule": "min_cost", "false_negativ_cost": 5}),),
     "model.threshold.false_negativ_cost: unknown key (allowed: false_negative_cost, false_positive_cost, rule, "
     "validation_fraction, value)"),
    ("task-unknown", (("model.task", "ranking"),),
     "model.task: must be one of binary, multiclass, regression (got 'ranking')"),
    ("threshold-a-bool", (("model.threshold", True),), "model.threshold: must be a number (got True)"),
    ("seed-negative", (("model.seed", -1),), "model.seed: must be at least 0 (got -1)"),
    ("seed-a-float", (("model.seed", 1.0),), "model.seed: must be an integer (got 1.0)"),
    ("holdout-too-small", (("model.holdout_fraction", 0.01),),
     "model.holdout_fraction: must be at least 0.05 (got 0.01)"),
    ("misspelt-model-key", (("model.treshold", 0.4),),
     "model.treshold: unknown key (allowed: estimator, holdout_fraction, max_training_rows, params, seed, task, "
     "threads, threshold)"),
    # quality
    ("unknown-gate", (("quality.f2", {"minimum": 0.5}),), f"quality.f2: unknown key (allowed: {GATE_NAMES})"),
    ("gate-if-skipped", (("quality.recall_gap.if_skipped", "fail"),),
     "quality.recall_gap.if_skipped: must be one of allow, block (got 'fail')"),
    ("gate-without-bound", (("quality.accuracy.minimum", DELETE),), "quality.accuracy.minimum: required key is "
                                                                    "missing"),
    ("gate-with-the-other-bound", (("quality.accuracy.maximum", 1),),
     "quality.accuracy.maximum: unknown key (allowed: comparison, if_skipped, minimum, tolerance)"),
    ("gate-comparison-direction", (("quality.accuracy.comparison", "lte"),),
     "quality.accuracy.comparison: must be one of gte (got 'lte')"),
    ("gate-tolerance-negative", (("quality.roc_auc.tolerance", -1),),
     "quality.roc_auc.tolerance: must be at least 0.0 (got -1)"),
    ("gate-setting-zero", (("quality.latency_p95_ms.calls", 0),),
     "quality.latency_p95_ms.calls: must be at least 1 (got 0)"),
    ("gate-setting-of-another-gate", (("quality.latency_p95_ms.rows", 10),),
     "quality.latency_p95_ms.rows: unknown key (allowed: calls, comparison, if_skipped, maximum, tolerance)"),
    ("required-not-a-bool", (("quality.edge_cases.required", "yes"),),
     "quality.edge_cases.required: must be true or false (got 'yes')"),
    ("empty-gate", (("quality.accuracy", None),), "quality.accuracy: must be a mapping (got None)"),
    # canary
    ("replicas-zero", (("canary.replicas", 0),), "canary.replicas: must be at least 1 (got 0)"),
    ("weights-decrease", (("canary.steps.1.set_weight", 5),),
     "canary.steps: weights must not decrease (got [10, 5, 60, 100])"),
    ("weight-above-100", (("canary.steps.0.set_weight", 101),), "canary.steps[0].set_weight: must be at most 100 "
                                                                 "(got 101)"),
    ("pause-not-a-duration", (("canary.steps.0.pause", "soon"),),
     "canary.steps[0].pause: must be a duration like 30s, 5m, 1h or 2d (got 'soon')"),
    ("empty-pause", (("canary.steps.0.pause", None),),
     "canary.steps[0].pause: must be a duration like 30s, 5m, 1h or 2d (got None)"),
    ("step-analysis-not-a-bool", (("canary.steps.0.analysis", "yes"),),
     "canary.steps[0].analysis: must be true or false (got 'yes')"),
    ("analysis-count-zero", (("canary.analysis.count", 0),), "canary.analysis.count: must be at least 1 (got 0)"),
    ("analysis-interval", (("canary.analysis.interval", "5x"),),
     "canary.analysis.interval: must be a duration like 30s, 5m, 1h or 2d (got '5x')"),
    ("error-ratio-above-one", (("canary.analysis.error_ratio", 2),),
     "canary.analysis.error_ratio: must be at most 1.0 (got 2)"),
    ("memory-request-above-limit", (("canary.serving.memory_request", "7Gi"),),
     "canary.serving.memory_request: must not exceed memory_limit 6Gi (got '7Gi')"),
    ("workers-zero", (("canary.serving.workers", 0),), "canary.serving.workers: must be at least 1 (got 0)"),
    ("quantity-a-bool", (("canary.serving.cpu_request", True),),
     "canary.serving.cpu_request: must be a quantity like 500m, 2 or 4Gi (got True)"),
    # drift
    ("drift-method", (("drift.method", "chi2"),),
     "drift.method: must be one of psi, jensen_shannon, wasserstein, ks (got 'chi2')"),
    ("drift-schedule", (("drift.schedule", "hourly"),), "drift.schedule: must be a 5-field cron expression "
                                                        "(got 'hourly')"),
    ("drift-window", (("drift.window", 60),), "drift.window: must be a string (got 60)"),
    ("drift-share-above-one", (("drift.drift_share", 1.5),), "drift.drift_share: must be at most 1.0 (got 1.5)"),
    ("min-samples-negative", (("drift.min_samples", -1),), "drift.min_samples: must be at least 0 (got -1)"),
]


@pytest.mark.parametrize(("edits", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_rule_refuses_a_bad_policy_naming_the_key_the_rule_and_the_value(tmp_path, edits, message):
    assert f": {message}" in refusal(tmp_path, changed(*edits))


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    assert refusal(tmp_path, ["model_name: x"]).endswith("<top level>: must be a mapping (got ['model_name: x'])")


def test_every_problem_is_listed_one_a_line(tmp_path):
    message = refusal(tmp_path, changed(("model.seed", -1), ("drift.method", "chi2"), ("model_name", 5)))
    lines = message.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{tmp_path / 'policy.yaml'}: ") for line in lines)
    assert [line.split(": ")[1] for line in lines] == ["model_name", "model.seed", "drift.method"]


def test_a_policy_error_is_a_usage_error_exit_2(tmp_path):
    error = PolicyError("x")
    assert isinstance(error, UsageError) and isinstance(error, ValueError) and error.exit_code == 2


def test_a_missing_or_unparsable_file_is_named(tmp_path):
    with pytest.raises(PolicyError, match=re.escape(f"{tmp_path / 'nope.yaml'}: policy file not found")):
        load_policy(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_name: [unclosed\n")
    with pytest.raises(PolicyError, match=re.escape(f"{broken}: not valid YAML: ")):
        load_policy(broken)


def test_a_policy_in_gates_must_be_named_after_its_model(tmp_path):
    path = write(tmp_path / "gates", REFERENCE, "churn.yaml")
    with pytest.raises(PolicyError, match=re.escape(f"{path}: model_name: must match the file name 'churn' "
                                                    "(got 'fraud-detection')")):
        load_policy(path)
    assert load_policy(write(tmp_path / "elsewhere", REFERENCE, "churn.yaml")).model_name == "fraud-detection"


# --- the canary section (moved from tests/workflows/test_serving.py) ----------------------------------------------


def test_the_policy_refuses_an_inconclusive_limit_that_lets_an_idle_canary_pass(tmp_path):
    path = write_policy(tmp_path, "canary:\n  analysis: {count: 2, inconclusive_limit: 2}")
    with pytest.raises(PolicyError, match=r"canary\.analysis\.inconclusive_limit: must be less than .*count \(2\)"):
        load_policy(path)
    # Left out, it defaults to min(1, count - 1).
    single = write_policy(tmp_path, "canary:\n  analysis: {count: 1}")
    assert load_policy(single).canary.analysis.inconclusive_limit == 0


BAD_SERVING = [
    ("cpu_request: 8", "canary.serving.cpu_request: must not exceed cpu_limit 4"),
    ("memory_limit: lots", "canary.serving.memory_limit: 'lots' is not a Kubernetes quantity"),
    ("model_volume: 0Gi", "canary.serving.model_volume: '0Gi' must be more than zero"),
    ("workerz: 2", "canary.serving.workerz: unknown key"),
]


@pytest.mark.parametrize(("line", "message"), BAD_SERVING, ids=[b[0].split(":")[0] for b in BAD_SERVING])
def test_the_policy_names_a_bad_serving_key(tmp_path, line, message):
    path = write_policy(tmp_path, f"canary:\n  serving:\n    {line}")
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(path)


def test_the_policy_refuses_a_prometheus_url_without_scheme(tmp_path):
    path = write_policy(tmp_path, "canary:\n  analysis: {prometheus_url: 'prometheus:9090'}")
    with pytest.raises(PolicyError, match=r"canary\.analysis\.prometheus_url: must be an http:// or https:// URL"):
        load_policy(path)


# --- the sections built in Python --------------------------------------------------------------------------------


def test_sections_are_built_by_position_or_keyword_checked_and_frozen():
    assert Feature("x", "numeric", nullable=True) == Feature(name="x", type="numeric", nullable=True)
    assert Feature("x", "integer", min=0).min == 0.0
    with pytest.raises(ValidationError):
        Feature("x", "numeric", min=True)
    with pytest.raises(ValidationError):
        dataclasses.replace(DriftPolicy(), method="chi2")
    assert dataclasses.replace(DriftPolicy(), threshold=0.2).threshold == 0.2
    with pytest.raises(dataclasses.FrozenInstanceError):
        DriftPolicy().threshold = 0.2  # type: ignore[misc]


def test_policy_path_prefers_the_flag_then_local_gates_then_the_packaged_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert policy_path("fraud-detection", "mine.yaml") == Path("mine.yaml")
    assert policy_path("fraud-detection") == builtin_policy_dir() / "fraud-detection.yaml"
    write(tmp_path / "gates", REFERENCE, "fraud-detection.yaml")
    assert policy_path("fraud-detection") == Path("gates") / "fraud-detection.yaml"


# --- the published JSON Schema ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    committed: dict[str, Any] = json.loads((ROOT / "gates" / SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(committed)
    return committed


def test_the_committed_schema_is_the_one_the_loader_makes(schema):
    assert schema == policy_schema()


def test_the_reference_policy_names_the_schema_for_editors():
    assert POLICY.read_text().splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_FILE}"


def test_the_schema_accepts_the_reference_policy(schema):
    jsonschema.validate(REFERENCE, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(("edits", "where"), [
    ((("colour", 1),), []),
    ((("model.treshold", 0.4),), ["model"]),
    ((("data.features.0.units", "EUR"),), ["data", "features", 0]),
    ((("quality.f2", {"minimum": 0.5}),), ["quality"]),
    ((("canary.serving.workerz", 2),), ["canary", "serving"]),
], ids=["top-level", "model", "feature", "gate", "serving"])
def test_the_schema_rejects_an_unknown_key_where_it_is(schema, edits, where):
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(changed(*edits)))
    assert errors, "an unknown key must not validate"
    assert any(e.validator == "additionalProperties" and list(e.absolute_path) == where for e in _every(errors))


def _every(errors: list[Any]) -> list[Any]:
    """The errors and, for an optional section (anyOf: the section or null), the errors within it."""
    return [e for error in errors for e in (error, *_every(list(error.context or [])))]


@pytest.mark.parametrize("edits", [
    (("data.features.0.type", "money"),),
    (("model.threshold", True),),
    (("canary.serving.memory_limit", "lots"),),
    (("drift.window", "1 hour"),),
], ids=["choice", "bool-as-number", "quantity", "duration"])
def test_the_schema_rejects_what_the_loader_rejects(tmp_path, schema, edits):
    doc = changed(*edits)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    refusal(tmp_path, doc)
