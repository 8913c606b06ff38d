"""github.com/evilmonkeyinc/jsonpath v0.8.1's selector parser (token/token.go): `tokenize` splits a selector into
token strings, `parse` makes each a token; scripts are compiled by the engine given (script/standard's)."""

from __future__ import annotations

from typing import Any, Protocol

from workflows.local.lang.exprbuiltins import trim_space
from workflows.local.lang.gotypes import parse_int
from workflows.local.lang.jsonpath_subscripts import FilterToken, RangeToken, UnionToken
from workflows.local.lang.jsonpath_tokens import (
    Compiled,
    CurrentToken,
    ExpressionToken,
    IndexToken,
    KeyToken,
    LengthToken,
    PathError,
    RecursiveToken,
    RootToken,
    ScriptToken,
    Token,
    WildcardToken,
    invalid_expression,
    invalid_expression_format,
    invalid_token_format,
    is_integer,
    unexpected_token,
)


class Engine(Protocol):
    """script.Engine."""

    def compile(self, expression: str) -> Compiled: ...


def tokenize(selector: str) -> list[str]:
    """token.Tokenize."""
    if selector == "":
        raise unexpected_token("", 0)
    tokens: list[str] = []
    text = ""
    quotes = open_script = close_script = open_subscript = close_subscript = 0
    raw = selector.encode()
    for idx, rne in enumerate(selector):
        if text == "":
            quotes = open_script = close_script = 0
        if rne == "'":
            quotes += 1
        elif rne == "(":
            open_script += 1
        elif rne == ")":
            close_script += 1
        elif rne == "[":
            open_subscript += 1
        elif rne == "]":
            close_subscript += 1
        text += rne
        if idx == 0:
            if text not in ("$", "@"):
                raise unexpected_token(rne, 0)
            if len(raw) > 1 and raw[1] not in b".[":
                raise unexpected_token(chr(raw[1]), 1)  # Go's string(byte): the byte read as Latin-1
            tokens.append(text)
            text = ""
            continue
        if text == ".":
            continue
        if text == "..":
            tokens.append(text)
            text = ""
            continue
        if rne == "[":
            if text in ("[", ".["):
                continue
            if text.count("[") > 1:
                continue
            tokens.append(text[1:-1] if text[0] == "." else text[:-1])
            text = "["
            continue
        if "[" in text:
            if quotes % 2 == 1 or open_script != close_script:
                continue
            if rne == "]" and open_subscript == close_subscript:
                tokens.append(text[1:] if text[0] == "." else text)
                text = ""
                continue
        elif rne == ".":
            if quotes % 2 == 1 or open_script != close_script:
                continue
            tokens.append(text[1:-1] if text[0] == "." else text[:-1])
            text = "."
            continue
    if text:
        tokens.append(text[1:] if text[0] == "." else text)
    return tokens


def _is_script(text: str) -> bool:
    return len(text) > 2 and text.startswith("(") and text.endswith(")")


def _is_key(text: str) -> bool:
    quoted = (text.startswith("'") and text.endswith("'")) or (text.startswith('"') and text.endswith('"'))
    return len(text) > 1 and quoted


def _int(text: str) -> int | None:
    try:
        return parse_int(text, 10)
    except ValueError:
        return None


def _expression(text: str, engine: Engine) -> ExpressionToken:
    try:
        return ExpressionToken(text[1:-1], engine.compile(text[1:-1]))
    except PathError as err:
        raise invalid_expression(err) from err


