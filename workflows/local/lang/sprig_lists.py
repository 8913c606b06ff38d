"""sprig v3.3.0's lists, maps, defaults, JSON and reflection functions (list.go, dict.go, defaults.go,
reflect.go), with their Go signatures. Go's maps have no order: where sprig lists a map's keys or values, they
come sorted here, which is one of the orders Go may give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows.local.lang import exprops
from workflows.local.lang.errors import ExprRuntimeError, Unsupported
from workflows.local.lang.gotypes import (
    GoFunc,
    GoStruct,
    IntList,
    JSONError,
    StrList,
    deep_equal,
    fmt_v,
    from_json,
    go_type,
    is_int,
    parse_float,
    parse_int,
    to_json,
)

_A, _S, _M = "interface {}", "string", "map[string]interface {}"


# --- spf13/cast v1.7.0 (caste.go), which sprig's numbers use ----------------------------------------------


def _trim_zero_decimal(text: str) -> str:
    found_zero = False
    for i in range(len(text), 0, -1):
        c = text[i - 1]
        if c == "." and found_zero:
            return text[:i - 1]
        if c == "0":
            found_zero = True
        elif c != ".":
            return text
    return text


def cast_int(value: Any) -> int:
    """cast.ToInt64 / cast.ToInt, errors ignored (0)."""
    if isinstance(value, bool):
        return int(value)
    if is_int(value):
        return int(value)
    if isinstance(value, float):
        return exprops.float_to_int(value)
    if isinstance(value, str):
        try:
            return parse_int(_trim_zero_decimal(value), base=0)
        except ValueError:
            return 0
    return 0


def cast_float(value: Any) -> float:
    """cast.ToFloat64, errors ignored (0)."""
    if isinstance(value, bool):
        return float(value)
    if is_int(value) or isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_float(value)
        except ValueError:
            return 0.0
    return 0.0


def strval(value: Any) -> str:
    return value if isinstance(value, str) else fmt_v(value)


def empty(value: Any) -> bool:
    """sprig's empty: nil, a zero number, false, or an empty string, list or map."""
    if value is None:
        return True
    if isinstance(value, (str, list, dict)):
        return len(value) == 0
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    return False


def _items(value: Any, what: str) -> list[Any]:
    if value is None:
        raise ExprRuntimeError("runtime error: invalid memory address or nil pointer dereference")
    if not isinstance(value, list):
        raise ExprRuntimeError(f"Cannot {what} type {_kind(value)}")
    return list(value)


def _kind(value: Any) -> str:
    """reflect.Kind's name."""
    if value is None:
        return "invalid"
    kind = go_type(value)
    if kind.startswith("[]"):
        return "slice"
    if kind.startswith("map["):
        return "map"
    if isinstance(value, GoStruct):
        return "struct"
    if isinstance(value, GoFunc):
        return "func"
    return kind


def strslice(value: Any) -> StrList:
    if isinstance(value, StrList):
        return value
    if isinstance(value, list):
        return StrList(strval(v) for v in value if v is not None)
    return StrList() if value is None else StrList([strval(value)])


def _first_last(value: Any, index: int, what: str) -> Any:
    items = _items(value, what)
    return items[index] if items else None


def _rest(value: Any, head: bool, what: str) -> Any:
    items = _items(value, what)
    if not items:
        return None  # a nil []interface{}
    return items[1:] if head else items[:-1]


