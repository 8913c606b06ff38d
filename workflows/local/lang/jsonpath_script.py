"""The script engine of github.com/evilmonkeyinc/jsonpath v0.8.1 (script/standard): the `(...)` and `?(...)` of a
selector. An expression is split at the first unquoted operator of the lowest precedence still to try; operands are
selectors (`@.a`, `$.b`), JSON arrays and objects, or text that each operator reads as a number, a boolean or a
string (a selector's string result is quoted 'so', and compared as such).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from workflows.local.lang.errors import ExprRuntimeError
from workflows.local.lang.exprbuiltins import trim_space
from workflows.local.lang.goregexp import RegexpError, compile_go
from workflows.local.lang.gotypes import Int64, fmt_v, parse_float, parse_int
from workflows.local.lang.jsonpath_parse import parse, tokenize
from workflows.local.lang.jsonpath_tokens import INVALID_EXPRESSION, PathError, Token, unmarshal

# engine.go defaultTokens: tried in this order, so the first splits the expression at the top of the tree
OPERATORS = ("||", "&&", "==", "!=", "<=", ">=", "<", ">", "=~", "!", "+", "-", "**", "*", "/", "%",
             "not in", "in", "@", "$")

# errors.go
INVALID_ARGUMENT = "invalid argument"
ARGUMENT_NIL = f"{INVALID_ARGUMENT}. is nil"


def _invalid(what: str) -> PathError:
    return PathError(f"{INVALID_ARGUMENT}. {what}", INVALID_ARGUMENT)


Params = dict[str, Any]


class Operator:
    """A node of a compiled script: an operator and its arguments (operators, parsed JSON or text)."""

    def __init__(self, name: str, arg1: Any, arg2: Any) -> None:
        self.name, self.arg1, self.arg2 = name, arg1, arg2

    def evaluate(self, params: Params) -> Any:
        return _EVALUATE[self.name](self.arg1, self.arg2, params)


class Selector(Operator):
    """selectorOperator: a selector from @ or $; a string result comes back 'quoted'."""

    def __init__(self, selector: str, tokens: list[Token]) -> None:
        super().__init__("selector", None, None)
        self.selector, self.tokens = selector, tokens

    def evaluate(self, params: Params) -> Any:
        value = self.tokens[0].apply(params.get("$"), params.get("@"), self.tokens[1:])  # a missing key is nil
        if isinstance(value, str):
            if len(value) > 1 and value.startswith("'") and value.endswith("'"):
                return value
            return f"'{value}'"
        return value


class CompiledExpression:
    """compiledExpression."""

    def __init__(self, expression: str, root: Operator | None) -> None:
        self.expression, self.root = expression, root

    def evaluate(self, root: Any, current: Any) -> Any:
        expression = self.expression
        if expression == "":
            raise PathError(f"{INVALID_EXPRESSION}. is empty", INVALID_EXPRESSION)
        params: Params = {"$": root, "@": current, "nil": None, "null": None}
        if self.root is None:
            if expression in params:
                return params[expression]
            try:
                return get_number(expression, params)
            except PathError:
                pass
            try:
                return get_boolean(expression, params)
            except PathError:
                return expression
        return self.root.evaluate(params)


class ScriptEngine:
    """standard.ScriptEngine."""

    def compile(self, expression: str) -> CompiledExpression:
        return CompiledExpression(expression, self._build(expression, OPERATORS))

    def _build(self, expression: str, tokens: tuple[str, ...]) -> Operator | None:
        """buildOperators."""
        next_token = tokens[0]
        expression = trim_space(expression)
        if expression == "":
            return None
        if expression.startswith("(") and expression.endswith(")"):
            expression = trim_space(expression[1:-1])
            tokens = ("", *OPERATORS)

        def fall_through() -> Operator | None:
            return None if len(tokens) == 1 else self._build(expression, tokens[1:])

        idx = find_unquoted_operator(expression, next_token)
        if idx < 0:
            return fall_through()
        right_text = trim_space(expression[idx + len(next_token):])
        if right_text == "" and next_token not in ("$", "@"):
            return fall_through()
        right = self._argument(right_text, tokens)
        left_text = trim_space(expression[:idx])
        if left_text == "" and next_token not in ("$", "@", "!"):
            return fall_through()
        left = self._argument(left_text, tokens)
        if next_token in ("@", "$"):
            if left is not None:
                return fall_through()
            split = tokenize(expression)
            return Selector(expression, [parse(text, self) for text in split])
        if next_token == "!":
            if left is not None:
                return fall_through()
            return Operator("!", right, None)
        if next_token in _EVALUATE:
            return Operator(next_token, left, right)
        raise PathError("unsupported operator")

    def _argument(self, argument: str, tokens: tuple[str, ...]) -> Any:
        """parseArgument: an operator, a JSON array or object, the text, or None for nothing."""
        op = self._build(argument, tokens)
        if op is not None:
            return op
        argument = trim_space(argument)
        if argument == "":
            return None
        if (argument.startswith("[") and argument.endswith("]")) or \
                (argument.startswith("{") and argument.endswith("}")):
            try:
                return unmarshal(argument, list if argument[0] == "[" else dict)
            except ValueError:
                return argument
        return argument


def find_unquoted_operator(source: str, operator: str) -> int:
    """findUnquotedOperators: where the operator first ends outside quotes and brackets, or -1."""
    single = double = False
    square_open = square_close = round_open = round_close = 0
    for idx, rne in enumerate(source):
        in_square, in_round = square_open > square_close, round_open > round_close
        if rne == "(" and not (single or double or in_square):
            round_open += 1
        elif rne == ")" and not (single or double or in_square):
            round_close += 1
        elif rne == "[" and not (single or double or in_round):
            square_open += 1
        elif rne == "]" and not (single or double or in_round):
            square_close += 1
        elif rne == "'" and not (double or in_square or in_round):
            single = not single
        elif rne == '"' and not (single or in_square or in_round):
            double = not double
        elif rne in "()[]'\"":
            continue
        if single or double or square_open > square_close or round_open > round_close:
            continue
        if len(operator) > idx + 1:
            continue
        start = idx + 1 - len(operator)
        if source[start:idx + 1] == operator:
            return start
    return -1


# operators.go: how an operator reads its arguments


def _resolve(argument: Any, params: Params) -> Any:
    if isinstance(argument, Operator):
        argument = argument.evaluate(params)
    if isinstance(argument, str) and argument in params:
        argument = params[argument]
    return argument


def get_integer(argument: Any, params: Params) -> int:
    if argument is None:
        raise PathError(ARGUMENT_NIL, INVALID_ARGUMENT)
    text = fmt_v(_resolve(argument, params))
    try:
        return parse_int(text, 10)
    except ValueError as err:
        raise _invalid("expected integer") from err


def get_number(argument: Any, params: Params) -> float:
    if argument is None:
        raise PathError(ARGUMENT_NIL, INVALID_ARGUMENT)
    text = fmt_v(_resolve(argument, params))
    try:
        return parse_float(text)
    except ValueError as err:
        raise _invalid("expected number") from err


_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def get_boolean(argument: Any, params: Params) -> bool:
    if argument is None:
        return False
    argument = _resolve(argument, params)
    if argument is None:
        return False
    text = fmt_v(argument)
    if text not in _BOOLS:  # strconv.ParseBool
        raise _invalid("expected boolean")
    return _BOOLS[text]


def get_string(argument: Any, params: Params) -> str:
    if argument is None:
        raise PathError(ARGUMENT_NIL, INVALID_ARGUMENT)
    if isinstance(argument, Operator):
        argument = argument.evaluate(params)
    if isinstance(argument, str):
        text = argument
        if text in params:
            argument = params[text]
            if isinstance(argument, str):
                text = argument
                if len(text) > 1:
                    if text.startswith("'") and text.endswith("'"):
                        return text
                    if text.startswith('"') and text.endswith('"'):
                        text = text[1:-1]
                return f"'{text}'"
        else:
            if len(text) > 1:
                if text.startswith("'") and text.endswith("'"):
                    return text
                if text.startswith('"') and text.endswith('"'):
                    return f"'{text[1:-1]}'"
            return text
    return fmt_v(argument)


def get_elements(argument: Any, params: Params) -> list[Any]:
    if argument is None:
        raise PathError(ARGUMENT_NIL, INVALID_ARGUMENT)
    if isinstance(argument, Operator):
        argument = argument.evaluate(params)
    if isinstance(argument, str):
        if argument in params:
            argument = params[argument]
        elif (argument.startswith("{") and argument.endswith("}")) or \
                (argument.startswith("[") and argument.endswith("]")):
            try:
                argument = unmarshal(argument, dict if argument[0] == "{" else list)
            except ValueError as err:
                raise PathError(INVALID_ARGUMENT, INVALID_ARGUMENT) from err
    if argument is None:
        raise PathError(ARGUMENT_NIL, INVALID_ARGUMENT)
    if isinstance(argument, list):
        return list(argument)
    if isinstance(argument, dict):
        return list(argument.values())
    raise _invalid("expected array, map, or slice")


# the operators (logic_operators.go, math_operators.go, complex_operators.go)


def _both(get: Callable[[Any, Params], Any], fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any, Params], Any]:
    """Both arguments read (the first's error first, no short-circuit), then combined."""
    return lambda a, b, params: fn(get(a, params), get(b, params))


def _equals(a: Any, b: Any, params: Params) -> bool:
    try:
        first = get_number(a, params)
        second = get_number(b, params)
    except PathError:
        return get_string(a, params) == get_string(b, params)
    return first == second


def _regex(a: Any, b: Any, params: Params) -> bool:
    text = get_string(a, params)
    if len(text) > 1 and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    pattern = get_string(b, params)
    if len(pattern) > 1 and pattern.startswith("'") and pattern.endswith("'"):
        pattern = pattern[1:-1]
    try:
        regex = compile_go(pattern)
    except RegexpError as err:
        raise _invalid("expected a valid regexp") from err
    return regex.search(text) is not None


def _in(a: Any, b: Any, params: Params) -> bool:
    item: Any = a
    for get in (get_number, get_string, get_boolean):
        try:
            item = get(a, params)
            break
        except PathError:
            continue
    # Go's == on two interfaces: the same dynamic type and value (item is a float64, a string or a bool)
    return any(type(element) is type(item) and element == item for element in get_elements(b, params))


def _divide(x: float, y: float) -> float:
    if y != 0:
        return x / y
    if x == 0 or math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x) * math.copysign(1.0, y)


