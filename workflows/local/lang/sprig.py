"""The sprig functions Argo puts under `sprig.` (github.com/Masterminds/sprig/v3 v3.3.0 GenericFuncMap, less env
and expandenv): strings, numbers, encodings, paths and regular expressions here, lists and maps in sprig_lists.

Each function keeps its Go signature, so a call converts its arguments as Go's reflect does (nil becomes the
zero value, an int64 is not an int). Functions not listed (dates, random values, crypto, semver, URLs, merge,
deepCopy, ...) are refused when an expression names them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import zlib
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from workflows.local.lang import exprbuiltins, exprops
from workflows.local.lang.errors import ExprRuntimeError, Unsupported
from workflows.local.lang.goregexp import RegexpError, compile_go
from workflows.local.lang.gotypes import GoFunc, Int64, IntList, StrList, StrMap, fmt_v, parse_int
from workflows.local.lang.sprig_lists import cast_float, cast_int, lists_and_maps, strval

_A, _S, _I = "interface {}", "string", "int"


def _int64(value: int) -> Int64:
    return Int64(exprops.wrap(value))


def _div(a: Any, b: Any, mod: bool) -> Int64:
    x, y = cast_int(a), cast_int(b)
    if y == 0:
        raise ExprRuntimeError("runtime error: integer divide by zero")
    q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
    return _int64(x - q * y if mod else q)


def _decimal(value: Any) -> Decimal:
    f = cast_float(value)
    if not math.isfinite(f):
        raise ExprRuntimeError(f"Cannot create a Decimal from {fmt_v(f)}")
    return Decimal(repr(f))


def _decimal_op(op: str, first: Any, rest: tuple[Any, ...]) -> float:
    """execDecimalOp: shopspring/decimal on each float's shortest digits; division rounds to 16 places."""
    result = Fraction(_decimal(first))
    for value in rest:
        other = Fraction(_decimal(value))
        if op == "+":
            result += other
        elif op == "-":
            result -= other
        elif op == "*":
            result *= other
        else:
            if other == 0:
                raise ExprRuntimeError("decimal division by zero")
            scaled = result / other * 10**16
            rounded = math.floor(abs(scaled) + Fraction(1, 2))
            result = Fraction(rounded if scaled >= 0 else -rounded, 10**16)
    return float(Decimal(result.numerator) / Decimal(result.denominator)) if result.denominator != 1 else float(
        result.numerator)


def _maxf(op: str, first: Any, rest: tuple[Any, ...]) -> float:
    best = cast_float(first)
    for value in rest:
        x = cast_float(value)
        if math.isnan(best) or math.isnan(x):
            best = math.nan
        elif x == best == 0:
            best = (x if math.copysign(1, x) > 0 else best) if op == "max" else (
                x if math.copysign(1, x) < 0 else best)
        else:
            best = max(best, x) if op == "max" else min(best, x)
    return best


def _round(value: Any, places: int, *round_on: float) -> float:
    on = round_on[0] if round_on else 0.5
    pow_ = math.pow(10, float(places))
    digit = pow_ * cast_float(value)
    frac = math.modf(digit)[0]
    rounded = math.ceil(digit) if frac >= on else math.floor(digit)
    return exprops.divide(float(rounded), pow_)


def _until_step(start: int, stop: int, step: int) -> IntList:
    if stop < start:
        return IntList(range(start, stop, step)) if step < 0 else IntList()
    return IntList(range(start, stop, step)) if step > 0 else IntList()


def _seq(*params: int) -> str:
    if len(params) == 1:
        start, end, step = 1, params[0], (-1 if params[0] < 1 else 1)
    elif len(params) == 2:
        start, end, step = params[0], params[1], (-1 if params[1] < params[0] else 1)
    elif len(params) == 3:
        start, step, end = params
        if end < start and step > 0:
            return ""
    else:
        return ""
    increment = -1 if end < start else 1
    return " ".join(str(i) for i in _until_step(start, end + increment, step))


def _trunc(count: int, text: str) -> str:
    data = text.encode()
    if count < 0 and len(data) + count > 0:
        return _bytes_text(data[len(data) + count:])
    if count >= 0 and len(data) > count:
        return _bytes_text(data[:count])
    return text


def _substr(start: int, end: int, text: str) -> str:
    data = text.encode()
    if start < 0:
        return _bytes_text(_bounded(data, 0, end))
    if end < 0 or end > len(data):
        return _bytes_text(_bounded(data, start, len(data)))
    return _bytes_text(_bounded(data, start, end))


