"""The retrain Sensors as Argo Events runs them, read from the rendered Sensor (`workflows.events.build_sensor`, the
code `mlops compile` runs) or a committed one: the dependency's data filters (matched as Go's regexp matches), the
trigger's parameter mapping from the event to the Workflow, the Workflow's name (checked as Argo checks it; a name
already used is AlreadyExists) and the trigger's `rateLimit`. `mlops events serve` (workflows/local/events.py) hands
each webhook event to `Sensors.handle`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps._core.policy import load_policy
from workflows import events
from workflows.local.lang import goregexp
from workflows.local.lang.errors import LangError

_TEMPLATE = re.compile(r"\{\{\s*\.Input\.([A-Za-z0-9_.-]+)\s*\}\}")
# A trigger's rateLimit.unit as Argo Events reads it (an absent unit is a second there too).
RATE_UNITS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}
# go.uber.org/ratelimit's default slack: after an idle time, up to this many triggers may go at once.
RATE_LIMIT_SLACK = 10
# Argo Workflows' workflow/validate/validate.go, maxCharsInObjectName: a Workflow's name is also a label value.
MAX_WORKFLOW_NAME = 63
# Kubernetes' DNS-1123 subdomain: how the API server takes a custom resource's metadata.name.
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class SensorError(ValueError):
    """The Sensor cannot build a Workflow from this event (a missing key, an unsupported template)."""


@dataclass
class Decision:
    status: str  # submitted | ignored | duplicate | error | invalid (no Workflow could have that name)
    detail: str
    workflow: dict[str, Any] | None = None
    delay: float = 0.0  # seconds the trigger waits for its turn under the trigger's rateLimit

    @property
    def name(self) -> str | None:
        return self.workflow["metadata"]["name"] if self.workflow else None


# --- the Sensor's semantics, read from the rendered Sensor ----------------------------------------------------

def lookup(data: Any, path: str) -> Any:
    """A gjson-style dotted path into the event (`body.model`); raises KeyError when absent."""
    for part in _split(path):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(path)
    return data


def as_text(value: Any) -> str:
    """A value as Argo Events passes it on: strings as they are, everything else as its JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass(frozen=True)
class DataFilter:
    """A dependency's `type: string` data filter, compiled once: it passes when any value matches the text at `path`
    (with the `!=` comparator: when any does not), as Argo Events' filterData decides."""

    path: str
    values: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    negate: bool = False

    def check(self, event: dict[str, Any]) -> tuple[bool, str]:
        try:
            actual = as_text(lookup(event, self.path))
        except KeyError:
            return False, f"{self.path} is missing"
        if any((pattern.search(actual) is not None) is not self.negate for pattern in self.patterns):
            return True, ""
        if self.negate:
            return False, f"{self.path} is {actual!r}, which matches {' and '.join(self.values)}"
        return False, f"{self.path} is {actual!r}, not {' or '.join(self.values)}"


def data_filters(dependency: dict[str, Any], where: str) -> list[DataFilter]:
    """The dependency's data filters, all of which must pass (Argo's default `and`); SensorError for a filter
    that cannot run here as it runs in Argo Events."""
    filters = dependency.get("filters") or {}
    others = sorted(key for key, value in filters.items() if value and key not in ("data", "dataLogicalOperator"))
    if others:
        raise SensorError(f"{where}: filters {', '.join(others)}: only data filters are supported locally")
    if (filters.get("dataLogicalOperator") or "and") != "and":
        raise SensorError(f"{where}: dataLogicalOperator {filters['dataLogicalOperator']!r}: only 'and' is supported "
                          "locally")
    compiled = []
    for f in filters.get("data") or []:
        at = f"{where}, data filter on {f.get('path')}"
        if f.get("type") != "string":
            raise SensorError(f"{at}: type {f.get('type')!r} is not supported locally")
        comparator = f.get("comparator") or "="
        if comparator not in ("=", "!="):
            raise SensorError(f"{at}: comparator {comparator!r} is not supported locally")
        if f.get("template"):
            raise SensorError(f"{at}: a template is not supported locally")
        values = tuple(str(value) for value in f.get("value") or [])
        if not values:
            raise SensorError(f"{at}: no values (Argo Events fails such a filter for every event)")
        compiled.append(DataFilter(f["path"], values, tuple(go_regexp(v, at) for v in values), comparator == "!="))
    return compiled


def go_regexp(pattern: str, where: str) -> re.Pattern[str]:
    """`pattern` compiled to match as Go's regexp does (workflows/local/lang/goregexp.py: `$` is the end of the text,
    never before a trailing newline; \\d, \\w, \\s ASCII); SensorError where Go refuses it or it has no faithful
    translation."""
    try:
        return goregexp.compile_go(pattern)
    except LangError as err:
        raise SensorError(f"{where}: {pattern!r}: {err}") from err


