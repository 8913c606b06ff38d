"""Argo's small languages, shared by the linter and the local runner.

- `{{...}}` variables in strings (`find_variables`, `substitute`);
- expressions: `when` (govaluate: `==`, `!=`, `<`, `>`, `&&`, `||`, `!`, `=~`, parentheses, numbers, strings,
  true/false), retryStrategy `expression` (expr: `asInt(lastRetry.exitCode) == 3`, `and`/`or`/`not`);
- `depends` (`A && (B.Failed || !C.Succeeded)`, task names may contain `-`), and `dependencies` lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[str], "str | None"]  # a variable's value, or None when it does not resolve
VARIABLE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
DEPENDS_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message quotes it."""


class UnresolvedVariable(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unresolved variable {{{{{self.name}}}}}"


def find_variables(text: str) -> list[str]:
    """The names inside every `{{...}}` of a string, in order."""
    return [m.group(1) for m in VARIABLE.finditer(text)]


def substitute(text: str, lookup: Lookup) -> str:
    """Replace each `{{name}}` by `lookup(name)`; a None answer raises UnresolvedVariable naming it."""

    def one(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None:
            raise UnresolvedVariable(match.group(1))
        return value

    return VARIABLE.sub(one, text)


# --- expressions -------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>&&|\|\||==|!=|<=|>=|=~|!~|[<>!(),])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
# In `depends`, task names may contain '-' and start with a digit.
_DEPENDS_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\||[!()])|(?P<name>[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z]+)?))")
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}
_BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "=~": 3, "!~": 3, "<": 4, "<=": 4, ">": 4, ">=": 4}


@dataclass(frozen=True)
class _Tok:
    kind: str  # number | string | op | name | end
    text: str
    shown: str = ""  # the source text, when `text` was rewritten (task names in depends)


def _tokenize(text: str, pattern: re.Pattern[str], shown: str | None = None) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = pattern.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot parse {shown or text!r} at {text[pos:].strip()!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value in _WORD_OPS:
            kind, value = "op", _WORD_OPS[value]
        tokens.append(_Tok(kind, value))
        pos = m.end()
    tokens.append(_Tok("end", ""))
    return tokens


class _Parser:
    """Precedence climbing over tokens into a tiny tree of tuples."""

    def __init__(self, text: str, tokens: list[_Tok]):
        self.text, self.tokens, self.i = text, tokens, 0

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, why: str) -> ExpressionError:
        return ExpressionError(f"cannot parse {self.text!r}: {why}")

    def parse(self) -> tuple[Any, ...]:
        tree = self.binary(1)
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.peek().shown or self.peek().text!r}")
        return tree

    def binary(self, level: int) -> tuple[Any, ...]:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _BINARY.get(tok.text) if tok.kind == "op" else None
            if prec is None or prec < level:
                return left
            self.take()
            left = ("bin", tok.text, left, self.binary(prec + 1))

    def unary(self) -> tuple[Any, ...]:
        tok = self.take()
        if tok.kind == "op" and tok.text == "!":
            return ("not", self.unary())
        if tok.kind == "op" and tok.text == "(":
            inner = self.binary(1)
            if self.take().text != ")":
                raise self.fail("missing ')'")
            return inner
        if tok.kind == "number":
            return ("lit", float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text))
        if tok.kind == "string":
            return ("lit", _unquote(tok.text))
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return ("lit", tok.text == "true")
            if self.peek().text == "(":
                self.take()
                args = []
                while self.peek().text != ")":
                    args.append(self.binary(1))
                    if self.peek().text == ",":
                        self.take()
                    elif self.peek().text != ")":
                        raise self.fail(f"expected ',' or ')' in the arguments of {tok.text}()")
                self.take()
                return ("call", tok.text, args)
            return ("var", tok.text)
        raise self.fail("unexpected end" if tok.kind == "end" else f"unexpected {tok.shown or tok.text!r}")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _as_number(value: Any, text: str) -> float:
    if isinstance(value, bool):
        raise ExpressionError(f"{text!r}: {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ExpressionError(f"{text!r}: {value!r} is not a number") from err


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": lambda v: int(float(v)),
    "asFloat": float,
    "int": lambda v: int(float(v)),
    "float": float,
    "string": str,
    "len": len,
}


def parse(text: str, shown: str | None = None) -> tuple[Any, ...]:
    """The expression's tree; errors quote `shown` (e.g. the text before substitution) when given."""
    return _Parser(shown or text, _tokenize(text, _TOKEN, shown)).parse()