def parse(token: str, engine: Engine) -> Token:
    """token.Parse (without options)."""
    token = trim_space(token)
    if token == "":
        raise PathError("invalid token. token string is empty", "invalid token")
    simple = {"$": RootToken, "@": CurrentToken, "*": WildcardToken, "..": RecursiveToken}
    if token in simple:
        return simple[token]()
    if not token.startswith("["):
        return LengthToken() if token == "length" else KeyToken(token)
    if not token.endswith("]"):
        raise invalid_token_format(token)
    subscript = trim_space(token[1:-1])
    if subscript == "":
        raise invalid_token_format(token)
    if subscript == "*":
        return WildcardToken()
    if subscript.startswith("?"):
        if not subscript.startswith("?(") or not subscript.endswith(")"):
            raise invalid_token_format(token)
        expression = trim_space(subscript[2:-1])
        return FilterToken(expression, engine.compile(expression))
    args = _subscript_args(subscript, token)
    if len(args) == 1:
        arg = args[0]
        if isinstance(arg, str):
            if _is_key(arg):
                return KeyToken(arg[1:-1])
            if _is_script(arg):
                return ScriptToken(arg[1:-1], engine.compile(arg[1:-1]))
        elif (index := is_integer(arg)) is not None:
            return IndexToken(index)
        raise invalid_token_format(token)
    return _union_or_range(args, token, engine)


def _subscript_args(subscript: str, token: str) -> list[Any]:
    """The loop of token.Parse splitting a subscript into keys, scripts, integers and the separators ':' and ','."""
    opened = closed = 0
    single = double = False
    args: list[Any] = []
    buffer = ""
    for idx, rne in enumerate(subscript):
        buffer += rne
        if rne == " ":
            if not (single or double) and opened == closed:
                buffer = trim_space(buffer)
        elif rne == "(":
            if single or double:
                continue
            opened += 1
        elif rne == ")":
            closed += 1
            if opened == closed:
                if not _is_script(buffer):
                    raise invalid_expression_format(buffer)
                args.append(buffer)
                buffer = ""
        elif rne in "'\"":
            if (double if rne == "'" else single) or opened != closed:
                continue
            if len(buffer) > 1 and buffer[-2] == "\\":
                buffer = buffer[:-2] + rne
                continue
            if rne == "'":
                single = not single
                now_open = single
            else:
                double = not double
                now_open = double
            if now_open:
                if buffer != rne:
                    raise invalid_token_format(token)
            else:
                if not _is_key(buffer):
                    raise invalid_token_format(token)
                args.append(buffer)
                buffer = ""
        elif rne == ":":
            if single or double or opened != closed:
                continue
            arg = buffer[:-1]
            if arg != "":
                if (num := _int(arg)) is None:
                    raise invalid_token_format(token)
                args.append(num)
            elif idx == 0:
                args.append(None)
            args.append(":")
            buffer = ""
        elif rne == ",":
            if single or double or opened != closed:
                continue
            arg = buffer[:-1]
            if arg != "":
                num = _int(arg)
                args.append(arg if num is None else num)
            args.append(",")
            buffer = ""
    if buffer != "":
        num = _int(buffer)
        args.append(buffer if num is None else num)
    return args


def _union_or_range(args: list[Any], token: str, engine: Engine) -> Token:
    colons = commas = 0
    last_was_colon = False
    just_args: list[Any] = []
    for arg in args:
        if arg == ":":
            colons += 1
            if last_was_colon:
                just_args.append(None)
            last_was_colon = True
            continue
        if arg == ",":
            commas += 1
        else:
            just_args.append(arg)
        last_was_colon = False
    args = just_args
    if colons > 0 and commas > 0:
        raise invalid_token_format(token)
    if commas > 0:
        if commas >= len(args):
            raise invalid_token_format(token)
        union: list[str | int | Token] = []
        for arg in args:
            if isinstance(arg, str) and _is_script(arg):
                union.append(_expression(arg, engine))
            elif isinstance(arg, str) and _is_key(arg):
                union.append(arg[1:-1])
            elif not isinstance(arg, str) and (index := is_integer(arg)) is not None:
                union.append(index)
            else:
                raise invalid_token_format(token)
        return UnionToken(union)
    if colons > 0:
        if colons > 2:
            raise invalid_token_format(token)
        if colons == 1 and len(args) == 1:
            args.append(None)
        bounds: list[int | Token | None] = []
        for arg in (args[0], args[1], args[2] if len(args) > 2 else None):
            if isinstance(arg, str):
                if not _is_script(arg):
                    raise invalid_expression_format(arg)
                bounds.append(_expression(arg, engine))
            else:
                bounds.append(arg)
        return RangeToken(bounds[0], bounds[1], bounds[2])
    raise invalid_token_format(token)