def workflow_name_problem(trigger: dict[str, Any], workflow: dict[str, Any], event: dict[str, Any]) -> str | None:
    """Why Argo could never create this Workflow under its name, naming where the name came from; None if it can."""
    name = str(workflow["metadata"].get("name", ""))
    if len(name) > MAX_WORKFLOW_NAME:
        problem = f"has {len(name)} characters, more than the {MAX_WORKFLOW_NAME} Argo allows in a Workflow name"
    elif not _DNS1123_SUBDOMAIN.fullmatch(name):
        problem = ("is not a DNS-1123 name (lowercase letters, digits, '-' and '.', beginning and ending with a "
                   "letter or digit)")
    else:
        return None
    sources = []
    for parameter in trigger["template"]["argoWorkflow"].get("parameters") or []:
        if parameter["dest"] == "metadata.name":
            src = parameter["src"]
            sources += [src["dataKey"]] if "dataKey" in src else _TEMPLATE.findall(src.get("dataTemplate", ""))
    given = " and ".join(f"{path} {_shown(event, path)}" for path in sources) or "metadata.name"
    return f"{given} makes the Workflow name {name!r}, which {problem}"


def _shown(event: dict[str, Any], path: str) -> str:
    try:
        return repr(as_text(lookup(event, path)))
    except KeyError:
        return "(absent: the parameter's default value)"