def _uniq(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in _items(value, "find uniq on"):
        if not any(deep_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _without(value: Any, *omit: Any) -> list[Any]:
    return [i for i in _items(value, "find without on") if not any(deep_equal(i, o) for o in omit)]


def _has(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    return any(deep_equal(needle, item) for item in _items(haystack, "find has on"))


def _slice(value: Any, *indices: Any) -> Any:
    items = _items(value, "slice") if isinstance(value, list) or value is None else None
    if items is None:
        raise ExprRuntimeError(f"list should be type of slice or array but {_kind(value)}")
    if not items:
        return None
    start = cast_int(indices[0]) if indices else 0
    end = cast_int(indices[1]) if len(indices) > 1 else len(items)
    if not 0 <= start <= end <= len(items):
        raise ExprRuntimeError(f"reflect: slice index out of range [{start}:{end}]")
    return type(value)(items[start:end]) if isinstance(value, (StrList, IntList)) else items[start:end]


def _concat(*lists: Any) -> Any:
    out: list[Any] = []
    for value in lists:
        if not isinstance(value, list):
            raise ExprRuntimeError(f"Cannot concat type {_kind(value)} as list")
        out.extend(value)
    return out or None


def _chunk(size: int, value: Any) -> list[list[Any]]:
    items = _items(value, "chunk")
    if size <= 0:
        raise Unsupported("sprig.chunk with a size below 1 (Go divides by zero in floating point)")
    return [items[i:i + size] for i in range(0, len(items), size)]


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise ExprRuntimeError("dig needs at least three arguments")
    current, default = args[-1], args[-2]
    for i, key in enumerate(args[:-2]):
        if not isinstance(current, dict) or isinstance(current, dict) and go_type(current) != _M:
            raise ExprRuntimeError(f"interface conversion: interface {{}} is {go_type(current)}, not {_M}")
        if not isinstance(key, str):
            raise ExprRuntimeError(f"interface conversion: interface {{}} is {go_type(key)}, not string")
        if key not in current:
            return default
        if i == len(args) - 3:
            return current[key]
        current = current[key]
    return default


def _dict(*args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(args), 2):
        out[strval(args[i])] = args[i + 1] if i + 1 < len(args) else ""
    return out


def _default(default: Any, *given: Any) -> Any:
    return default if not given or empty(given[0]) else given[0]


def _to_json(value: Any, indent: str = "") -> str:
    try:
        return to_json(value, indent)
    except JSONError:
        return ""


def _must_to_json(value: Any, indent: str = "") -> str:
    try:
        return to_json(value, indent)
    except JSONError as err:
        raise ExprRuntimeError(str(err)) from err


def _to_raw_json(value: Any) -> str:
    """json.Encoder with SetEscapeHTML(false): <, > and & stay as they are."""
    text = _must_to_json(value)
    for escaped, plain in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&")):
        text = _unescape_outside_backslashes(text, escaped, plain)
    return text


def _unescape_outside_backslashes(text: str, escaped: str, plain: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("\\\\", i):
            out.append("\\\\")
            i += 2
        elif text.startswith(escaped, i):
            out.append(plain)
            i += len(escaped)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _from_json(text: str, must: bool) -> Any:
    try:
        return from_json(text)
    except ValueError as err:
        if must:
            raise ExprRuntimeError(str(err)) from err
        return None


def _keys(*dicts: dict[str, Any]) -> StrList:
    return StrList(k for d in dicts for k in sorted(d))


def _set(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    d[key] = value
    return d


def _unset(d: dict[str, Any], key: str) -> dict[str, Any]:
    d.pop(key, None)
    return d


def _sort_alpha(value: Any) -> StrList:
    if isinstance(value, list):
        return StrList(sorted(strslice(value)))
    return StrList([strval(value)])


def _compact(value: Any) -> list[Any]:
    return [i for i in _items(value, "compact on") if not empty(i)]


def _f(name: str, fn: Callable[..., Any], params: tuple[str, ...], result: str, variadic: bool = False) -> GoFunc:
    return GoFunc(name, fn, params, result, variadic)


def lists_and_maps() -> dict[str, GoFunc]:
    table: list[tuple[str, Callable[..., Any], tuple[str, ...], str, bool]] = [
        ("list", lambda *v: list(v), (_A,), "[]interface {}", True),
        ("tuple", lambda *v: list(v), (_A,), "[]interface {}", True),
        ("dict", _dict, (_A,), _M, True),
        ("get", lambda d, k: d.get(k, "") if d is not None else "", (_M, _S), _A, False),
        ("set", _set, (_M, _S, _A), _M, False),
        ("unset", _unset, (_M, _S), _M, False),
        ("hasKey", lambda d, k: d is not None and k in d, (_M, _S), "bool", False),
        ("pluck", lambda k, *ds: [d[k] for d in ds if d is not None and k in d], (_S, _M), "[]interface {}", True),
        ("keys", _keys, (_M,), "[]string", True),
        ("pick", lambda d, *ks: {k: d[k] for k in ks if d is not None and k in d}, (_M, _S), _M, True),
        ("omit", lambda d, *ks: {k: v for k, v in (d or {}).items() if k not in ks}, (_M, _S), _M, True),
        ("values", lambda d: [d[k] for k in sorted(d or {})], (_M,), "[]interface {}", False),
        ("first", lambda v: _first_last(v, 0, "find first on"), (_A,), _A, False),
        ("last", lambda v: _first_last(v, -1, "find last on"), (_A,), _A, False),
        ("rest", lambda v: _rest(v, True, "find rest on"), (_A,), "[]interface {}", False),
        ("initial", lambda v: _rest(v, False, "find initial on"), (_A,), "[]interface {}", False),
        ("append", lambda v, x: [*_items(v, "push on"), x], (_A, _A), "[]interface {}", False),
        ("push", lambda v, x: [*_items(v, "push on"), x], (_A, _A), "[]interface {}", False),
        ("prepend", lambda v, x: [x, *_items(v, "prepend on")], (_A, _A), "[]interface {}", False),
        ("reverse", lambda v: list(reversed(_items(v, "find reverse on"))), (_A,), "[]interface {}", False),
        ("uniq", _uniq, (_A,), "[]interface {}", False),
        ("without", _without, (_A, _A), "[]interface {}", True),
        ("has", _has, (_A, _A), "bool", False),
        ("slice", _slice, (_A, _A), _A, True),
        ("concat", _concat, (_A,), _A, True),
        ("dig", _dig, (_A,), _A, True),
        ("chunk", _chunk, ("int", _A), "[][]interface {}", False),
        ("compact", _compact, (_A,), "[]interface {}", False),
        ("join", lambda sep, v: sep.join(strslice(v)), (_S, _A), _S, False),
        ("sortAlpha", _sort_alpha, (_A,), "[]string", False),
        ("toStrings", strslice, (_A,), "[]string", False),
        ("default", _default, (_A, _A), _A, True),
        ("empty", empty, (_A,), "bool", False),
        ("coalesce", lambda *v: next((x for x in v if not empty(x)), None), (_A,), _A, True),
        ("all", lambda *v: all(not empty(x) for x in v), (_A,), "bool", True),
        ("any", lambda *v: any(not empty(x) for x in v), (_A,), "bool", True),
        ("fromJson", lambda s: _from_json(s, False), (_S,), _A, False),
        ("mustFromJson", lambda s: _from_json(s, True), (_S,), _A, False),
        ("toJson", _to_json, (_A,), _S, False),
        ("mustToJson", _must_to_json, (_A,), _S, False),
        ("toPrettyJson", lambda v: _to_json(v, "  "), (_A,), _S, False),
        ("mustToPrettyJson", lambda v: _must_to_json(v, "  "), (_A,), _S, False),
        ("toRawJson", _to_raw_json, (_A,), _S, False),
        ("mustToRawJson", _to_raw_json, (_A,), _S, False),
        ("ternary", lambda vt, vf, v: vt if v else vf, (_A, _A, "bool"), _A, False),
        ("typeOf", go_type, (_A,), _S, False),
        ("typeIs", lambda t, v: t == go_type(v), (_S, _A), "bool", False),
        ("typeIsLike", lambda t, v: go_type(v) in (t, "*" + t), (_S, _A), "bool", False),
        ("kindOf", _kind, (_A,), _S, False),
        ("kindIs", lambda k, v: k == _kind(v), (_S, _A), "bool", False),
        ("deepEqual", deep_equal, (_A, _A), "bool", False),
    ]
    funcs = {name: _f(name, fn, params, result, variadic) for name, fn, params, result, variadic in table}
    for name in ("push", "prepend", "first", "last", "rest", "initial", "reverse", "uniq", "without", "has",
                 "slice", "chunk", "compact"):
        funcs["must" + name[0].upper() + name[1:]] = funcs[name]
    funcs["mustAppend"] = funcs["append"]
    return funcs