def _modulus(x: int, y: int) -> int:
    if y == 0:  # a Go runtime panic: nothing in the library recovers it, expr-lang's VM does
        raise ExprRuntimeError("runtime error: integer divide by zero")
    remainder = abs(x) % abs(y)
    return Int64(-remainder if x < 0 else remainder)


def _power(x: float, y: float) -> float:
    """math.Pow: infinities and NaN where Python raises."""
    try:
        return math.pow(x, y)
    except OverflowError:
        odd = y == math.trunc(y) and math.fmod(y, 2) != 0
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        if x == 0:  # y < 0: Pow(±0, y) is ±Inf for an odd integer y, +Inf otherwise
            odd = y == math.trunc(y) and math.fmod(y, 2) != 0
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


_EVALUATE: dict[str, Callable[[Any, Any, Params], Any]] = {
    "||": _both(get_boolean, lambda x, y: x or y),
    "&&": _both(get_boolean, lambda x, y: x and y),
    "==": _equals,
    "!=": lambda a, b, params: not _equals(a, b, params),
    "<=": _both(get_number, lambda x, y: x <= y),
    ">=": _both(get_number, lambda x, y: x >= y),
    "<": _both(get_number, lambda x, y: x < y),
    ">": _both(get_number, lambda x, y: x > y),
    "=~": _regex,
    "!": lambda a, _b, params: not get_boolean(a, params),
    "+": _both(get_number, lambda x, y: x + y),
    "-": _both(get_number, lambda x, y: x - y),
    "**": _both(get_number, _power),
    "*": _both(get_number, lambda x, y: x * y),
    "/": _both(get_number, _divide),
    "%": _both(get_integer, _modulus),
    "not in": lambda a, b, params: not _in(a, b, params),
    "in": _in,
}
