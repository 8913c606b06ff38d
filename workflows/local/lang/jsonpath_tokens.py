"""The tokens of github.com/evilmonkeyinc/jsonpath v0.8.1 (token/*.go), as Argo queries with them (no options).

Values are Go's as json.Unmarshal gives them (dict, list, str, float, bool, None); an int is an int64. A map's keys
are visited sorted, as the library's sortMapKeys does. Errors are `PathError`s carrying the library's messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

from workflows.local.lang.errors import Unsupported
from workflows.local.lang.gotypes import Int64, from_json

# errors/errors.go: the sentinels the library wraps with %w and tests with errors.Is
INVALID_EXPRESSION = "invalid expression"
INVALID_SELECTOR = "invalid JSONPath selector"
INVALID_DATA = "invalid data"
INVALID_TOKEN = "invalid token"
INVALID_TOKEN_TARGET = "invalid token target"
UNEXPECTED_RESULT = "unexpected expression result"
UNEXPECTED_TOKEN = "unexpected token"


class PathError(Exception):
    """An error the library returns: its message, and the sentinels it wraps (errors.Is)."""

    def __init__(self, message: str, *wraps: str) -> None:
        super().__init__(message)
        self.message = message
        self.wraps = frozenset(wraps) | ({INVALID_TOKEN} if INVALID_TOKEN_TARGET in wraps else frozenset())

    def __str__(self) -> str:
        return self.message


def kinds(*names: str) -> str:
    """fmt's %v of a []reflect.Kind."""
    return "[" + " ".join(names) + "]"


def kind(value: Any) -> str:
    """reflect.TypeOf(value).Kind() of a non-nil value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, dict):
        return "map"
    raise Unsupported(f"a value of Python type {type(value).__name__} in a jsonpath query")


# token/errors.go


def invalid_expression(reason: PathError) -> PathError:
    if INVALID_EXPRESSION in reason.wraps:
        return reason
    return PathError(f"{INVALID_EXPRESSION}. {reason}", INVALID_EXPRESSION)


def invalid_expression_empty() -> PathError:
    return PathError(f"{INVALID_EXPRESSION}. is empty", INVALID_EXPRESSION)


def invalid_expression_format(text: str) -> PathError:
    return PathError(f"{INVALID_EXPRESSION}. invalid format '{text}'", INVALID_EXPRESSION)


def invalid_argument(token_type: str, got: str, *expected: str) -> PathError:
    return PathError(f"{token_type}: {INVALID_TOKEN} argument. expected {kinds(*expected)} got [{got}]", INVALID_TOKEN)


def invalid_token(token_type: str, reason: PathError) -> PathError:
    if INVALID_TOKEN in reason.wraps:
        return reason
    return PathError(f"{token_type}: {INVALID_TOKEN} {reason}", INVALID_TOKEN)


def invalid_token_format(text: str) -> PathError:
    return PathError(f"{INVALID_TOKEN}. '{text}' does not match any token format", INVALID_TOKEN)


def key_not_found(token_type: str, key: str) -> PathError:
    return PathError(f"{token_type}: {INVALID_TOKEN} key '{key}' not found", INVALID_TOKEN)


def out_of_range(token_type: str) -> PathError:
    return PathError(f"{token_type}: {INVALID_TOKEN} out of range", INVALID_TOKEN)


def invalid_target(token_type: str, got: str, *expected: str) -> PathError:
    """getInvalidTokenTargetError; `got` "nil" for getInvalidTokenTargetNilError."""
    return PathError(f"{token_type}: {INVALID_TOKEN_TARGET}. expected {kinds(*expected)} got [{got}]",
                     INVALID_TOKEN_TARGET)


def unexpected_result(got: str, *expected: str) -> PathError:
    return PathError(f"{UNEXPECTED_RESULT}. expected {kinds(*expected)} got [{got}]", UNEXPECTED_RESULT)


def unexpected_token(text: str, index: int) -> PathError:
    return PathError(f"{UNEXPECTED_TOKEN} '{text}' at index {index}", UNEXPECTED_TOKEN)


def is_integer(value: Any) -> int | None:
    """isInteger: an int, or a float with no fraction, as an int64; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and not math.isnan(value) and math.trunc(value) == value:
        if not -(2.0 ** 63) <= value < 2.0 ** 63:
            raise Unsupported(f"jsonpath's int64({value}) (Go's conversion of a float out of int64's range)")
        return int(value)
    return None


def unmarshal(text: str, into: type | None = None) -> Any:
    """json.Unmarshal into an interface{} (or a []interface{}, a map[string]interface{}); ValueError where Go
    refuses the text (syntax errors in Python's words), the JSON value for that type, or a number too large."""
    value = from_json(text)
    if into is not None and not isinstance(value, into):
        raise ValueError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type {_GO_TYPES[into]}")
    if _has_infinity(value):
        literal = next(m.group(1) for m in _NUMBER_OR_STRING.finditer(text)
                       if m.group(1) and math.isinf(float(m.group(1))))
        raise ValueError(f"json: cannot unmarshal number {literal} into Go value of type float64")
    return _without_surrogates(value)


