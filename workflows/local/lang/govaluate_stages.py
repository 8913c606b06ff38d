"""govaluate's stage planner and evaluator (stagePlanner.go, evaluationStage.go, EvaluableExpression.go).

The planner builds right-leaning trees, then mirrors each run of equal-precedence operators (reorderStages), so
`a - b - c` is `(a - b) - c`; its precedence is govaluate's own (comparisons bind looser than `&`, ternaries
looser than `||`). Numbers are float64, `+` concatenates when either side is a string, `==` is reflect.DeepEqual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.local.lang.errors import GovaluateError, Unsupported
from workflows.local.lang.exprops import divide, power
from workflows.local.lang.goregexp import RegexpError, compile_go
from workflows.local.lang.gotypes import format_float

PREFIXES = {"-": "NEGATE", "!": "INVERT", "~": "BITWISE_NOT"}
MODIFIERS = {"+": "PLUS", "-": "MINUS", "*": "MULTIPLY", "/": "DIVIDE", "%": "MODULUS", "**": "EXPONENT",
             "&": "BITWISE_AND", "|": "BITWISE_OR", "^": "BITWISE_XOR", ">>": "BITWISE_RSHIFT", "<<": "BITWISE_LSHIFT"}
LOGICALS = {"&&": "AND", "||": "OR"}
COMPARATORS = {"==": "EQ", "!=": "NEQ", ">": "GT", ">=": "GTE", "<": "LT", "<=": "LTE", "=~": "REQ", "!~": "NREQ",
               "in": "IN"}
TERNARIES = {"?": "TERNARY_TRUE", ":": "TERNARY_FALSE", "??": "COALESCE"}
SYMBOL_TEXT = {"EQ": "=", "NEQ": "!=", "GT": ">", "LT": "<", "GTE": ">=", "LTE": "<=", "REQ": "=~", "NREQ": "!~",
               "AND": "&&", "OR": "||", "IN": "in", "BITWISE_AND": "&", "BITWISE_OR": "|", "BITWISE_XOR": "^",
               "BITWISE_LSHIFT": "<<", "BITWISE_RSHIFT": ">>", "PLUS": "+", "MINUS": "-", "MULTIPLY": "*",
               "DIVIDE": "/", "MODULUS": "%", "EXPONENT": "**", "NEGATE": "-", "INVERT": "!", "BITWISE_NOT": "~",
               "TERNARY_TRUE": "?", "TERNARY_FALSE": ":", "COALESCE": "??", "NOOP": "NOOP", "VALUE": "VALUE"}
@dataclass
class Token:
    kind: str
    value: Any


class GoPattern:
    def __init__(self, source: str):
        self.source, self.compiled = source, compile_go(source)

    def __str__(self) -> str:
        return self.source


def shown(value: Any) -> str:
    """Go's %v of a govaluate value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, list):
        return "[" + " ".join(shown(v) for v in value) + "]"
    if isinstance(value, re.Pattern):
        return value.pattern
    return str(value)


_PRECEDENCE = {"NOOP": 0, "VALUE": 1, "LITERAL": 1, "ACCESS": 2, "FUNCTIONAL": 2, "NEGATE": 3, "INVERT": 3,
               "BITWISE_NOT": 3, "EXPONENT": 4, "PLUS": 5, "MINUS": 5, "BITWISE_AND": 6, "BITWISE_OR": 6,
               "BITWISE_XOR": 6, "BITWISE_LSHIFT": 7, "BITWISE_RSHIFT": 7, "MULTIPLY": 8, "DIVIDE": 8,
               "MODULUS": 8, "EQ": 9, "NEQ": 9, "GT": 9, "LT": 9, "GTE": 9, "LTE": 9, "REQ": 9, "NREQ": 9, "IN": 9,
               "TERNARY_TRUE": 10, "TERNARY_FALSE": 10, "COALESCE": 10, "AND": 11, "OR": 12, "SEPARATE": 13}
