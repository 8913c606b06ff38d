"""The subscripts of github.com/evilmonkeyinc/jsonpath v0.8.1 that select many elements: ranges `[a:b:c]`, unions
`[a,b]` and filters `[?(...)]` (token/range.go, union.go, filter.go), as Argo queries with them (no options).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workflows.local.lang.jsonpath_tokens import (
    Compiled,
    IndexToken,
    PathError,
    Token,
    invalid_argument,
    invalid_expression_empty,
    invalid_target,
    invalid_token,
    is_integer,
    kind,
    out_of_range,
    unexpected_result,
)


def _handle_next(root: Any, item: Any, for_each: bool, nxt: Sequence[Token]) -> tuple[Any, bool]:
    """handleNext of range and union: with a next token (not an index), its result, dropped on an error or nil."""
    if not for_each:
        return item, True
    try:
        value = nxt[0].apply(root, item, nxt[1:])
    except PathError:
        return None, False
    return value, value is not None


def _for_each(nxt: Sequence[Token]) -> bool:
    """A next index applies to the list selected; any other next token to each element."""
    return bool(nxt) and not isinstance(nxt[0], IndexToken)


class RangeToken(Token):
    """`[from:to:step]`; each bound an int, an ExpressionToken or None (absent)."""

    def __init__(self, start: int | Token | None, stop: int | Token | None, step: int | Token | None) -> None:
        self.start, self.stop, self.step = start, stop, step

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if current is None:
            raise invalid_target("range", "nil", "array", "slice")
        if not isinstance(current, list):
            raise invalid_target("range", kind(current), "array", "slice")
        length = len(current)
        start = 0
        if self.start is not None:
            start = self._bound(self._argument(root, current, self.start), length)
        stop = length
        if self.stop is not None:
            stop = self._bound(self._argument(root, current, self.stop), length)
        step = 1
        if self.step is not None:
            step = self._argument(root, current, self.step)
            if step == 0:
                raise out_of_range("range")
        for_each = _for_each(nxt)
        indices = range(stop - 1, start - 1, step) if step < 0 else range(start, stop, step)
        elements = []
        for i in indices:
            item, add = _handle_next(root, current[i], for_each, nxt)
            if add:
                elements.append(item)
        if not for_each and nxt:
            return nxt[0].apply(root, elements, nxt[1:])
        return elements

    @staticmethod
    def _bound(value: int, length: int) -> int:
        if value < 0:
            value += length
        return min(max(value, 0), length)

    def _argument(self, root: Any, current: Any, argument: int | Token) -> int:
        if isinstance(argument, Token):
            try:
                result = argument.apply(root, current, ())
            except PathError as err:
                raise invalid_token("range", err) from err
            if result is None:
                raise invalid_token("range", unexpected_result("nil", "int"))
            value = is_integer(result)
            if value is None:
                raise invalid_token("range", unexpected_result(kind(result), "int"))
            return value
        return argument


class UnionToken(Token):
    """`[a,b,...]`: keys (str), indices (int) or ExpressionTokens giving either, never both."""

    def __init__(self, arguments: Sequence[Any]) -> None:
        self.arguments = list(arguments)

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if not self.arguments:
            raise invalid_argument("union", "nil", "array", "slice")
        keys: list[str] = []
        indices: list[int] = []
        for arg in self.arguments:
            value = self._argument(root, current, arg)
            if isinstance(value, str):
                keys.append(value)
                if indices:
                    raise invalid_argument("union", "string", "int")
            else:
                indices.append(value)
                if keys:
                    raise invalid_argument("union", "int", "string")
        if keys:
            return self._by_key(root, current, keys, nxt)
        return self._by_index(root, current, indices, nxt)

    @staticmethod
    def _argument(root: Any, current: Any, argument: Any) -> str | int:
        if isinstance(argument, Token):
            try:
                argument = argument.apply(root, current, ())
            except PathError as err:
                raise invalid_token("union", err) from err
        if argument is None:
            raise invalid_argument("union", "nil", "int", "string")
        if isinstance(argument, str):
            return argument
        index = is_integer(argument)
        if index is None:
            raise invalid_argument("union", kind(argument), "int", "string")
        return index

    @staticmethod
    def _by_key(root: Any, current: Any, keys: list[str], nxt: Sequence[Token]) -> Any:
        if current is None:
            raise invalid_target("union", "nil", "map")
        if not isinstance(current, dict):
            raise invalid_target("union", kind(current), "map")
        for_each = _for_each(nxt)
        elements = []
        for key in keys:
            if key in current:  # a missing key is skipped (FailUnionOnInvalidIdentifier is off)
                item, add = _handle_next(root, current[key], for_each, nxt)
                if add:
                    elements.append(item)
        if not for_each and nxt:
            return nxt[0].apply(root, elements, nxt[1:])
        return elements

    @staticmethod
    def _by_index(root: Any, current: Any, indices: list[int], nxt: Sequence[Token]) -> Any:
        if current is None:
            raise invalid_target("union", "nil", "array", "slice")
        if not isinstance(current, list):
            raise invalid_target("union", kind(current), "array", "slice")
        for_each = _for_each(nxt)
        length = len(current)
        values = []
        for idx in indices:
            if idx < 0:
                idx += length
            if idx < 0 or idx >= length:
                continue  # out of range is skipped (FailUnionOnInvalidIdentifier is off)
            item, add = _handle_next(root, current[idx], for_each, nxt)
            if add:
                values.append(item)
        if not for_each and nxt:
            return nxt[0].apply(root, values, nxt[1:])
        return values


def _should_include(evaluation: Any) -> bool:
    if evaluation is None:
        return False
    if isinstance(evaluation, bool):
        return evaluation
    if isinstance(evaluation, list | dict):
        return len(evaluation) > 0
    if isinstance(evaluation, str):
        if len(evaluation) > 1 and (evaluation[0] == evaluation[-1] == "'" or evaluation[0] == evaluation[-1] == '"'):
            evaluation = evaluation[1:-1]
        return evaluation != ""
    if isinstance(evaluation, float):  # reflect's IsZero: all bits zero, so -0.0 is not zero
        return not (evaluation == 0 and math.copysign(1.0, evaluation) > 0)
    return bool(evaluation != 0)


class FilterToken(Token):
    """`[?(...)]`: the elements (a map's in key order) for which the script is truthy; a failing script is false."""

    def __init__(self, expression: str, compiled: Compiled) -> None:
        self.expression = expression
        self.compiled = compiled

    def apply(self, root: Any, current: Any, nxt: Sequence[Token]) -> Any:
        if self.expression == "":
            raise invalid_expression_empty()
        if current is None:
            raise invalid_target("filter", "nil", "array", "map", "slice")
        if isinstance(current, dict):
            candidates = [current[k] for k in sorted(current)]
        elif isinstance(current, list):
            candidates = list(current)
        else:
            raise invalid_target("filter", kind(current), "array", "map", "slice")
        elements = []
        for element in candidates:
            try:
                evaluation = self.compiled.evaluate(root, element)
            except PathError:
                evaluation = None
            if _should_include(evaluation):
                elements.append(element)
        if not nxt:
            return elements
        if isinstance(nxt[0], IndexToken):
            return nxt[0].apply(current, elements, nxt[1:])  # the library passes current as the root here
        results = []
        for element in elements:
            try:
                result = nxt[0].apply(root, element, nxt[1:])
            except PathError:
                result = None
            if result is not None:
                results.append(result)
        return results