def evaluate(text: str, variables: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a `when` or retry expression. Names resolve from `variables` (dotted names as one key, or
    through nested mappings); an unknown name is an error that names it, as in govaluate."""
    return _eval(parse(text), variables or {}, text)


def evaluate_bool(text: str, variables: Mapping[str, Any] | None = None) -> bool:
    result = evaluate(text, variables)
    if not isinstance(result, bool):
        raise ExpressionError(f"{text!r} evaluates to {result!r}, not true or false")
    return result


def _lookup(name: str, variables: Mapping[str, Any], text: str) -> Any:
    if name in variables:
        return variables[name]
    value: Any = variables
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ExpressionError(f"{text!r}: unknown name {name!r} (quote strings: '{name}')")
        value = value[part]
    return value


def _eval(node: tuple[Any, ...], variables: Mapping[str, Any], text: str) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        return _lookup(node[1], variables, text)
    if kind == "call":
        fn = _FUNCTIONS.get(node[1])
        if fn is None:
            raise ExpressionError(f"{text!r}: unknown function {node[1]}() (known: {', '.join(sorted(_FUNCTIONS))})")
        args = [_eval(a, variables, text) for a in node[2]]
        try:
            return fn(*args)
        except (TypeError, ValueError) as err:
            raise ExpressionError(f"{text!r}: {node[1]}({', '.join(map(repr, args))}) failed: {err}") from err
    if kind == "not":
        value = _eval(node[1], variables, text)
        if not isinstance(value, bool):
            raise ExpressionError(f"{text!r}: '!' needs true or false, got {value!r}")
        return not value
    op, left_node, right_node = node[1], node[2], node[3]
    left = _eval(left_node, variables, text)
    if op in ("&&", "||"):
        if not isinstance(left, bool):
            raise ExpressionError(f"{text!r}: {op!r} needs true or false, got {left!r}")
        if (op == "&&" and not left) or (op == "||" and left):
            return left
        right = _eval(right_node, variables, text)
        if not isinstance(right, bool):
            raise ExpressionError(f"{text!r}: {op!r} needs true or false, got {right!r}")
        return right
    right = _eval(right_node, variables, text)
    if op in ("==", "!="):
        equal = _equal(left, right)
        return equal if op == "==" else not equal
    if op in ("=~", "!~"):
        matched = re.search(str(right), str(left)) is not None
        return matched if op == "=~" else not matched
    if isinstance(left, str) and isinstance(right, str):
        a: Any
        b: Any
        a, b = left, right
    else:
        a, b = _as_number(left, text), _as_number(right, text)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _equal(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, numbers) and isinstance(right, numbers):
        return float(left) == float(right)
    return type(left) is type(right) and left == right


# --- depends -----------------------------------------------------------------------------------------


def depends_expression(depends: str | None, dependencies: Iterable[str] | None,
                       continue_on: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """`depends` or `dependencies` as one explicit expression, as Argo expands it: a bare `A` means
    `(A.Succeeded || A.Skipped || A.Daemoned)`, plus `A.Failed`/`A.Errored` when A continues on them."""
    continue_on = continue_on or {}

    def bare(task: str) -> str:
        results = ["Succeeded", "Skipped", "Daemoned"]
        if continue_on.get(task, {}).get("failed"):
            results.append("Failed")
        if continue_on.get(task, {}).get("error"):
            results.append("Errored")
        return "(" + " || ".join(f"{task}.{r}" for r in results) + ")"

    if depends:
        out = []
        for tok in _tokenize(depends, _DEPENDS_TOKEN)[:-1]:
            out.append(bare(tok.text) if tok.kind == "name" and "." not in tok.text else tok.text)
        return " ".join(out)
    return " && ".join(bare(t) for t in dependencies or [])


def depends_tasks(depends: str | None, dependencies: Iterable[str] | None) -> list[str]:
    """The task names a `depends` expression (or `dependencies` list) refers to, in order, without repeats.

    Raises ExpressionError for a malformed expression or an unknown result such as `A.Succeded`."""
    if not depends:
        return list(dict.fromkeys(dependencies or []))
    names = []
    tokens = _tokenize(depends, _DEPENDS_TOKEN)
    _Parser(depends, [_Tok(t.kind, _safe(t.text), t.text) if t.kind == "name" else t for t in tokens]).parse()
    for tok in tokens:
        if tok.kind != "name":
            continue
        task, _, result = tok.text.partition(".")
        if result and result not in DEPENDS_RESULTS:
            raise ExpressionError(f"depends {depends!r}: {tok.text!r}: unknown result {result!r} "
                                  f"(one of {', '.join(DEPENDS_RESULTS)})")
        names.append(task)
    return list(dict.fromkeys(names))


def depends_terms(depends: str | None) -> set[str]:
    """The operands of a `depends` expression as written: `{"train", "gate.Failed"}`."""
    if not depends:
        return set()
    return {t.text for t in _tokenize(depends, _DEPENDS_TOKEN) if t.kind == "name"}


def evaluate_depends(expression: str, results: Mapping[str, str]) -> bool:
    """Evaluate an expanded depends expression given each task's phase (Succeeded, Failed, Skipped, ...)."""
    if not expression:
        return True
    variables: dict[str, Any] = {}
    tokens = _tokenize(expression, _DEPENDS_TOKEN)
    mapped = []
    for tok in tokens:
        if tok.kind == "name":
            task, _, result = tok.text.partition(".")
            phase = results.get(task)
            if phase is None:
                raise ExpressionError(f"depends {expression!r}: no task {task!r}")
            key = _safe(tok.text)
            variables[key] = {
                "AnySucceeded": phase == "Succeeded",
                "AllFailed": phase == "Failed",
            }.get(result, phase == result)
            mapped.append(_Tok("name", key, tok.text))
        else:
            mapped.append(tok)
    return bool(_eval(_Parser(expression, mapped).parse(), variables, expression))


def _safe(name: str) -> str:
    # Task names may contain '-' and '.', which the expression grammar reads as operators.
    return "t_" + name.replace("-", "_dash_").replace(".", "_dot_")
