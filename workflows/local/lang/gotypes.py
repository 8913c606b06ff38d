"""Go's values as Python holds them, and the Go library behaviour the expression languages rely on.

Go's `int` is a Python int kept to 64 bits, `float64` a float, `string` a str, `[]interface{}` a list,
`map[string]interface{}` a dict, nil None. Other Go types a function can return keep their type in a subclass
(`Int64`, `StrList` for `[]string`, ...), because Go compares, prints and passes them differently. Formatting and
parsing follow Go's strconv, fmt (`%v`) and encoding/json (Marshal), which decide the text Argo substitutes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from workflows.local.lang.errors import Unsupported

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
# strconv.FormatFloat(f, 'g', -1, 64) switches to an exponent from this decimal exponent on (strconv/ftoa.go: eprec)
G_EXPONENT_FROM = 6


class Int64(int):
    """Go's int64 (sprig's arithmetic returns it): the same number as an `int`, another type."""


class Uint8(int):
    """Go's uint8, a byte: what indexing a string gives."""


class StrList(list):  # type: ignore[type-arg,unused-ignore]
    """Go's []string."""


class IntList(list):  # type: ignore[type-arg,unused-ignore]
    """Go's []int (expr-lang's `..` range, sprig's `until`)."""


class StrMap(dict):  # type: ignore[type-arg,unused-ignore]
    """Go's map[string]string (sprig's `split`)."""


@dataclass(frozen=True)
class GoStruct:
    """A Go struct value: its type's name and its fields in declaration order."""

    type_name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class GoFunc:
    """A Go function value with its signature, so calls convert and refuse arguments as Go's reflect does.

    `params` are Go type names ("string", "int", "interface {}", "[]interface {}"...); with `variadic`, the
    last one is the type of each extra argument."""

    name: str
    fn: Callable[..., Any] = field(compare=False)
    params: tuple[str, ...]
    result: str
    variadic: bool = False

    @property
    def type_name(self) -> str:
        params = list(self.params)
        if self.variadic:
            params[-1] = "..." + params[-1]
        return f"func({', '.join(params)}) {self.result}"


def wrap(value: int) -> int:
    """An integer result as Go's 64-bit int holds it (two's complement wrap-around)."""
    return ((value - INT_MIN) % (1 << 64)) + INT_MIN


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return is_int(value) or isinstance(value, float)


def go_type(value: Any) -> str:
    """The value's Go type as fmt's %T and reflect print it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "int64"
    if isinstance(value, Uint8):
        return "uint8"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, StrList):
        return "[]string"
    if isinstance(value, IntList):
        return "[]int"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, StrMap):
        return "map[string]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, GoFunc):
        return value.type_name
    raise Unsupported(f"a value of Python type {type(value).__name__} has no Go type")


def elem_type(value: list[Any]) -> str:
    return go_type(value)[2:]


# --- floats as strconv formats them ----------------------------------------------------------------------


def _digits(f: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as `abs(f)`, and the decimal point's position (0.DIGITS x 10^dp)."""
    if f == 0:
        return "0", 1
    sign, digits, exponent = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    assert isinstance(exponent, int)
    return text, len(digits) + exponent


