"""`when` as Argo v4.1.2 evaluates it (workflow/controller/steps.go shouldExecute) with
github.com/Knetic/govaluate at 7625b7f8c03d: after `{{...}}` substitution, the text is tokenized, every variable
token is turned into a string (so `foo != bar` compares two words), and the expression is planned and evaluated
with govaluate's own (unusual) precedence and type rules. The result must be a bool.

A quoted string that govaluate would read as a date (it becomes a Unix time there) is refused: `Unsupported`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from workflows.local.lang.errors import GovaluateError, Unsupported
from workflows.local.lang.exprlex import is_space
from workflows.local.lang.goregexp import RegexpError
from workflows.local.lang.gotypes import parse_float
from workflows.local.lang.govaluate_stages import (
    COMPARATORS,
    LOGICALS,
    MODIFIERS,
    PREFIXES,
    TERNARIES,
    GoPattern,
    Token,
    evaluate,
    plan,
    shown,
)

# lexerState.go: which token kind may follow which, and which may end an expression
_VALUES = ["NUMERIC", "BOOLEAN", "VARIABLE", "PATTERN", "FUNCTION", "ACCESSOR", "STRING", "TIME", "CLAUSE"]
_AFTER_VALUE = ["MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"]
NEXT: dict[str, tuple[bool, list[str]]] = {
    "UNKNOWN": (False, ["PREFIX", *_VALUES]),
    "CLAUSE": (False, ["PREFIX", *_VALUES, "CLAUSE_CLOSE"]),
    "CLAUSE_CLOSE": (True, ["COMPARATOR", "MODIFIER", "NUMERIC", "BOOLEAN", "VARIABLE", "STRING", "PATTERN", "TIME",
                            "CLAUSE", "CLAUSE_CLOSE", "LOGICALOP", "TERNARY", "SEPARATOR"]),
    "NUMERIC": (True, _AFTER_VALUE), "BOOLEAN": (True, _AFTER_VALUE), "STRING": (True, _AFTER_VALUE),
    "TIME": (True, ["MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "SEPARATOR"]),
    "PATTERN": (True, ["MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "SEPARATOR"]),
    "VARIABLE": (True, _AFTER_VALUE),
    "MODIFIER": (False, ["PREFIX", "NUMERIC", "VARIABLE", "FUNCTION", "ACCESSOR", "STRING", "BOOLEAN", "CLAUSE",
                         "CLAUSE_CLOSE"]),
    "COMPARATOR": (False, ["PREFIX", *_VALUES, "CLAUSE_CLOSE"]),
    "LOGICALOP": (False, ["PREFIX", "NUMERIC", "BOOLEAN", "VARIABLE", "FUNCTION", "ACCESSOR", "STRING", "TIME",
                          "CLAUSE", "CLAUSE_CLOSE"]),
    "PREFIX": (False, ["NUMERIC", "BOOLEAN", "VARIABLE", "FUNCTION", "ACCESSOR", "CLAUSE", "CLAUSE_CLOSE"]),
    "TERNARY": (False, ["PREFIX", "NUMERIC", "BOOLEAN", "STRING", "TIME", "VARIABLE", "FUNCTION", "ACCESSOR",
                        "CLAUSE", "SEPARATOR"]),
    "FUNCTION": (False, ["CLAUSE"]),
    "ACCESSOR": (True, ["CLAUSE", "MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"]),
    "SEPARATOR": (False, ["PREFIX", "NUMERIC", "BOOLEAN", "STRING", "TIME", "VARIABLE", "FUNCTION", "ACCESSOR",
                          "CLAUSE"]),
}
# govaluate parses a quoted string as a time when one of its layouts fits; these are the shapes they start with
_TIME_LIKE = re.compile(r"\d{4}-\d\d-\d\d|\d{1,2}:\d\d[AP]M$|(?i:mon|tue|wed|thu|fri|sat|sun)\w* ")


def _digit(c: str) -> bool:
    return unicodedata.category(c) == "Nd"


def _letter(c: str) -> bool:
    return unicodedata.category(c).startswith("L")


class _Stream:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def can_read(self) -> bool:
        return self.pos < len(self.text)

    def read(self) -> str:
        if self.pos >= len(self.text):
            raise GovaluateError("runtime error: index out of range (a trailing backslash)")
        c = self.text[self.pos]
        self.pos += 1
        return c

    def until_false(self, include_space: bool, break_space: bool, condition: Callable[[str], bool]) -> tuple[str, bool]:
        """readUntilFalse (backslash escapes anything)."""
        out: list[str] = []
        while self.can_read():
            c = self.read()
            if c == "\\":
                out.append(self.read())
                continue
            if is_space(c):
                if break_space and out:
                    return "".join(out), True
                if not include_space:
                    continue
            if condition(c):
                out.append(c)
            else:
                self.pos -= 1
                return "".join(out), True
        return "".join(out), False

    def token_until_false(self, condition: Callable[[str], bool]) -> str:
        self.pos -= 1
        return self.until_false(False, True, condition)[0]


def _not_alnum(c: str) -> bool:
    return not (_digit(c) or _letter(c) or c in "()[]'\"")


def _read_token(stream: _Stream, state: str) -> Token | None:  # noqa: C901 - one branch per token kind, as parsing.go
    while stream.can_read():
        c = stream.read()
        if is_space(c):
            continue
        if _digit(c) or c == ".":
            if stream.can_read() and c == "0":
                c = stream.read()
                if stream.can_read() and c == "x":
                    text, _ = stream.until_false(False, True, lambda ch: _digit(ch) or ch.lower() in "abcdef")
                    if not text or not all(ch in "0123456789abcdefABCDEF" for ch in text) or int(text, 16) >= 2**64:
                        raise GovaluateError(f"Unable to parse hex value '{text}' to uint64\n")
                    return Token("NUMERIC", float(int(text, 16)))
                stream.pos -= 1
            text = stream.token_until_false(lambda ch: _digit(ch) or ch == ".")
            try:
                if not text.isascii():
                    raise ValueError(text)
                return Token("NUMERIC", parse_float(text))
            except ValueError as err:
                raise GovaluateError(f"Unable to parse numeric value '{text}' to float64\n") from err
        if c == ",":
            return Token("SEPARATOR", ",")
        if c == "[":
            text, completed = stream.until_false(True, False, lambda ch: ch != "]")
            if not completed:
                raise GovaluateError("Unclosed parameter bracket")
            stream.pos += 1
            return Token("VARIABLE", text)
        if _letter(c):
            text = stream.token_until_false(lambda ch: _letter(ch) or _digit(ch) or ch in "_.")
            if text in ("true", "false"):
                return Token("BOOLEAN", text == "true")
            if text in ("in", "IN"):
                return Token("COMPARATOR", "in")
            if text.find(".") > 0:
                if text.endswith("."):
                    raise GovaluateError(f"Hanging accessor on token '{text}'")
                parts = text.split(".")
                for part in parts[1:]:
                    first = part[:1]
                    if first.upper() != first:
                        raise GovaluateError(f"Unable to access unexported field '{part}' in token '{text}'")
                return Token("ACCESSOR", parts)
            return Token("VARIABLE", text)
        if c in "'\"":
            text, completed = stream.until_false(True, False, lambda ch: ch not in "'\"")
            if not completed:
                raise GovaluateError("Unclosed string literal")
            stream.pos += 1
            if _TIME_LIKE.match(text):
                raise Unsupported(f"the string '{text}' in a `when`, which govaluate may read as a date")
            return Token("STRING", text)
        if c == "(":
            return Token("CLAUSE", "(")
        if c == ")":
            return Token("CLAUSE_CLOSE", ")")
        text = stream.token_until_false(_not_alnum)
        if "PREFIX" in NEXT[state][1] and text in PREFIXES:
            return Token("PREFIX", text)
        for kind, table in (("MODIFIER", MODIFIERS), ("LOGICALOP", LOGICALS), ("COMPARATOR", COMPARATORS),
                            ("TERNARY", TERNARIES)):
            if text in table:
                return Token(kind, text)
        raise GovaluateError(f"Invalid token: '{text}'")
    return None


def tokenize(text: str) -> list[Token]:
    """parseTokens, then checkBalance."""
    stream, tokens, state = _Stream(text), [], "UNKNOWN"
    while stream.can_read():
        token = _read_token(stream, state)
        if token is None:
            break
        tokens.append(token)
        state = token.kind
    if sum(t.kind == "CLAUSE" for t in tokens) != sum(t.kind == "CLAUSE_CLOSE" for t in tokens):
        raise GovaluateError("Unbalanced parenthesis")
    return tokens


def check_syntax(tokens: list[Token]) -> None:
    """checkExpressionSyntax."""
    state, last = "UNKNOWN", Token("UNKNOWN", None)
    for token in tokens:
        if token.kind not in NEXT[state][1]:
            if last.kind == "VARIABLE" and token.kind == "CLAUSE":
                raise GovaluateError(f"Undefined function {last.value}")
            raise GovaluateError(f"Cannot transition token types from {state} [{shown(last.value)}] to "
                                 f"{token.kind} [{shown(token.value)}]")
        state, last = token.kind, token
    if not NEXT[state][0]:
        raise GovaluateError("Unexpected end of expression")


def _compile_patterns(tokens: list[Token]) -> None:
    """optimizeTokens: a string right of =~ or !~ is compiled once, as a pattern."""
    for i, token in enumerate(tokens):
        if token.kind == "COMPARATOR" and token.value in ("=~", "!~") and i + 1 < len(tokens) \
                and tokens[i + 1].kind == "STRING":
            try:
                tokens[i + 1] = Token("PATTERN", GoPattern(tokens[i + 1].value))
            except RegexpError as err:
                raise GovaluateError(str(err)) from err


def parse(when: str) -> Any:
    """The plan Argo evaluates for a substituted `when`: NewEvaluableExpression, variables made strings, then
    NewEvaluableExpressionFromTokens. GovaluateError where either step refuses it."""
    tokens = tokenize(when)
    check_syntax(tokens)
    _compile_patterns(tokens)
    tokens = [Token("STRING", t.value) if t.kind == "VARIABLE" else t for t in tokens]
    check_syntax(tokens)
    _compile_patterns(tokens)
    return plan(tokens)


def should_execute(when: str) -> bool:
    """shouldExecute(when): an empty `when` runs; otherwise the expression must give a bool."""
    if when == "":
        return True
    result = evaluate(parse(when))
    if not isinstance(result, bool):
        raise GovaluateError(f"Expected boolean evaluation for '{when}'. Got {shown(result)}")
    return result