_ERRORS = {"PREFIX": "Value '%s' cannot be used with the prefix '%s'",
           "MODIFIER": "Value '%s' cannot be used with the modifier '%s', it is not a number",
           "COMPARATOR": "Value '%s' cannot be used with the comparator '%s', it is not a number",
           "LOGICALOP": "Value '%s' cannot be used with the logical operator '%s', it is not a bool",
           "TERNARY": "Value '%s' cannot be used with the ternary operator '%s', it is not a bool"}
_SHORT_CIRCUITED = object()


def _is_float(v: Any) -> bool:
    return isinstance(v, float)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


_NUMBER_CHECKS = (_is_float, _is_float, None)
_CHECKS: dict[str, tuple[Any, Any, Any]] = {
    **{s: (None, None, lambda a, b: _is_float(a) and _is_float(b) or _is_str(a) and _is_str(b))
       for s in ("GT", "LT", "GTE", "LTE")},
    "REQ": (_is_str, lambda v: _is_str(v) or isinstance(v, GoPattern), None),
    "NREQ": (_is_str, lambda v: _is_str(v) or isinstance(v, GoPattern), None),
    "AND": (_is_bool, _is_bool, None), "OR": (_is_bool, _is_bool, None), "IN": (None, lambda v: isinstance(v, list),
                                                                              None),
    **{s: _NUMBER_CHECKS for s in ("BITWISE_LSHIFT", "BITWISE_RSHIFT", "BITWISE_OR", "BITWISE_AND", "BITWISE_XOR",
                                   "MINUS", "MULTIPLY", "DIVIDE", "MODULUS", "EXPONENT")},
    "PLUS": (None, None, lambda a, b: _is_float(a) and _is_float(b) or _is_str(a) or _is_str(b)),
    "NEGATE": (None, _is_float, None), "INVERT": (None, _is_bool, None), "BITWISE_NOT": (None, _is_float, None),
    "TERNARY_TRUE": (_is_bool, None, None),
}


@dataclass(eq=False)
class Stage:
    symbol: str
    left: Stage | None = None
    right: Stage | None = None
    literal: Any = None
    error_format: str = ""

    def swap_with(self, other: Stage) -> None:
        self.symbol, other.symbol = other.symbol, self.symbol
        self.literal, other.literal = other.literal, self.literal
        self.error_format, other.error_format = other.error_format, self.error_format


class _Tokens:
    def __init__(self, tokens: list[Token]):
        self.tokens, self.index = tokens, 0

    def has_next(self) -> bool:
        return self.index < len(self.tokens)

    def next(self) -> Token:
        if self.index >= len(self.tokens):
            raise GovaluateError("runtime error: index out of range while planning")
        token = self.tokens[self.index]
        self.index += 1
        return token


def _level(kinds: tuple[str, ...], symbols: dict[str, str], error: str, left: Any, right: Any) -> Any:
    def planner(stream: _Tokens) -> Stage | None:
        left_stage = left(stream) if left is not None else None
        while stream.has_next():
            token = stream.next()
            if token.kind not in kinds or not isinstance(token.value, str) or token.value not in symbols:
                break
            right_stage = (right or planner)(stream)
            return Stage(symbols[token.value], left_stage, right_stage, error_format=error)
        stream.index -= 1  # stagePlanner.go rewinds here even when the loop never ran
        return left_stage

    return planner


def _separator(stream: _Tokens) -> Stage | None:
    return _separator_level(stream)


def _function(stream: _Tokens) -> Stage | None:
    return _accessor(stream)  # Argo defines no functions


def _accessor(stream: _Tokens) -> Stage | None:
    if not stream.has_next():
        return None
    token = stream.next()
    if token.kind != "ACCESSOR":
        stream.index -= 1
        return _value(stream)
    arguments = None
    if stream.has_next():
        following = stream.next()
        stream.index -= 1
        if following.kind == "CLAUSE":
            arguments = _separator(stream)
    return Stage("ACCESS", right=arguments, literal=token.value)