def _bounded(data: bytes, start: int, end: int) -> bytes:
    if not 0 <= start <= end <= len(data):
        raise ExprRuntimeError(f"runtime error: slice bounds out of range [{start}:{end}]")
    return data[start:end]


def _bytes_text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise Unsupported("cutting a string inside a multi-byte character") from err


def go_quote(text: str) -> str:
    """strconv.Quote (fmt's %q of a string)."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append(repr(c)[1:-1] if c not in "\a\b\v" else {"\a": "\\a", "\b": "\\b", "\v": "\\v"}[c])
        elif c == " " or c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out) + '"'


def _decode(text: str, decoder: Callable[[str], bytes]) -> str:
    try:
        data = decoder(text)
    except (binascii.Error, ValueError) as err:
        raise Unsupported("decoding invalid data (sprig returns Go's error text)") from err
    return _bytes_text(data)


def _clean(path: str) -> str:
    """path.Clean."""
    if path == "":
        return "."
    rooted, parts = path.startswith("/"), list[str]()
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or "."


def _base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    return "/" if path == "" else path[path.rfind("/") + 1:]


def _ext(path: str) -> str:
    for i in range(len(path) - 1, -1, -1):
        if path[i] == "/":
            break
        if path[i] == ".":
            return path[i:]
    return ""


# --- regular expressions (regex.go) ------------------------------------------------------------------------


def _regexp(pattern: str) -> Any:
    try:
        return compile_go(pattern)
    except RegexpError as err:
        raise ExprRuntimeError(f"regexp: Compile({go_quote(pattern)}): {err}") from err


def go_find_all(pattern: Any, text: str, n: int = -1) -> list[tuple[int, int, Any]]:
    """Regexp.allMatches: successive matches, an empty match right after the previous match skipped."""
    out: list[tuple[int, int, Any]] = []
    pos, previous_end = 0, -1
    limit = len(text) + 1 if n < 0 else n
    while len(out) < limit and pos <= len(text):
        m = pattern.search(text, pos)
        if m is None:
            break
        accept = True
        if m.end() == pos:
            accept = m.start() != previous_end
            pos += 1
        else:
            pos = m.end()
        previous_end = m.end()
        if accept:
            out.append((m.start(), m.end(), m))
    return out


def go_expand(template: str, match: Any) -> str:
    """Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a dollar; an unknown group is empty."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c != "$" or i + 1 >= len(template):
            out.append(c)
            i += 1
            continue
        if template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        braced = template[i + 1] == "{"
        j = i + 2 if braced else i + 1
        k = j
        while k < len(template) and (template[k].isascii() and (template[k].isalnum() or template[k] == "_")):
            k += 1
        name = template[j:k]
        if not name or (braced and (k >= len(template) or template[k] != "}")):
            out.append("$")
            i += 1
            continue
        i = k + 1 if braced else k
        if all(d in "0123456789" for d in name):
            number = int(name)
            value = match.group(number) if number <= match.re.groups else None
        else:
            value = match.group(name) if name in match.re.groupindex else None
        out.append(value or "")
    return "".join(out)


def _replace_all(pattern: str, text: str, repl: str, literal: bool) -> str:
    compiled, out, last = _regexp(pattern), [], 0
    for start, end, m in go_find_all(compiled, text):
        out.append(text[last:start])
        out.append(repl if literal else go_expand(repl, m))
        last = end
    return "".join(out) + text[last:]


def _regex_split(pattern: str, text: str, n: int) -> StrList:
    if n == 0:
        raise Unsupported("regexSplit into 0 parts (Go returns a nil []string)")
    compiled = _regexp(pattern)
    if pattern and text == "":
        return StrList([""])
    parts, begin, end = StrList(), 0, 0
    for start, stop, _ in go_find_all(compiled, text, n):
        if n > 0 and len(parts) == n - 1:
            break
        end = start
        if stop != 0:
            parts.append(text[begin:end])
        begin = stop
    if end != len(text):
        parts.append(text[begin:])
    return parts


def _find_all(pattern: str, text: str, n: int) -> StrList:
    if n == 0:
        raise Unsupported("regexFindAll of 0 matches (Go returns a nil []string)")
    return StrList(m.group(0) for _, _, m in go_find_all(_regexp(pattern), text, n))


def _quote_meta(text: str) -> str:
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in text)


def _fail(message: str) -> str:
    raise ExprRuntimeError(message)