def _fixed(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _exponent(digits: str, dp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = dp - 1
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_float(f: float, fmt: str = "g") -> str:
    """strconv.FormatFloat(f, fmt, -1, 64) for fmt 'g', 'f' or 'e'."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    digits, dp = _digits(f)
    if fmt == "f":
        return sign + _fixed(digits, dp)
    if fmt == "e":
        return sign + _exponent(digits, dp)
    exp = dp - 1
    return sign + (_exponent(digits, dp) if exp < -4 or exp >= G_EXPONENT_FROM else _fixed(digits, dp))


def format_g(f: float) -> str:
    """fmt's %v of a float64: strconv's 'g' with the shortest digits."""
    return format_float(f, "g")


# --- parsing as strconv parses ---------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:_[0-9]+)*)?(?:\.(?:[0-9]+(?:_[0-9]+)*)?)?(?:[eE][+-]?[0-9]+(?:_[0-9]+)*)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:_?[0-9a-fA-F]+)*(?:\.(?:[0-9a-fA-F]+(?:_?[0-9a-fA-F]+)*)?)?[pP][+-]?[0-9]+")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64); ValueError for what Go refuses (including a value out of range)."""
    if _SPECIAL.fullmatch(text):
        return float(text)
    if _HEX_FLOAT.fullmatch(text):
        body = text.replace("_", "")
        value = float.fromhex(body)
    elif _DECIMAL.fullmatch(text) and any(c.isdigit() for c in text.split("e")[0].split("E")[0]):
        value = float(text)  # Python takes `_` between digits where Go does
    else:
        raise ValueError(f"strconv.ParseFloat: parsing {text!r}: invalid syntax")
    if math.isinf(value):
        raise ValueError(f"strconv.ParseFloat: parsing {text!r}: value out of range")
    return value


_INT_BASE0 = re.compile(r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*"
                        r"|[1-9](?:_?[0-9])*)")


def parse_int(text: str, base: int = 10) -> int:
    """strconv.ParseInt(text, base, 64) for base 10 (Atoi) or 0 (Go's literal prefixes, underscores between digits);
    ValueError for invalid syntax or a value out of range."""
    if base == 10:
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(f"strconv.Atoi: parsing {text!r}: invalid syntax")
        value = int(text)
    elif base == 8:
        if not re.fullmatch(r"[+-]?[0-7]+", text):
            raise ValueError(f"strconv.ParseInt: parsing {text!r}: invalid syntax")
        value = int(text, 8)
    else:
        if not _INT_BASE0.fullmatch(text):
            raise ValueError(f"strconv.ParseInt: parsing {text!r}: invalid syntax")
        body = text.replace("_", "")
        sign = -1 if body.startswith("-") else 1
        body = body.lstrip("+-")
        if len(body) > 1 and body[0] == "0" and body[1] not in "xXbBoO":
            value = sign * int(body[1:], 8)
        else:
            value = sign * int(body, 0)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"strconv.ParseInt: parsing {text!r}: value out of range")
    return value


# --- fmt's %v ---------------------------------------------------------------------------------------------


def fmt_v(value: Any) -> str:
    """fmt.Sprintf("%v", value)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return format_g(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(fmt_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{fmt_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(fmt_v(v) for v in value.fields.values()) + "}"
    raise Unsupported(f"printing a {go_type(value)} value as Go does (an address)")


# --- encoding/json ---------------------------------------------------------------------------------------

# encoding/json as Argo v4.1.2 is built (Go 1.26): since Go 1.22, \b and \f are written as themselves
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class JSONError(ValueError):
    """json.Marshal refuses the value (a function, NaN or an infinity)."""


def json_string(text: str) -> str:
    out = ['"']
    for c in text:
        if c in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[c])
        elif c < " ":
            out.append(f"\\u{ord(c):04x}")
        elif "\ud800" <= c <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise JSONError(f"json: unsupported value: {format_float(f)}")
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        text = format_float(f, "e")
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return format_float(f, "f")


def to_json(value: Any, indent: str = "", _level: int = 0) -> str:
    """json.Marshal(value) (json.MarshalIndent(value, "", indent) when `indent` is given), as Go writes it:
    map keys sorted, <, > and & escaped, floats in Go's shortest form."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, GoStruct):
        return _container("{", "}", [(k, v) for k, v in value.fields.items()], indent, _level)
    if isinstance(value, dict):
        return _container("{", "}", [(str(k), value[k]) for k in sorted(value)], indent, _level)
    if isinstance(value, list):
        return _container("[", "]", [(None, v) for v in value], indent, _level)
    raise JSONError(f"json: unsupported type: {go_type(value)}")


def _container(open_: str, close: str, items: Sequence[tuple[str | None, Any]], indent: str, level: int) -> str:
    if not items:
        return open_ + close
    parts = []
    for key, item in items:
        head = "" if key is None else json_string(key) + (": " if indent else ":")
        parts.append(head + to_json(item, indent, level + 1))
    if not indent:
        return open_ + ",".join(parts) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(parts) + "\n" + indent * level + close


def from_json(text: str) -> Any:
    """json.Unmarshal into interface{}: numbers become float64, objects map[string]interface{}."""
    import json

    def no_constants(name: str) -> Any:
        raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")

    try:
        return json.loads(text, parse_int=float, parse_constant=no_constants)
    except json.JSONDecodeError as err:
        raise ValueError(str(err)) from err


# --- reflect.DeepEqual -----------------------------------------------------------------------------------


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual: the same Go type, and equal contents (NaN is never equal)."""
    if a is None or b is None:
        return a is None and b is None
    if go_type(a) != go_type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, GoStruct):
        return all(deep_equal(a.fields[k], b.fields[k]) for k in a.fields)
    if isinstance(a, GoFunc):
        return False
    return bool(a == b)
