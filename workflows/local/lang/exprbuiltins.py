"""expr-lang's builtin functions (builtin/builtin.go and builtin/lib.go, v1.17.8) that take values, not predicates.

Each follows its Go definition: argument type assertions that panic are errors, strings are indexed by bytes
where Go's strings package does, and numbers keep Go's types.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from workflows.local.lang import exprops as ops
from workflows.local.lang.errors import ExprRuntimeError, Unsupported
from workflows.local.lang.exprlex import is_space
from workflows.local.lang.gotypes import (
    GoStruct,
    IntList,
    StrList,
    fmt_v,
    from_json,
    go_type,
    is_int,
    is_number,
    parse_float,
    parse_int,
    to_json,
    wrap,
)

panic = ops.panic
# builtins expr-lang has that are not evaluated locally: their values are times, or maps Go cannot encode
UNSUPPORTED = {"now": "time values", "duration": "time values", "date": "time values", "timezone": "time values",
               "fromPairs": "a map[interface {}]interface {} value", "groupBy": "a map[interface {}][]interface {}",
               "sortBy": "an unstable sort"}


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise panic(f"interface conversion: interface {{}} is {go_type(value)}, not string")
    return value


def _case(text: str, upper: bool) -> str:
    """strings.ToUpper/ToLower: each rune's simple case mapping (Python's full mapping when it is one rune)."""
    if text.isascii():
        return text.upper() if upper else text.lower()
    out = []
    for c in text:
        mapped = c.upper() if upper else c.lower()
        if len(mapped) != 1:
            raise Unsupported(f"the case mapping of {c!r}, which Go maps rune by rune")
        out.append(mapped)
    return "".join(out)


def _go_space(c: str) -> bool:
    return is_space(c)


def trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _go_space(text[start]):
        start += 1
    while end > start and _go_space(text[end - 1]):
        end -= 1
    return text[start:end]


def go_split(text: str, sep: str, n: int = -1, after: bool = False) -> StrList:
    """strings.SplitN / SplitAfterN; an empty separator splits into runes."""
    if n == 0:
        raise Unsupported("splitting into at most 0 parts (Go returns a nil []string)")
    if sep == "":
        parts = list(text)
        if 0 < n < len(parts):
            parts = parts[:n - 1] + ["".join(parts[n - 1:])]
        return StrList(parts)
    parts = text.split(sep, n - 1 if n > 0 else -1)
    if after:
        parts = [p + sep for p in parts[:-1]] + parts[-1:]
    return StrList(parts)


def byte_index(text: str, index: int) -> int:
    return -1 if index < 0 else len(text[:index].encode())


def _round(value: Any, name: str, fn: Callable[[float], float]) -> float:
    if isinstance(value, float):
        return value if not math.isfinite(value) else fn(value)
    if is_int(value):
        return float(value)
    raise panic(f"invalid argument for {name} (type {go_type(value)})")


def go_round(x: float) -> float:
    """math.Round: half away from zero."""
    if abs(x) >= 2.0**52:  # already a whole number
        return x
    return math.copysign(float(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP)), x)


def _ceil_floor(f: float, fn: Callable[[float], int]) -> float:
    result = float(fn(f))
    return math.copysign(result, f) if result == 0 else result


def to_go_int(value: Any) -> int:
    """builtin.Int (asInt)."""
    if isinstance(value, float):
        return ops.float_to_int(value)
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return parse_int(value)
        except ValueError as err:
            raise panic(f"invalid operation: int({value})") from err
    raise panic(f"invalid operation: int({go_type(value)})")


def to_go_float(value: Any) -> float:
    """builtin.Float (asFloat)."""
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_float(value)
        except ValueError as err:
            raise panic(f"invalid operation: float({value})") from err
    raise panic(f"invalid operation: float({go_type(value)})")


def type_name(value: Any) -> str:
    """builtin.Type."""
    if value is None:
        return "nil"
    if isinstance(value, GoStruct):
        return value.type_name
    kind = go_type(value)
    if kind == "bool" or kind == "string":
        return kind
    if kind in ("int", "int64"):
        return "int"
    if kind == "uint8":
        return "uint"
    if kind == "float64":
        return "float"
    if kind.startswith("[]"):
        return "array"
    if kind.startswith("map["):
        return "map"
    return "func"


def _numbers(name: str, args: tuple[Any, ...], depth: int = 0) -> list[Any]:
    """The numbers of minMax, mean and median, arrays flattened."""
    out: list[Any] = []
    for arg in args:
        if is_number(arg):
            out.append(arg)
        elif isinstance(arg, list):
            out.extend(_numbers(name, tuple(arg), depth + 1))
        else:
            raise ExprRuntimeError(f"invalid argument for {name} (type {go_type(arg)})")
    return out


def min_max(name: str, *args: Any) -> Any:
    if len(args) == 1 and not is_number(args[0]) and not isinstance(args[0], list):
        return args[0]
    best: Any = None
    op = "<" if name == "max" else ">"
    for value in _numbers(name, args):
        if best is None or ops.compare(op, best, value):
            best = value
    return best


def mean(*args: Any) -> float:
    values = _numbers("mean", args)
    return 0.0 if not values else _sum_floats(values) / len(values)


def _sum_floats(values: list[Any]) -> float:
    total = 0.0
    for v in values:  # in order, as Go adds them (no compensated summation)
        total += float(v)
    return total


def median(*args: Any) -> float:
    values = sorted(float(v) for v in _numbers("median", args))
    if not values:
        return 0.0
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def join(items: Any, glue: str = "") -> str:
    if isinstance(items, list):
        return _str(glue).join(_str(i) for i in items)
    raise panic(f"invalid argument for join (type {go_type(items)})")


def from_base64(text: Any) -> str:
    try:
        data = base64.b64decode(_str(text).replace("\r", "").replace("\n", ""), validate=True)
    except binascii.Error as err:
        raise panic(f"illegal base64 data: {err}") from err
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise Unsupported("decoded bytes that are not UTF-8 text") from err


def take(items: Any, n: Any) -> Any:
    if not isinstance(items, list):
        raise panic(f"cannot take from {go_type(items)}")
    if not is_int(n):
        raise panic(f"cannot take {go_type(n)} elements")
    if n < 0:
        raise panic("reflect: slice index out of range")
    return type(items)(items[:n]) if isinstance(items, (StrList, IntList)) else list(items[:n])


def _map_items(value: Any, what: str) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        raise panic(f"cannot {what} {go_type(value)}")
    return sorted(value.items())  # Go's map order is random: sorted is one of its orders


def uniq(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise panic(f"cannot uniq {go_type(items)}")
    out: list[Any] = []
    for item in items:
        if not any(ops.equal(item, seen) for seen in out):
            out.append(item)
    return out


def flatten(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise panic(f"cannot flatten {go_type(items)}")
    out: list[Any] = []
    for item in items:
        out.extend(flatten(item) if isinstance(item, list) else [item])
    return out


def concat(*lists: Any) -> list[Any]:
    if not lists:
        raise panic("invalid number of arguments (expected at least 1, got 0)")
    out: list[Any] = []
    for items in lists:
        if not isinstance(items, list):
            raise panic(f"cannot concat {go_type(items)}")
        out.extend(items)
    return out


def go_sort(items: Any, order: Any = "asc") -> list[Any]:
    if not isinstance(order, str):
        raise panic(f"sort order argument must be a string (got {go_type(order)})")
    if order not in ("asc", "desc"):
        raise panic(f"invalid order {order}, expected asc or desc")
    if not isinstance(items, list):
        raise Unsupported(f"sorting a {go_type(items)}")
    keyed = sorted(items, key=functools.cmp_to_key(lambda a, b: -1 if ops.compare("<", a, b) else (
        1 if ops.compare("<", b, a) else 0)), reverse=order == "desc")
    for a, b in zip(keyed, keyed[1:], strict=False):
        if not ops.compare("<", a, b) and not ops.compare("<", b, a) and go_type(a) != go_type(b):
            raise Unsupported("sorting equal numbers of different types (Go's sort is not stable)")
    return keyed


def _bits(name: str, fn: Callable[[int, int], int]) -> Callable[..., int]:
    def run(*args: Any) -> int:
        if len(args) != 2:
            raise panic(f"invalid number of arguments for {name} (expected 2, got {len(args)})")
        for a in args:
            if not is_int(a):
                raise panic(f"cannot use {go_type(a)} as argument (type int) to call {name}")
        return wrap(fn(int(args[0]), int(args[1])))

    return run


def _shift(name: str, x: int, y: int) -> int:
    if y < 0:
        raise panic(f"invalid operation: negative shift count {y} (type int)")
    if name == "bitshl":
        return 0 if y >= 64 else x << y
    if name == "bitshr":
        return (-1 if x < 0 else 0) if y >= 64 else x >> y
    return 0 if y >= 64 else (x % (1 << 64)) >> y


def get(base: Any, key: Any) -> Any:
    """builtin get: like `base[key]`, but nil where indexing would fail."""
    if base is None:
        return None
    try:
        return ops.fetch(base, key)
    except ExprRuntimeError:
        return None


def first_or_last(items: Any, index: int) -> Any:
    try:
        return ops.fetch(items, index)
    except ExprRuntimeError:
        return None


def length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)  # runes
    if isinstance(value, (list, dict)):
        return len(value)
    raise panic(f"invalid argument for len (type {go_type(value)})")


def repeat(text: Any, n: Any) -> str:
    count = ops.to_int(n)
    if count < 0:
        raise panic(f"invalid argument for repeat (expected positive integer, got {count})")
    if count > 1_000_000:
        raise panic("memory budget exceeded")
    return _str(text) * count


def _abs(x: Any) -> Any:
    if isinstance(x, float):
        return abs(x)
    if is_int(x):
        return wrap(-x) if x < 0 else x
    raise panic(f"invalid argument for abs (type {go_type(x)})")


def _trim(s: Any, cutset: Any = None) -> str:
    return trim_space(_str(s)) if cutset is None else _str(s).strip(_str(cutset)) if _str(cutset) else _str(s)


def _reverse(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise panic(f"cannot reverse {go_type(items)}")
    return list(reversed(items))


def _bitnot(x: Any) -> int:
    if not is_int(x):
        raise panic(f"cannot use {go_type(x)} as argument (type int) to call bitnot")
    return wrap(~x)


def _to_json(value: Any) -> str:
    from workflows.local.lang.gotypes import JSONError

    try:
        return to_json(value, indent="  ")
    except JSONError as err:
        raise panic(str(err)) from err


def _from_json(text: Any) -> Any:
    try:
        return from_json(_str(text))
    except ValueError as err:
        raise panic(str(err)) from err


BUILTINS: dict[str, Callable[..., Any]] = {
    "len": length, "type": type_name, "abs": _abs,
    "ceil": lambda x: _round(x, "ceil", lambda f: _ceil_floor(f, math.ceil)),
    "floor": lambda x: _round(x, "floor", lambda f: _ceil_floor(f, math.floor)),
    "round": lambda x: _round(x, "round", go_round),
    "int": to_go_int, "float": to_go_float, "string": fmt_v,
    "trim": _trim,
    "trimPrefix": lambda s, p=" ": _str(s).removeprefix(_str(p)),
    "trimSuffix": lambda s, p=" ": _str(s).removesuffix(_str(p)),
    "upper": lambda s: _case(_str(s), True), "lower": lambda s: _case(_str(s), False),
    "split": lambda s, sep, n=-1: go_split(_str(s), _str(sep), ops.to_int(n)),
    "splitAfter": lambda s, sep, n=-1: go_split(_str(s), _str(sep), ops.to_int(n), after=True),
    "replace": lambda s, old, new, n=-1: _str(s).replace(_str(old), _str(new), ops.to_int(n)),
    "repeat": repeat, "join": join,
    "indexOf": lambda s, sub: byte_index(_str(s), _str(s).find(_str(sub))),
    "lastIndexOf": lambda s, sub: byte_index(_str(s), _str(s).rfind(_str(sub))),
    "hasPrefix": lambda s, p: _str(s).startswith(_str(p)), "hasSuffix": lambda s, p: _str(s).endswith(_str(p)),
    "max": lambda *a: min_max("max", *a), "min": lambda *a: min_max("min", *a), "mean": mean, "median": median,
    "toJSON": _to_json, "fromJSON": _from_json,
    "toBase64": lambda s: base64.b64encode(_str(s).encode()).decode(), "fromBase64": from_base64,
    "first": lambda x: first_or_last(x, 0), "last": lambda x: first_or_last(x, -1), "get": get, "take": take,
    "keys": lambda m: [k for k, _ in _map_items(m, "get keys from")],
    "values": lambda m: [v for _, v in _map_items(m, "get values from")],
    "toPairs": lambda m: [[k, v] for k, v in _map_items(m, "transform to pairs")],
    "reverse": _reverse,
    "uniq": uniq, "concat": concat, "flatten": flatten, "sort": go_sort,
    "bitand": _bits("bitand", lambda x, y: x & y), "bitor": _bits("bitor", lambda x, y: x | y),
    "bitxor": _bits("bitxor", lambda x, y: x ^ y), "bitnand": _bits("bitnand", lambda x, y: x & ~y),
    "bitshl": _bits("bitshl", lambda x, y: _shift("bitshl", x, y)),
    "bitshr": _bits("bitshr", lambda x, y: _shift("bitshr", x, y)),
    "bitushr": _bits("bitushr", lambda x, y: _shift("bitushr", x, y)),
    "bitnot": _bitnot,
}
