"""The value types of the policy file (strict numbers, durations, Kubernetes quantities, categories and labels as
the data writes them) and the base of its sections: pydantic's rules, in the policy's words.

Every error names the key as a dotted path with list indexes (and a list item's name where it has one), the rule
and the value: `data.features[3] (amount).min: must be a number (got 'ten')`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass
from pydantic.functional_validators import AfterValidator, BeforeValidator, model_validator
from pydantic.json_schema import WithJsonSchema
from pydantic.types import Strict, StrictInt, StrictStr
from pydantic_core import ErrorDetails, PydanticCustomError

DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
# A Kubernetes resource quantity as the policy may write it: 2, "500m", "4Gi", 1.5.
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_FACTOR = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
                    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}
# What PyYAML (YAML 1.1) reads as a boolean when it is not quoted: a label or category written so is a mistake.
_YAML_BOOLEANS = "yes/no, on/off, true/false, y/n"

def duration_seconds(text: str) -> int:
    """'30m' -> 1800. Raises ValueError for anything else."""
    m = DURATION.match(text)
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


def rule(ok: Callable[[str], object], text: str) -> AfterValidator:
    """Refuses the strings `ok` rejects, with `rule (got value)`."""
    def check(value: str) -> str:
        if not ok(value):
            raise ValueError(f"{text} (got {value!r})")
        return value
    return AfterValidator(check)


def one_of(*choices: str) -> AfterValidator:
    return rule(lambda value: value in choices, f"must be one of {', '.join(choices)}")


def is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _quantity(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a quantity like 500m, 2 or 4Gi (got {value!r})")
    if quantity_value(str(value)) <= 0:  # its ValueError names the value
        raise ValueError(f"{str(value)!r} must be more than zero")
    return str(value)


def schema_string(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", **schema})


def doc(description: str) -> Any:
    """The key's description in the schema (what an editor shows beside it)."""
    return Field(description=description)


Number = Annotated[float, Strict()]  # an int or a float (read as a float), never a bool or a string
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(ge=1)]
Duration = Annotated[StrictStr, rule(DURATION.match, "must be a duration like 30s, 5m, 1h or 2d"),
                     schema_string(pattern=DURATION.pattern)]
Quantity = Annotated[str, BeforeValidator(_quantity), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _QUANTITY.pattern}, {"type": "number", "exclusiveMinimum": 0}]})]


def _label(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"is a YAML boolean (got {value!r}): YAML reads an unquoted {_YAML_BOOLEANS} as true or "
                         "false; quote the value as the data writes it, e.g. 'Yes'")
    if not isinstance(value, str | int):
        raise ValueError(f"must be a string or a whole number, as the data writes it (got {value!r})")
    return value


# A category or a class label as the data writes it: text, or a whole number for integer codes (0/1, 1..10).
Label = Annotated[str | int, BeforeValidator(_label), WithJsonSchema({"type": ["string", "integer"]})]


def fail(key: str, rule: str, value: object = ...) -> PydanticCustomError:
    """An error at `key` of the section raising it, reported by load_policy as `file: section.key: rule`."""
    shown = "" if value is ... else f" (got {value!r})"
    return PydanticCustomError("policy", "{rule}", {"key": key, "rule": rule + shown})


CONFIG = ConfigDict(extra="forbid", frozen=True)


@dataclass(config=CONFIG)
class Section:
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
                    raise fail(str(key), f"unknown key (allowed: {', '.join(allowed)})")
                if value is None and key in cls._not_null:
                    raise fail(key, cls._not_null[key], value)
        return data


# The tags of a key that takes a number or a mapping (model.threshold): pydantic puts them in an error's location.
NUMBER_TAG, RULE_TAG = "number", "mapping"
_TAGS = {NUMBER_TAG, RULE_TAG}

_TYPE_RULES = {  # pydantic's error types, in the policy's words
    "float_type": "must be a number", "int_type": "must be an integer", "string_type": "must be a string",
    "bool_type": "must be true or false", "tuple_type": "must be a list", "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping", "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def error_message(error: ErrorDetails, raw: Any) -> str:
    """`key: rule (got value)` for one of pydantic's errors; the key is a dotted path with list indexes, where a
    list item with a name shows it: `data.features[3] (amount).min`."""
    kind, ctx = error["type"], error.get("ctx", {})
    loc = [part for part in error["loc"] if part not in _TAGS]
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
