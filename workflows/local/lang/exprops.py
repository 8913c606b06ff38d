"""expr-lang's runtime operations (vm/runtime/runtime.go and helpers[generated].go) on Go values held in Python.

Mixed integer types give Go's `int` (64 bits, wrapping), an integer and a float give float64, `/` always a
float64, `%` only integers. A Go panic is an ExprRuntimeError carrying Go's message.
"""

from __future__ import annotations

import math
from typing import Any

from workflows.local.lang.errors import ExprRuntimeError, Unsupported
from workflows.local.lang.gotypes import (
    INT_MIN,
    GoFunc,
    GoStruct,
    Int64,
    IntList,
    StrList,
    StrMap,
    Uint8,
    deep_equal,
    go_type,
    is_int,
    is_number,
    wrap,
)

MEMORY_BUDGET = 1_000_000  # conf.DefaultMemoryBudget: how many elements a run may allocate


def panic(message: str) -> ExprRuntimeError:
    return ExprRuntimeError(message)


def to_int(value: Any) -> int:
    """runtime.ToInt."""
    if is_int(value):
        return int(value)
    if isinstance(value, float):
        return float_to_int(value)
    raise panic(f"invalid operation: int({go_type(value)})")


def float_to_int(value: float) -> int:
    """Go's int(f): truncation toward zero; out of range the result is the CPU's, so it is refused here."""
    if math.isnan(value) or not INT_MIN <= value < 2.0**63:
        raise Unsupported(f"converting {value!r} to an int, which Go leaves to the processor")
    return int(value)


def to_float(value: Any) -> float:
    """runtime.ToFloat64."""
    if is_number(value):
        return float(value)
    raise panic(f"invalid operation: float({go_type(value)})")


def is_nil(value: Any) -> bool:
    return value is None


def equal(a: Any, b: Any) -> bool:
    """runtime.Equal: numbers by value across types, arrays element by element, the rest as reflect.DeepEqual."""
    if is_number(a) and is_number(b):
        if isinstance(a, float) or isinstance(b, float):
            return float(a) == float(b)
        return int(a) == int(b)
    if isinstance(a, list) and isinstance(b, list):
        kinds = {go_type(a), go_type(b)}
        if "[]interface {}" in kinds or len(kinds) == 1:
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    for kind in (str, bool):
        if isinstance(a, kind) and isinstance(b, kind):
            return bool(a == b)
    if a is None and b is None:
        return True
    return deep_equal(a, b)


def compare(op: str, a: Any, b: Any) -> bool:
    """runtime.Less, More, LessOrEqual, MoreOrEqual."""
    if is_number(a) and is_number(b):
        x, y = (float(a), float(b)) if isinstance(a, float) or isinstance(b, float) else (int(a), int(b))
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a, b  # type: ignore[assignment]  # UTF-8 byte order is code point order
    else:
        raise panic(f"invalid operation: {go_type(a)} {op} {go_type(b)}")
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """runtime.Add, Subtract, Multiply, Divide, Modulo, Exponent."""
    if op in ("**", "^"):
        return power(to_float(a), to_float(b))
    if is_number(a) and is_number(b):
        if op == "/":
            return divide(float(a), float(b))
        if isinstance(a, float) or isinstance(b, float):
            if op == "%":
                raise panic(f"invalid operation: {go_type(a)} % {go_type(b)}")
            x, y = float(a), float(b)
            return x + y if op == "+" else x - y if op == "-" else x * y
        x, y = int(a), int(b)
        if op == "%":
            if y == 0:
                raise panic("runtime error: integer divide by zero")
            remainder = abs(x) % abs(y)  # Go truncates: the remainder takes the dividend's sign
            return wrap(-remainder if x < 0 else remainder)
        return wrap(x + y if op == "+" else x - y if op == "-" else x * y)
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    raise panic(f"invalid operation: {go_type(a)} {op} {go_type(b)}")


def divide(x: float, y: float) -> float:
    """IEEE 754 division, as Go's float64 `/` (no error for a zero divisor)."""
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def power(x: float, y: float) -> float:
    """math.Pow, with its special cases where Python's math.pow raises."""
    try:
        return math.pow(x, y)
    except OverflowError:
        odd = y == int(y) and int(y) % 2 == 1
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        if x == 0 and y < 0:
            odd = y == int(y) and int(y) % 2 == 1
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


def negate(value: Any) -> Any:
    """runtime.Negate keeps the operand's type: a byte wraps within a byte."""
    if isinstance(value, float):
        return -value
    if isinstance(value, Uint8):
        return Uint8(-int(value) % 256)
    if isinstance(value, Int64):
        return Int64(wrap(-int(value)))
    if is_int(value):
        return wrap(-int(value))
    raise panic(f"invalid operation: - {go_type(value)}")


