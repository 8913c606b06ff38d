"""The local Sensors (workflows/local/sensors.py) on the Sensor `mlops compile` renders: data filters that match as
Argo Events' Go regular expressions do, and the Workflow's name checked as Argo checks it before anything is
submitted. (Their rate limit, mapping and duplicates are in test_events.py, with the server.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from steps._core.policy import load_policy
from tests.support.paths import POLICY
from workflows import events
from workflows.local import sensors as local_sensors

MODEL = "fraud-detection"
PREFIX = events.workflow_name_prefix(MODEL)  # "fraud-detection-retrain-": 24 characters


def alert(**overrides: Any) -> dict[str, Any]:
    body = {"model": MODEL, "reason": "automated_drift_detection", "drifted_features": ["amount"],
            "idempotency_key": "0123456789ab", "production_version": 3, "drift_share": 0.52, "samples": 12000,
            "window": "1h"}
    body.update(overrides)
    return {"body": body, "header": {}}


def rendered() -> dict[str, Any]:
    return copy.deepcopy(events.build_sensor(load_policy(POLICY)))


def with_filter(**data_filter: Any) -> dict[str, Any]:
    """The rendered Sensor with one more data filter on its dependency."""
    sensor = rendered()
    sensor["spec"]["dependencies"][0]["filters"]["data"].append(data_filter)
    return sensor


# --- data filters, as Go's regexp matches them ------------------------------------------------------------------
# Argo Events matches a `type: string` data filter with Go's regexp: pkg/sensors/dependencies/filter.go,
# filterData, compiles each value with regexp.Compile(value) and passes the event when exp.Match(...) finds it
# anywhere in the value's text (older releases: regexp.MatchString(value, ...), the same unanchored search).
# Go's regexp/syntax documents `$` as "at end of text (like \z not \Z) or line (flag m=true)": without the m flag
# it never matches before a trailing newline, where Python's `$` does (re.search('^a$', 'a\n') matches).
# The expected column is what Go's regexp.MatchString(pattern, value) returns.
GO_MATCHES = [
    ("^fraud-detection$", "fraud-detection", True),
    ("^fraud-detection$", "fraud-detection\n", False),  # Python's `$` matched here: the defect
    ("^fraud-detection$", "fraud-detection-eu", False),
    ("^fraud-detection$", "x-fraud-detection", False),
    ("detection$", "fraud-detection\n", False),
    ("fraud", "fraud-detection", True),  # unanchored: a search, as Go's Match, not a full match
    ("^fraud-detection\\z", "fraud-detection\n", False),  # Go's \z: the end of the text
    ("^\\$5$", "$5", True),  # an escaped dollar is a dollar
    ("^[$]5$", "$5", True),  # and so is one in a class
    ("^a|b$", "b\n", False),
    ("^\\d+$", "\u0663", False),  # Go's \d is ASCII only; Python's str patterns take Arabic-Indic digits
]


@pytest.mark.parametrize(("pattern", "value", "go"), GO_MATCHES, ids=[f"{p!r}~{v!r}" for p, v, _ in GO_MATCHES])
def test_a_string_data_filter_matches_as_go_regexp_does(pattern: str, value: str, go: bool) -> None:
    sensors = local_sensors.Sensors([with_filter(path="body.window", type="string", value=[pattern])])
    decision = sensors.handle(alert(window=value))
    assert (decision.status == "submitted") is go, decision.detail
    if not go:
        assert decision.status == "ignored" and f"body.window is {value!r}, not {pattern}" in decision.detail


def test_the_rendered_model_filter_ignores_a_model_name_with_a_trailing_newline() -> None:
    decision = local_sensors.Sensors([rendered()]).handle(alert(model=f"{MODEL}\n"))
    assert decision.status == "ignored" and decision.workflow is None
    assert f"body.model is '{MODEL}\\n', not ^{MODEL}$" in decision.detail


def test_a_not_equal_comparator_passes_what_does_not_match() -> None:
    sensors = local_sensors.Sensors([with_filter(path="body.window", type="string", value=["^6h$"],
                                                 comparator="!=")])
    assert sensors.handle(alert(window="1h")).status == "submitted"
    assert sensors.handle(alert(window="6h", idempotency_key="b" * 12)).status == "ignored"


@pytest.mark.parametrize(("data_filter", "message"), [
    ({"type": "number", "value": ["1"]}, "type 'number' is not supported locally"),
    # Go's regexp.Compile refuses these (its own messages): Argo Events would fail the filter for every event.
    ({"type": "string", "value": ["^(?=1h)"]}, "invalid or unsupported Perl syntax: `(?=`"),
    ({"type": "string", "value": ["^(1)\\1$"]}, "invalid escape sequence: `\\1`"),
    ({"type": "string", "value": ["1h\\Z"]}, "invalid escape sequence: `\\Z`"),
    ({"type": "string", "value": ["^a*+$"]}, "invalid nested repetition operator: `*+`"),
    ({"type": "string", "value": ["^1h("]}, "missing closing ): `^1h(`"),
    # Go takes it; it is not translated faithfully here.
    ({"type": "string", "value": ["(?m)^1h$"]}, "the regexp flag(s) m in `(?m)^1h$`"),
    ({"type": "string", "value": ["^1h$"], "comparator": ">"}, "comparator '>' is not supported locally"),
], ids=["number", "lookahead", "backreference", "python-end", "possessive", "unbalanced", "multiline", "comparator"])
def test_a_filter_that_cannot_run_as_argo_runs_it_is_refused_when_the_sensor_loads(data_filter: dict[str, Any],
                                                                                   message: str) -> None:
    """Refused up front, naming the Sensor and the filter: it used to raise while an alert was being handled, and the
    server dropped that connection without an answer."""
    with pytest.raises(local_sensors.SensorError) as caught:
        local_sensors.Sensors([with_filter(path="body.window", **data_filter)])
    assert str(caught.value).startswith(f"Sensor {MODEL}-retrain, data filter on body.window: ")
    assert message in str(caught.value)


# --- the Workflow's name, checked as Argo checks it ---------------------------------------------------------------
# The Sensor names the Workflow `<model>-retrain-<idempotency_key>`. Kubernetes takes a custom resource's name only
# as a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', beginning and ending with a letter or digit), and
# Argo Workflows' workflow/validate/validate.go refuses a Workflow name over maxCharsInObjectName = 63 characters
# ("workflow name %q must not be more than 63 characters long"): the name is also a label value.

@pytest.mark.parametrize(("key", "problem"), [
    ("a/b", "is not a DNS-1123 name"),
    ("../../etc/x", "is not a DNS-1123 name"),
    ("ABCDEF", "is not a DNS-1123 name"),
    ("", "is not a DNS-1123 name"),
    ("key-", "is not a DNS-1123 name"),
    ("k" * (64 - len(PREFIX)), "has 64 characters, more than the 63 Argo allows in a Workflow name"),
], ids=["slash", "dots-and-slashes", "uppercase", "empty", "trailing-dash", "64-characters"])
def test_a_key_that_cannot_name_a_workflow_is_invalid_naming_the_field_the_rule_and_the_value(key: str,
                                                                                                problem: str) -> None:
    sensors = local_sensors.Sensors([rendered()])
    decision = sensors.handle(alert(idempotency_key=key))
    assert decision.status == "invalid" and decision.workflow is None
    assert decision.detail.startswith(f"{MODEL}-retrain: body.idempotency_key {key!r} makes the Workflow name "
                                      f"{PREFIX + key!r}, which {problem}")
    assert sensors.used == set()
    # Not a turn of the trigger's rate limit either: the next good alert goes at once.
    good = sensors.handle(alert())
    assert (good.status, good.delay) == ("submitted", 0.0)


@pytest.mark.parametrize("key", ["k" * (63 - len(PREFIX)), "0123456789ab", "v1.2-rc3"], ids=["63", "hex", "dotted"])
def test_a_key_that_names_a_workflow_argo_accepts_is_submitted(key: str) -> None:
    decision = local_sensors.Sensors([rendered()]).handle(alert(idempotency_key=key))
    assert (decision.status, decision.name) == ("submitted", PREFIX + key)