_GO_TYPES: dict[type, str] = {list: "[]interface {}", dict: "map[string]interface {}"}
_NUMBER_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)')


def _json_kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else \
        "string" if isinstance(value, str) else "bool" if isinstance(value, bool) else "number"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    """An escaped surrogate that is not half of a pair decodes to U+FFFD in Go (Python keeps it)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return math.isinf(value)
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_has_infinity(child) for child in children)


class Compiled(Protocol):
    """script.CompiledExpression."""

    def evaluate(self, root: Any, current: Any) -> Any: ...


class Token:
    """token.Token."""

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        raise NotImplementedError


def follow(root: Any, value: Any, nxt: Sequence[Token]) -> Any:
    """What most tokens end with: the next token applied to the value, or the value."""
    if nxt:
        return nxt[0].apply(root, value, nxt[1:])
    return value


class RootToken(Token):
    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        return follow(root, root, nxt)


class CurrentToken(Token):
    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        return follow(root, current, nxt)


class KeyToken(Token):
    def __init__(self, key: str) -> None:
        self.key = key

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if current is None:
            raise invalid_target("key", "nil", "map")
        if isinstance(current, dict):
            if self.key in current:
                return follow(root, current[self.key], nxt)
            raise key_not_found("key", self.key)
        raise invalid_target("key", kind(current), "map")


class LengthToken(Token):
    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        expected = ("array", "map", "slice", "string")
        if current is None:
            raise invalid_target("length", "nil", *expected)
        if isinstance(current, dict):
            value: Any = current["length"] if "length" in current else Int64(len(current))
        elif isinstance(current, list):
            value = Int64(len(current))
        elif isinstance(current, str):
            value = Int64(len(current.encode()))  # a Go string's length is its bytes
        else:
            raise invalid_target("length", kind(current), *expected)
        return follow(root, value, nxt)


class IndexToken(Token):
    """Without options an index selects from an array only (not a map's sorted values, not a string's bytes)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if current is None:
            raise invalid_target("index", "nil", "array", "slice")
        if not isinstance(current, list):
            raise invalid_target("index", kind(current), "array", "slice")
        idx = self.index + len(current) if self.index < 0 else self.index
        if idx < 0 or idx >= len(current):
            raise out_of_range("index")
        return follow(root, current[idx], nxt)


class WildcardToken(Token):
    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        expected = ("array", "map", "slice")
        if current is None:
            raise invalid_target("wildcard", "nil", *expected)
        if isinstance(current, dict):
            values = [current[k] for k in sorted(current)]
        elif isinstance(current, list):
            values = list(current)
        else:
            raise invalid_target("wildcard", kind(current), *expected)
        if not nxt:
            return values
        elements = []
        for value in values:
            try:
                result = nxt[0].apply(root, value, nxt[1:])
            except PathError:
                result = None  # handleNext drops the error: the result is nil
            if result is not None:
                elements.append(result)
        return elements


class RecursiveToken(Token):
    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        return self._recursive(root, current, nxt)

    def _recursive(self, root: Any, current: Any, nxt: Sequence[Token]) -> list[Any]:
        found: list[Any] = []
        if current is None:
            return found
        if nxt:
            try:
                result = nxt[0].apply(root, current, nxt[1:])
            except PathError:
                result = None
            if isinstance(result, list):
                found.extend(result)
            elif result is not None:
                found.append(result)
        else:
            found.append(current)
        children = [current[k] for k in sorted(current)] if isinstance(current, dict) else \
            current if isinstance(current, list) else []
        for child in children:
            found.extend(self._recursive(root, child, nxt))
        return found


class ExpressionToken(Token):
    """A `(...)` script as a union's or a range's argument."""

    def __init__(self, expression: str, compiled: Compiled) -> None:
        self.expression = expression
        self.compiled = compiled

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if self.expression == "":
            raise invalid_expression_empty()
        try:
            value = self.compiled.evaluate(root, current)
        except PathError as err:
            raise invalid_expression(err) from err
        return follow(root, value, nxt)


class ScriptToken(Token):
    """`[(...)]`: the script's result is the key (a string) or the index (an integer) to select."""

    def __init__(self, expression: str, compiled: Compiled) -> None:
        self.expression = expression
        self.compiled = compiled

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if self.expression == "":
            raise invalid_expression_empty()
        try:
            value = self.compiled.evaluate(root, current)
        except PathError as err:
            raise invalid_expression(err) from err
        if value is None:
            raise unexpected_result("nil", "int", "string")
        if isinstance(value, str):
            return KeyToken(value).apply(root, current, nxt)
        index = is_integer(value)
        if index is not None:
            return IndexToken(index).apply(root, current, nxt)
        raise unexpected_result(kind(value), "int", "string")