def _value(stream: _Tokens) -> Stage | None:
    if not stream.has_next():
        return None
    token = stream.next()
    if token.kind == "CLAUSE":
        inner = _separator(stream)
        stream.next()
        return Stage("NOOP", right=inner)
    if token.kind == "CLAUSE_CLOSE":
        stream.index -= 1
        return None
    if token.kind in ("NUMERIC", "STRING", "PATTERN", "BOOLEAN"):
        return Stage("LITERAL", literal=token.value)
    if token.kind == "PREFIX":
        stream.index -= 1
        return _prefix(stream)
    raise GovaluateError(f"Unable to plan token kind: '{token.kind}', value: '{shown(token.value)}'")


_prefix = _level(("PREFIX",), PREFIXES, _ERRORS["PREFIX"], None, _function)
_exponential = _level(("MODIFIER",), {"**": "EXPONENT"}, _ERRORS["MODIFIER"], _function, None)
_multiplicative = _level(("MODIFIER",), {"*": "MULTIPLY", "/": "DIVIDE", "%": "MODULUS"}, _ERRORS["MODIFIER"],
                         _exponential, None)
_additive = _level(("MODIFIER",), {"+": "PLUS", "-": "MINUS"}, _ERRORS["MODIFIER"], _multiplicative, None)
_shift = _level(("MODIFIER",), {">>": "BITWISE_RSHIFT", "<<": "BITWISE_LSHIFT"}, _ERRORS["MODIFIER"], _additive,
                None)
_bitwise = _level(("MODIFIER",), {"^": "BITWISE_XOR", "&": "BITWISE_AND", "|": "BITWISE_OR"}, _ERRORS["MODIFIER"],
                  _shift, None)
_comparator = _level(("COMPARATOR",), COMPARATORS, _ERRORS["COMPARATOR"], _bitwise, None)
_and = _level(("LOGICALOP",), {"&&": LOGICALS["&&"]}, _ERRORS["LOGICALOP"], _comparator, None)
_or = _level(("LOGICALOP",), {"||": LOGICALS["||"]}, _ERRORS["LOGICALOP"], _and, None)
_ternary = _level(("TERNARY",), TERNARIES, _ERRORS["TERNARY"], _or, None)
_separator_level = _level(("SEPARATOR",), {",": "SEPARATE"}, "", _ternary, None)


def plan(tokens: list[Token]) -> Stage | None:
    """planStages: plan, then reorder runs of equal precedence (elideLiterals only folds constants)."""
    if not tokens:
        return None
    stage = _separator_level(_Tokens(tokens))
    if stage is not None:
        _reorder(stage)
    return stage


def _reorder(root: Stage) -> None:
    same: list[Stage] = []
    following: Stage | None = root
    precedence = _PRECEDENCE[root.symbol]
    while following is not None:
        current, following = following, following.right
        if current.left is not None:
            _reorder(current.left)
        if _PRECEDENCE[current.symbol] == precedence:
            same.append(current)
            continue
        if len(same) > 1:
            _mirror(same)
        same, precedence = [current], _PRECEDENCE[current.symbol]
    if len(same) > 1:
        _mirror(same)