def _split_map(sep: str, text: str, n: int = -1) -> StrMap:
    parts = exprbuiltins.go_split(text, sep, n)
    return StrMap((f"_{i}", part) for i, part in enumerate(parts))


def _f(name: str, fn: Callable[..., Any], params: tuple[str, ...], result: str, variadic: bool = False) -> GoFunc:
    return GoFunc(name, fn, params, result, variadic)


def _strings_and_numbers() -> dict[str, GoFunc]:
    s1 = ((_S,), _S)
    table: list[tuple[str, Callable[..., Any], tuple[str, ...], str, bool]] = [
        ("hello", lambda: "Hello!", (), _S, False),
        ("trim", exprbuiltins.trim_space, *s1, False),
        ("upper", lambda s: exprbuiltins.BUILTINS["upper"](s), *s1, False),
        ("lower", lambda s: exprbuiltins.BUILTINS["lower"](s), *s1, False),
        ("trunc", _trunc, (_I, _S), _S, False),
        ("substr", _substr, (_I, _I, _S), _S, False),
        ("repeat", lambda n, s: exprbuiltins.repeat(s, n), (_I, _S), _S, False),
        ("trimall", lambda a, b: b.strip(a), (_S, _S), _S, False),
        ("trimAll", lambda a, b: b.strip(a), (_S, _S), _S, False),
        ("trimSuffix", lambda a, b: b.removesuffix(a), (_S, _S), _S, False),
        ("trimPrefix", lambda a, b: b.removeprefix(a), (_S, _S), _S, False),
        ("nospace", _nospace, *s1, False),
        ("contains", lambda sub, s: sub in s, (_S, _S), "bool", False),
        ("hasPrefix", lambda p, s: s.startswith(p), (_S, _S), "bool", False),
        ("hasSuffix", lambda p, s: s.endswith(p), (_S, _S), "bool", False),
        ("quote", lambda *v: " ".join(go_quote(strval(x)) for x in v if x is not None), (_A,), _S, True),
        ("squote", lambda *v: " ".join(f"'{fmt_v(x)}'" for x in v if x is not None), (_A,), _S, True),
        ("cat", lambda *v: " ".join(fmt_v(x) for x in v if x is not None), (_A,), _S, True),
        ("indent", _indent, (_I, _S), _S, False),
        ("nindent", lambda n, s: "\n" + _indent(n, s), (_I, _S), _S, False),
        ("replace", lambda old, new, src: src.replace(old, new), (_S, _S, _S), _S, False),
        ("plural", lambda one, many, count: one if count == 1 else many, (_S, _S, _I), _S, False),
        ("sha1sum", lambda s: hashlib.sha1(s.encode()).hexdigest(), *s1, False),
        ("sha256sum", lambda s: hashlib.sha256(s.encode()).hexdigest(), *s1, False),
        ("sha512sum", lambda s: hashlib.sha512(s.encode()).hexdigest(), *s1, False),
        ("adler32sum", lambda s: str(zlib.adler32(s.encode())), *s1, False),
        ("toString", strval, (_A,), _S, False),
        ("atoi", lambda s: _atoi(s), (_S,), _I, False),
        ("int64", lambda v: _int64(cast_int(v)), (_A,), "int64", False),
        ("int", lambda v: exprops.wrap(cast_int(v)), (_A,), _I, False),
        ("float64", cast_float, (_A,), "float64", False),
        ("seq", _seq, (_I,), _S, True),
        ("toDecimal", lambda v: _to_decimal(v), (_A,), "int64", False),
        ("split", _split_map, (_S, _S), "map[string]string", False),
        ("splitList", lambda sep, s: exprbuiltins.go_split(s, sep), (_S, _S), "[]string", False),
        ("splitn", lambda sep, n, s: _split_map(sep, s, n), (_S, _I, _S), "map[string]string", False),
        ("until", lambda n: _until_step(0, n, -1 if n < 0 else 1), (_I,), "[]int", False),
        ("untilStep", _until_step, (_I, _I, _I), "[]int", False),
        ("add1", lambda v: _int64(cast_int(v) + 1), (_A,), "int64", False),
        ("add", lambda *v: _int64(sum(cast_int(x) for x in v)), (_A,), "int64", True),
        ("sub", lambda a, b: _int64(cast_int(a) - cast_int(b)), (_A, _A), "int64", False),
        ("div", lambda a, b: _div(a, b, mod=False), (_A, _A), "int64", False),
        ("mod", lambda a, b: _div(a, b, mod=True), (_A, _A), "int64", False),
        ("mul", lambda a, *v: _int64(math.prod([cast_int(a), *(cast_int(x) for x in v)])), (_A, _A), "int64",
         True),
        ("add1f", lambda v: _decimal_op("+", v, (1,)), (_A,), "float64", False),
        ("addf", lambda *v: _decimal_op("+", 0.0, v), (_A,), "float64", True),
        ("subf", lambda a, *v: _decimal_op("-", a, v), (_A, _A), "float64", True),
        ("divf", lambda a, *v: _decimal_op("/", a, v), (_A, _A), "float64", True),
        ("mulf", lambda a, *v: _decimal_op("*", a, v), (_A, _A), "float64", True),
        ("biggest", lambda a, *v: _int64(max([cast_int(a), *(cast_int(x) for x in v)])), (_A, _A), "int64", True),
        ("max", lambda a, *v: _int64(max([cast_int(a), *(cast_int(x) for x in v)])), (_A, _A), "int64", True),
        ("min", lambda a, *v: _int64(min([cast_int(a), *(cast_int(x) for x in v)])), (_A, _A), "int64", True),
        ("maxf", lambda a, *v: _maxf("max", a, v), (_A, _A), "float64", True),
        ("minf", lambda a, *v: _maxf("min", a, v), (_A, _A), "float64", True),
        ("ceil", lambda v: float(math.ceil(cast_float(v))) if math.isfinite(cast_float(v)) else cast_float(v),
         (_A,), "float64", False),
        ("floor", lambda v: float(math.floor(cast_float(v))) if math.isfinite(cast_float(v)) else cast_float(v),
         (_A,), "float64", False),
        ("round", _round, (_A, _I, "float64"), "float64", True),
        ("b64enc", lambda s: base64.b64encode(s.encode()).decode(), *s1, False),
        ("b64dec", lambda s: _decode(s, lambda t: base64.b64decode(t.replace("\r", "").replace("\n", ""),
                                                                  validate=True)), *s1, False),
        ("b32enc", lambda s: base64.b32encode(s.encode()).decode(), *s1, False),
        ("b32dec", lambda s: _decode(s, base64.b32decode), *s1, False),
        ("base", _base, *s1, False),
        ("dir", lambda p: _clean(p[:p.rfind("/") + 1]), *s1, False),
        ("clean", _clean, *s1, False),
        ("ext", _ext, *s1, False),
        ("isAbs", lambda p: p.startswith("/"), (_S,), "bool", False),
        ("regexMatch", lambda r, s: _regex_match(r, s), (_S, _S), "bool", False),
        ("regexFindAll", _find_all, (_S, _S, _I), "[]string", False),
        ("regexFind", lambda r, s: next((m.group(0) for _, _, m in go_find_all(_regexp(r), s, 1)), ""), (_S, _S),
         _S, False),
        ("regexReplaceAll", lambda r, s, repl: _replace_all(r, s, repl, False), (_S, _S, _S), _S, False),
        ("regexReplaceAllLiteral", lambda r, s, repl: _replace_all(r, s, repl, True), (_S, _S, _S), _S, False),
        ("regexSplit", _regex_split, (_S, _S, _I), "[]string", False),
        ("regexQuoteMeta", _quote_meta, *s1, False),
        ("fail", _fail, (_S,), _S, False),
    ]
    return {name: _f(name, fn, params, result, variadic) for name, fn, params, result, variadic in table}


def _nospace(text: str) -> str:
    """goutils DeleteWhiteSpace: it reads the string byte by byte, each byte as a rune (so the bytes 0x85 and 0xA0
    inside a multi-byte character count as spaces, and the rest of such characters come out as Latin-1)."""
    data = text.encode()
    spaces = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0}
    if not any(b in spaces for b in data):
        return text
    return "".join(chr(b) for b in data if b not in spaces)


def _indent(spaces: int, text: str) -> str:
    if spaces < 0:
        raise ExprRuntimeError("strings: negative Repeat count")
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


def _atoi(text: str) -> int:
    try:
        return parse_int(text)
    except ValueError:
        return 0


def _to_decimal(value: Any) -> Int64:
    try:
        return Int64(parse_int(fmt_v(value), base=8))
    except ValueError:
        return Int64(0)


def _regex_match(pattern: str, text: str) -> bool:
    try:
        return compile_go(pattern).search(text) is not None
    except RegexpError:
        return False


SPRIG: dict[str, GoFunc] = _strings_and_numbers() | lists_and_maps()