def build_workflow(trigger: dict[str, Any], event: dict[str, Any], sensor: str = "") -> dict[str, Any]:
    """The trigger's Workflow with each parameter's source written to its destination, and, given the Sensor's
    name, the labels Argo Events' argoWorkflow trigger adds before `argo submit` (the sensor, the trigger, the
    time in milliseconds: argo-events pkg/sensors/triggers/argo-workflow/argo-workflow.go:120-150)."""
    spec = trigger["template"]["argoWorkflow"]
    if spec.get("operation", "submit") != "submit":
        raise SensorError(f"argoWorkflow operation {spec.get('operation')!r}: only submit runs locally")
    workflow = copy.deepcopy(spec["source"]["resource"])
    for parameter in spec.get("parameters") or []:
        src = parameter["src"]
        if "dataKey" in src:
            try:
                value = as_text(lookup(event, src["dataKey"]))
            except KeyError:
                if "value" not in src:
                    raise SensorError(f"the event has no {src['dataKey']}") from None
                value = src["value"]
        elif "dataTemplate" in src:
            value = _render_template(src["dataTemplate"], event)
        elif "value" in src:
            value = src["value"]
        else:
            raise SensorError(f"parameter for {parameter['dest']}: source {sorted(src)} is not supported locally")
        _set(workflow, parameter["dest"], value)
    if sensor:
        metadata = workflow.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), "events.argoproj.io/sensor": sensor,
                              "events.argoproj.io/trigger": str(trigger["template"]["name"]),
                              "events.argoproj.io/action-timestamp": str(time.time_ns() // 1_000_000)}
    return workflow


def _render_template(template: str, event: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        try:
            return as_text(lookup(event, match.group(1)))
        except KeyError:
            raise SensorError(f"the event has no {match.group(1)}") from None

    text = _TEMPLATE.sub(one, template)
    if "{{" in text:
        raise SensorError(f"dataTemplate {template!r}: only {{{{ .Input.<path> }}}} is supported locally")
    return text


def _split(path: str) -> list[str]:
    # sjson/gjson paths: dots separate, a backslash escapes a dot inside a key (argo-mlops\.io/drift-share).
    parts = re.split(r"(?<!\\)\.", path)
    return [p.replace("\\.", ".") for p in parts]


def _set(doc: Any, path: str, value: str) -> None:
    parts = _split(path)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(doc, list):
            index = int(part)
            if last:
                doc[index] = value
            else:
                doc = doc[index]
        else:
            if last:
                doc[part] = value
            else:
                doc = doc.setdefault(part, [] if parts[i + 1].isdigit() else {})


class RateLimiter:
    """A trigger's rate limit as Argo Events applies it: go.uber.org/ratelimit's limiter,
    `ratelimit.New(requestsPerUnit, ratelimit.Per(unit))`, whose Take() blocks before the trigger runs.

    Each trigger is due one `unit / requestsPerUnit` after the one before it; a trigger asking earlier waits
    (it is delayed, never dropped). After an idle time the wait owed is forgiven up to RATE_LIMIT_SLACK
    triggers' worth, so a burst after a quiet spell goes through at once, as there.
    """

    def __init__(self, requests_per_unit: int, unit_seconds: float, slack: int = RATE_LIMIT_SLACK,
                 clock: Callable[[], float] = time.monotonic):
        self.per_request = unit_seconds / requests_per_unit
        self.max_slack = slack * self.per_request
        self.clock = clock
        self._due: float | None = None  # when the last trigger was let through
        self._lock = threading.Lock()

    @classmethod
    def from_trigger(cls, trigger: dict[str, Any], where: str) -> RateLimiter | None:
        """The limiter of a rendered trigger's `rateLimit`; None (no limit) without one. SensorError when the
        Sensor's rateLimit is not one Argo Events can run."""
        limit = trigger.get("rateLimit")
        if limit is None:
            return None
        unit = limit.get("unit") or "Second"
        if unit not in RATE_UNITS:
            raise SensorError(f"{where}: rateLimit.unit {unit!r}: must be one of {', '.join(RATE_UNITS)}")
        count = limit.get("requestsPerUnit")
        if type(count) is not int or count < 1:
            raise SensorError(f"{where}: rateLimit.requestsPerUnit {count!r}: must be an integer of at least 1")
        return cls(count, RATE_UNITS[unit])

    def take(self) -> float:
        """Claim the next turn; the seconds to wait for it (0 when it is now)."""
        with self._lock:
            now = self.clock()
            if self._due is None:
                due = now
            elif now - self._due > self.max_slack + self.per_request:
                due = now - self.max_slack
            else:
                due = self._due + self.per_request
            self._due = due
        return max(0.0, due - now)


class Sensors:
    """Every model's Sensor; `handle(body)` is what Argo Events does with one webhook event."""

    def __init__(self, sensors: list[dict[str, Any]]):
        self.sensors = sensors
        self.used: set[str] = set()
        self.lock = threading.Lock()
        # One limiter per trigger, read from the Sensor itself (Argo Events keys them by trigger name).
        self.limiters: dict[tuple[str, str], RateLimiter | None] = {}
        # Each dependency's filters, compiled once: a Sensor that cannot run as it runs in Argo is refused here.
        self.filters: dict[tuple[str, int], list[DataFilter]] = {}
        for sensor in sensors:
            name = sensor["metadata"]["name"]
            for trigger in sensor["spec"]["triggers"]:
                key = (name, trigger["template"]["name"])
                self.limiters[key] = RateLimiter.from_trigger(trigger, f"Sensor {name}, trigger {key[1]}")
            for index, dependency in enumerate(sensor["spec"]["dependencies"]):
                self.filters[(name, index)] = data_filters(dependency, f"Sensor {name}")

    @classmethod
    def from_policies(cls, policies: list[Path]) -> Sensors:
        return cls([events.build_sensor(load_policy(p)) for p in policies])

    def handle(self, event: dict[str, Any]) -> Decision:
        reasons = []
        for sensor in self.sensors:
            name = sensor["metadata"]["name"]
            for index in range(len(sensor["spec"]["dependencies"])):
                why = next((why for ok, why in (f.check(event) for f in self.filters[(name, index)]) if not ok), "")
                if why:
                    reasons.append(f"{name}: {why}")
                    continue
                trigger = sensor["spec"]["triggers"][0]
                workflow: dict[str, Any] | None = None
                error = ""
                try:
                    workflow = build_workflow(trigger, event, name)
                except SensorError as err:
                    error = str(err)
                problem = workflow_name_problem(trigger, workflow, event) if workflow is not None else None
                if problem:  # refused before it reaches the trigger (answered 400): it takes no turn, no name
                    return Decision("invalid", f"{name}: {problem}")
                # Argo Events takes the trigger's turn before it builds and creates the resource: an event that
                # then fails (a missing key, AlreadyExists) has used its turn too.
                limiter = self.limiters.get((name, trigger["template"]["name"]))
                delay = limiter.take() if limiter is not None else 0.0
                if workflow is None:
                    return Decision("error", f"{name}: {error}", delay=delay)
                wf_name = workflow["metadata"]["name"]
                with self.lock:
                    if wf_name in self.used:
                        return Decision("duplicate", f"{name}: workflow {wf_name} already exists (AlreadyExists)",
                                        workflow, delay)
                    self.used.add(wf_name)
                waits = f" in {delay:.1f}s (trigger rateLimit)" if delay > 0 else ""
                return Decision("submitted", f"{name}: submitted {wf_name}{waits}", workflow, delay)
        return Decision("ignored", "; ".join(reasons) or "no sensor")