def _mirror(stages: list[Stage]) -> None:
    """mirrorStageSubtree, step by step."""
    n = len(stages)
    for stage in stages:
        stage.left, stage.right = stage.right, stage.left
    root, front = stages[0], stages[-1]
    front.left, root.right = root.right, front.left
    for i in range((n - 2) // 2 + 1):
        front, inverse = stages[i + 1], stages[n - i - 1]
        front.right, inverse.right = inverse.right, front.right
    for i in range(n // 2):
        stages[i].swap_with(stages[n - i - 1])


def _int64(value: float) -> int:
    if math.isnan(value) or not -(2.0**63) <= value < 2.0**63:
        raise Unsupported(f"converting {value!r} to int64 in a `when`, which Go leaves to the processor")
    return int(value)


def _uint64(value: float) -> int:
    if math.isnan(value) or not 0 <= value < 2.0**64:
        raise Unsupported(f"converting {value!r} to uint64 in a `when`, which Go leaves to the processor")
    return int(value)


def _regex(left: str, right: Any) -> bool:
    if isinstance(right, GoPattern):
        pattern = right.compiled
    else:
        try:
            pattern = compile_go(right)
        except RegexpError as err:
            raise GovaluateError(f"Unable to compile regexp pattern '{right}': {err}") from err
    return pattern.search(left) is not None


def _equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, GoPattern):
        raise Unsupported("comparing regular expressions in a `when`")
    return bool(a == b)


def _signed64(value: int) -> float:
    return float(((value + 2**63) % 2**64) - 2**63)


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:  # an infinite dividend: Go's math.Mod gives NaN
        return math.nan


def _in(needle: Any, items: list[Any]) -> bool:
    if isinstance(needle, list):
        raise GovaluateError("runtime error: comparing uncomparable type []interface {}")
    return any(type(needle) is type(item) and not isinstance(item, list) and needle == item for item in items)


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "EQ": _equal, "NEQ": lambda a, b: not _equal(a, b),
    "GT": lambda a, b: a > b, "LT": lambda a, b: a < b, "GTE": lambda a, b: a >= b, "LTE": lambda a, b: a <= b,
    "REQ": _regex, "NREQ": lambda a, b: not _regex(a, b),
    "AND": lambda a, b: a and b, "OR": lambda a, b: a or b,
    "IN": _in,
    "PLUS": lambda a, b: shown(a) + shown(b) if _is_str(a) or _is_str(b) else a + b,
    "MINUS": lambda a, b: a - b, "MULTIPLY": lambda a, b: a * b,
    "DIVIDE": divide, "MODULUS": lambda a, b: math.nan if b == 0 else _mod(a, b), "EXPONENT": power,
    "BITWISE_AND": lambda a, b: float(_int64(a) & _int64(b)), "BITWISE_OR": lambda a, b: float(_int64(a) | _int64(b)),
    "BITWISE_XOR": lambda a, b: float(_int64(a) ^ _int64(b)),
    "BITWISE_LSHIFT": lambda a, b: float((_uint64(a) << min(_uint64(b), 64)) % 2**64),
    "BITWISE_RSHIFT": lambda a, b: float(_uint64(a) >> min(_uint64(b), 64)),
    "NEGATE": lambda a, b: -b, "INVERT": lambda a, b: not b, "BITWISE_NOT": lambda a, b: _signed64(~_int64(b)),
    "TERNARY_TRUE": lambda a, b: b if a else None, "TERNARY_FALSE": lambda a, b: a if a is not None else b,
    "COALESCE": lambda a, b: a if a is not None else b,
    "SEPARATE": lambda a, b: [*a, b] if isinstance(a, list) else [a, b],
    "NOOP": lambda a, b: b,
}


def evaluate(stage: Stage | None) -> Any:
    """evaluateStage, with ChecksTypes on."""
    if stage is None:
        return None
    left = evaluate(stage.left) if stage.left is not None else None
    right: Any = None
    symbol = stage.symbol
    if symbol == "AND" and left is False:
        return False
    if symbol == "OR" and left is True:
        return True
    if symbol == "COALESCE" and left is not None:
        return left
    if symbol == "TERNARY_TRUE" and left is False or symbol == "TERNARY_FALSE" and left is not None:
        right = _SHORT_CIRCUITED
    if right is not _SHORT_CIRCUITED and stage.right is not None:
        right = evaluate(stage.right)
    if symbol == "LITERAL":
        return stage.literal
    if symbol == "ACCESS":  # Argo evaluates with no parameters
        raise GovaluateError(f"No parameter '{stage.literal[0]}' found.")
    left_check, right_check, combined = _CHECKS.get(symbol, (None, None, None))
    text = SYMBOL_TEXT.get(symbol, "")
    if combined is not None:
        if not combined(left, right):
            raise GovaluateError(stage.error_format % (shown(left), text))
    else:
        for check, value in ((left_check, left), (right_check, right)):
            if check is not None and not check(value):
                raise GovaluateError(stage.error_format % (shown(value), text))
    if right is _SHORT_CIRCUITED:
        right = None
    return _OPERATORS[symbol](left, right)


