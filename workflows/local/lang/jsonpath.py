"""Argo's `jsonpath(json, path)` expression function (util/expr/env/env.go jsonPath): the JSON text unmarshalled
as Go's encoding/json does, then queried with github.com/evilmonkeyinc/jsonpath v0.8.1's Query, ported faithfully
(jsonpath_parse, jsonpath_tokens, jsonpath_subscripts, and jsonpath_script for its standard script engine).

    json_path('{"a": [1, 2]}', "$.a[1]")    # 2.0: numbers are float64, as json.Unmarshal into interface{} gives
"""

from __future__ import annotations

from typing import Any

from workflows.local.lang.errors import ExprRuntimeError
from workflows.local.lang.jsonpath_parse import parse, tokenize
from workflows.local.lang.jsonpath_script import ScriptEngine
from workflows.local.lang.jsonpath_tokens import INVALID_SELECTOR, PathError, Token, unmarshal


def _invalid_selector(selector: str, reason: PathError) -> PathError:
    """getInvalidJSONPathSelectorWithReason."""
    if INVALID_SELECTOR in reason.wraps:
        return reason
    return PathError(f"{INVALID_SELECTOR} '{selector}' {reason}", INVALID_SELECTOR)


def compile_selector(selector: str) -> list[Token]:
    """jsonpath.Compile: the selector's tokens; PathError where the library refuses it."""
    engine = ScriptEngine()
    try:
        return [parse(text, engine) for text in tokenize(selector)]
    except PathError as err:
        raise _invalid_selector(selector, err) from err


def query(selector: str, data: Any) -> Any:
    """jsonpath.Query(selector, data) (no options); PathError with the library's message where it fails."""
    tokens = compile_selector(selector)
    return tokens[0].apply(data, data, tokens[1:])


def json_path(json_str: Any, path: Any) -> Any:
    """env.go jsonPath: each error panics, which expr-lang's VM turns into the expression's runtime error."""
    try:
        document = unmarshal(json_str)
    except ValueError as err:
        raise ExprRuntimeError(str(err)) from err
    try:
        return query(path, document)
    except PathError as err:
        raise ExprRuntimeError(str(err)) from err