def fetch(base: Any, key: Any) -> Any:
    """runtime.Fetch: `base[key]` and `base.key`."""
    if base is None or isinstance(base, GoFunc):
        raise panic(f"cannot fetch {_shown(key)} from {go_type(base)}")
    if isinstance(base, (list, str)):
        index = to_int(key)
        size = len(base) if isinstance(base, list) else len(base.encode())
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise panic(f"index out of range: {index} (array length is {size})")
        return base[index] if isinstance(base, list) else Uint8(base.encode()[index])
    if isinstance(base, dict):
        if key is None:
            key = ""
        if not isinstance(key, str):
            raise panic(f"reflect.Value.MapIndex: value of type {go_type(key)} is not assignable to type string")
        if key in base:
            return base[key]
        return "" if isinstance(base, StrMap) else None
    if isinstance(base, GoStruct) and isinstance(key, str) and key in base.fields:
        return base.fields[key]
    raise panic(f"cannot fetch {_shown(key)} from {go_type(base)}")


def _shown(value: Any) -> str:
    from workflows.local.lang.gotypes import fmt_v

    try:
        return fmt_v(value)
    except Unsupported:
        return go_type(value)


def slice_(base: Any, start: Any, stop: Any) -> Any:
    """runtime.Slice: Python-like bounds (negative from the end, clamped); strings are cut by bytes."""
    if not isinstance(base, (list, str)):
        raise panic(f"cannot slice {_shown(start)}")
    data = base.encode() if isinstance(base, str) else base
    size = len(data)
    a, b = to_int(start), to_int(stop)
    a = max(a + size if a < 0 else a, 0)
    b = min(max(b + size if b < 0 else b, 0), size)
    a = min(a, b)
    if isinstance(base, str):
        try:
            return bytes(data[a:b]).decode()
        except UnicodeDecodeError as err:
            raise Unsupported(f"slicing {base!r} inside a multi-byte character") from err
    return type(base)(data[a:b]) if isinstance(base, (StrList, IntList)) else list(data[a:b])


def contains(needle: Any, container: Any) -> bool:
    """runtime.In: `needle in container`; a constant set stands for the optimizer's map[string]struct{}."""
    if container is None:
        return False
    if isinstance(container, frozenset):
        if needle is None:
            needle = ""
        if not isinstance(needle, str):
            raise panic(f"reflect.Value.MapIndex: value of type {go_type(needle)} is not assignable to type string")
        return needle in container
    if isinstance(container, list):
        return any(equal(item, needle) for item in container)
    if isinstance(container, dict):
        if needle is None:
            needle = ""
        if not isinstance(needle, str):
            raise panic(f"reflect.Value.MapIndex: value of type {go_type(needle)} is not assignable to type string")
        return needle in container
    if isinstance(container, GoStruct):
        if not isinstance(needle, str):
            raise panic(f"cannot use {go_type(needle)} as field name of {container.type_name}")
        return needle in container.fields
    raise panic(f'operator "in" not defined on {go_type(container)}')


def make_range(a: Any, b: Any) -> IntList:
    low, high = to_int(a), to_int(b)
    if high - low + 1 > MEMORY_BUDGET:
        raise panic("memory budget exceeded")
    return IntList(range(low, high + 1))


def length(value: Any) -> int:
    """runtime.Len (bytes of a string), as OpLen uses it for `x[a:]`."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (list, dict)):
        return len(value)
    raise panic(f"invalid argument for len (type {go_type(value)})")


def call(func: Any, args: list[Any]) -> Any:
    """OpCall: a Go function value called through reflect, which converts nil to the parameter's zero value and
    refuses an argument of another type."""
    if func is None:
        raise panic("invalid operation: cannot call nil")
    if not isinstance(func, GoFunc):
        raise panic(f"invalid operation: cannot call non-function of type {go_type(func)}")
    n = len(func.params)
    if func.variadic and len(args) < n - 1:
        raise panic(f"invalid number of arguments: expected at least {n - 1}, got {len(args)}")
    if not func.variadic and len(args) != n:
        raise panic(f"invalid number of arguments: expected {n}, got {len(args)}")
    converted = []
    for i, arg in enumerate(args):
        param = func.params[min(i, n - 1)]
        converted.append(convert(arg, param))
    try:
        return func.fn(*converted)
    except (ExprRuntimeError, Unsupported):
        raise
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError) as err:
        raise panic(str(err)) from err


_ZERO: dict[str, Any] = {"string": "", "int": 0, "int64": 0, "float64": 0.0, "bool": False}


def convert(value: Any, param: str) -> Any:
    """reflect's assignability of one argument to a parameter type; nil becomes the type's zero value."""
    if param == "interface {}":
        return value
    if value is None:
        return _ZERO.get(param)
    if go_type(value) == param:
        return value
    raise panic(f"reflect: Call using {go_type(value)} as type {param}")
