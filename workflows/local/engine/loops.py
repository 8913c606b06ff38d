"""Loops as Argo v4.1.2 expands them (operator.go processItem, generateNodeName, expandSequence; steps.go
expandStep; dag.go expandTask): `withItems`, `withParam` (a JSON list) and `withSequence`, each item substituted
into a copy of the step or task and named `<name>(<index>:<description>)`.

Items are kept as Argo keeps them, as JSON text (wfv1.Item is a json.RawMessage), so `1.50` from a withParam stays
`1.50`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from workflows.local.engine.substitute import replace_obj, to_json
from workflows.local.lang.gotypes import to_json as go_json
from workflows.local.lang.govaluate import should_execute

_ESCAPES = {"\\u003c": "<", "\\u003e": ">", "\\u0026": "&"}


class LoopError(ValueError):
    """The loop cannot be expanded (Argo: CodeBadRequest); the step group or task is Error."""


def _fix(text: str) -> str:
    for escaped, char in _ESCAPES.items():
        text = text.replace(escaped, char)
    return text


def _compact(raw: str) -> str:
    """json.Marshal of a RawMessage: compacted, <, > and & escaped."""
    value = json.loads(raw, parse_float=_Num, parse_int=_Num)
    return _dump(value)


class _Num(str):
    """A JSON number kept as its text."""


def _dump(value: Any) -> str:
    if isinstance(value, _Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(go_json(k) + ":" + _dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return go_json(value)


def item_string(raw: str) -> str:
    """Item.String(): the compact JSON, a string without its quotes."""
    text = _compact(raw)
    if text.startswith('"'):
        return _fix(text[1:-1])
    return _fix(text)


def item_type(raw: str) -> str:
    text = raw.strip()
    try:
        int(text)
        return "number"
    except ValueError:
        pass
    try:
        float(text)
        if text.lower() not in ("nan", "inf", "+inf", "-inf", "infinity"):
            return "number"
    except ValueError:
        pass
    if text in ("true", "false"):
        return "bool"
    value = json.loads(text)
    if value is None or isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "string"


def raw_items(values: list[Any]) -> list[str]:
    """withItems from the (YAML) workflow: each item as the JSON text Argo would hold."""
    return [go_json(v) for v in values]


def items_of(obj: Mapping[str, Any]) -> list[str] | None:
    """The items of a step or task (already substituted), or None when it does not loop."""
    if obj.get("withItems"):
        return raw_items(list(obj["withItems"]))
    if obj.get("withParam"):
        text = str(obj["withParam"])
        try:
            value = json.loads(text, parse_float=_Num, parse_int=_Num)
            if not isinstance(value, list):
                raise ValueError("not a list")
        except ValueError as err:
            _raise_unless_skipped(obj, LoopError(
                f"withParam value could not be parsed as a JSON list: {text.strip()}: {err}"))
            return []
        return [_dump(v) for v in value]
    if obj.get("withSequence") is not None:
        try:
            return expand_sequence(obj["withSequence"])
        except (ValueError, LoopError) as err:
            _raise_unless_skipped(obj, err)
            return []
    return None


def _raise_unless_skipped(obj: Mapping[str, Any], err: Exception) -> None:
    try:
        must = should_execute(obj.get("when") or "")
    except ValueError:
        must = True
    if must:
        raise err


def _atoi(value: Any) -> int:
    text = str(value)
    if not text.lstrip("+-").isdigit():
        raise LoopError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def expand_sequence(seq: Mapping[str, Any]) -> list[str]:
    start = _atoi(seq["start"]) if seq.get("start") is not None else 0
    if seq.get("end") is not None:
        end = _atoi(seq["end"])
    elif seq.get("count") is not None:
        count = _atoi(seq["count"])
        if count == 0:
            return []
        end = start + count - 1
    else:
        raise LoopError("neither end nor count was specified in withSequence")
    fmt = seq.get("format") or "%d"
    step = 1 if start <= end else -1
    return [go_json(_sprintf(fmt, i)) for i in range(start, end + step, step)]


_INT_FORMAT = re.compile(r"%([-+ 0#]*)(\d*)([dxXobcqvs%])")


def _sprintf(fmt: str, value: int) -> str:
    """fmt.Sprintf(format, i) for withSequence's integer: the verbs and flags a format for a number uses."""
    used = False

    def one(match: re.Match[str]) -> str:
        nonlocal used
        flags, width, verb = match.groups()
        if verb == "%":
            return "%"
        if used:
            return f"%!{verb}(MISSING)"
        used = True
        digits = {"d": str(abs(value)), "v": str(abs(value)), "x": format(abs(value), "x"),
                  "X": format(abs(value), "X"), "o": format(abs(value), "o"), "b": format(abs(value), "b")}.get(verb)
        if digits is None:
            return f"%!{verb}(int={value})"
        sign = "-" if value < 0 else "+" if "+" in flags else " " if " " in flags else ""
        size = int(width) if width else 0
        if "-" in flags:
            return (sign + digits).ljust(size)
        if "0" in flags:
            return sign + digits.rjust(size - len(sign), "0")
        return (sign + digits).rjust(size)

    text = _INT_FORMAT.sub(one, fmt)
    return text if used else text + f"%!(EXTRA int={value})"


def node_name(name: str, index: int, description: str) -> str:
    clean = description.replace("(", "").replace(")", "")
    return f"{name}({index}:{clean})"


def expand(obj: Mapping[str, Any], items: list[str], variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """processItem for each item: the step or task with `{{item}}`/`{{item.<key>}}` substituted and its name."""
    base = {k: v for k, v in obj.items() if k not in ("withItems", "withParam", "withSequence")}
    expanded = []
    for index, raw in enumerate(items):
        replace_map = dict(variables)
        kind = item_type(raw)
        if kind in ("number", "bool"):
            replace_map["item"] = item_string(raw)
            description = item_string(raw)
        elif kind == "string":
            replace_map["item"] = json.loads(raw)
            description = item_string(raw)
        elif kind == "map":
            mapping = json.loads(raw, parse_float=_Num, parse_int=_Num)
            vals = []
            for key, value in mapping.items():
                text = item_string(_dump(value))
                replace_map[f"item.{key}"] = text
                vals.append(f"{key}:{text}")
            replace_map["item"] = "{" + ",".join(go_json(k) + ":" + _dump(mapping[k]) for k in sorted(mapping)) + "}"
            description = ",".join(sorted(vals))
        else:
            values = json.loads(raw, parse_float=_Num, parse_int=_Num) or []
            replace_map["item"] = "[" + ",".join(_dump(v) for v in values) + "]"
            description = "[" + " ".join(item_string(_dump(v)) for v in values) + "]"
        when = obj.get("when") or ""
        try:
            proceed: bool | None = should_execute(when)
        except ValueError:
            proceed = None
        if proceed is False:
            lenient = {k: v for k, v in replace_map.items() if v is not None}
            new = replace_obj(base, lenient, None)
        else:
            new = replace_obj(base, replace_map, "all")
        new["name"] = node_name(obj["name"], index, description)
        new["template"] = obj.get("template", "")
        if not obj.get("template"):
            new.pop("template")
        expanded.append(new)
    return expanded


__all__ = ["LoopError", "expand", "items_of", "node_name", "to_json"]
