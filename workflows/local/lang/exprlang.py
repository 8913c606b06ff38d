"""Argo's expr-lang expressions: `{{=EXPR}}`, valueFrom.expression, fromExpression, retryStrategy.expression and
hooks' expression, evaluated as Argo v4.1.2 does with github.com/expr-lang/expr v1.17.8.

    program = compile_expr("asInt(inputs.parameters.n) + 1")    # syntax errors and refusals, before any run
    env = argo_env({"inputs.parameters.n": "41"})               # util/expr/env GetFuncMap: parameters are strings
    program.run(env)                                            # 42 (expr.Compile with the env, then expr.Run)
    template_text(program.run(env))                             # "42", the text {{=...}} becomes
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workflows.local.lang import exprast as ast
from workflows.local.lang import exprbuiltins, exprcheck, expreval
from workflows.local.lang.errors import ExprRuntimeError, LangError, Unsupported
from workflows.local.lang.exprparse import parse
from workflows.local.lang.gotypes import GoFunc, GoStruct, JSONError, to_json
from workflows.local.lang.jsonpath import json_path

# util/template/expression_template.go variablesToCheck: values that exist only late in a node's life
LATE_VARIABLES = ("item", "retries", "lastRetry.exitCode", "lastRetry.status", "lastRetry.duration",
                  "lastRetry.message", "workflow.status", "workflow.failures")
PLACEHOLDER_PREFIX = "__argo__internal__placeholder-"


@dataclass
class Program:
    """A parsed expression; `run` type-checks it against an environment (as expr.Compile does) and runs it."""

    text: str
    tree: ast.Node
    calls: frozenset[str] = field(default_factory=frozenset)

    def run(self, env: Mapping[str, Any]) -> Any:
        tree = self.tree
        shadowed = self.calls & env.keys()
        if shadowed:  # an environment name shadows a builtin: expr-lang parses the call as a call of that value
            tree = _validated(parse(self.text, frozenset(shadowed)))[0]
        tree = exprcheck.check(copy.deepcopy(tree), env)
        return expreval.evaluate(tree, env)

    def run_bool(self, env: Mapping[str, Any]) -> bool:
        """argoexpr.EvalBool: the result must be a bool."""
        try:
            result = self.run(env)
        except ExprRuntimeError as err:
            raise ExprRuntimeError(f"unable to evaluate expression '{self.text}': {err}") from err
        if not isinstance(result, bool):
            raise ExprRuntimeError(f"unable to cast expression result '{_shown(result)}' to bool")
        return result

    def identifiers(self) -> list[str]:
        """The names and member paths the expression needs, as getIdentifiers lists them: a path under `??` or
        behind `?.` is optional, its base name is not."""
        guarded: set[int] = set()
        _guard(self.tree, guarded)
        found: list[str] = []
        _identifiers(self.tree, guarded, found)
        return found


def _shown(value: Any) -> str:
    from workflows.local.lang.gotypes import fmt_v

    try:
        return fmt_v(value)
    except Unsupported:
        return repr(value)


def compile_expr(text: str) -> Program:
    """Parse an expression; ExprSyntaxError where expr-lang's parser refuses it, Unsupported (naming the construct)
    where it is valid for Argo but not evaluated locally."""
    tree, calls = _validated(parse(text))
    return Program(text, tree, frozenset(calls))


def _validated(tree: ast.Node) -> tuple[ast.Node, set[str]]:
    from workflows.local.lang.sprig import SPRIG

    calls: set[str] = set()

    def walk(node: Any, parent: Any) -> None:
        if isinstance(node, ast.Builtin):
            calls.add(node.name)
            if node.name in exprbuiltins.UNSUPPORTED:
                raise Unsupported(f"expr-lang's {node.name}() ({exprbuiltins.UNSUPPORTED[node.name]})")
        if isinstance(node, ast.Call) and isinstance(node.callee, ast.Ident):
            calls.add(node.callee.name)
        if isinstance(node, ast.Ident) and node.name == "sprig":
            prop = parent.prop if isinstance(parent, ast.Member) and parent.node is node else None
            if not (isinstance(prop, ast.Literal) and isinstance(prop.value, str)):
                raise Unsupported("sprig used other than as sprig.NAME(...)")
            if prop.value not in SPRIG:
                raise Unsupported(f"sprig.{prop.value}")
        for child in vars(node).values():
            for item in child if isinstance(child, list) else [child]:
                for part in item if isinstance(item, tuple) else [item]:
                    if isinstance(part, ast.Node):
                        walk(part, node)

    walk(tree, None)
    return tree, calls


def _guard(node: Any, guarded: set[int]) -> None:
    if isinstance(node, ast.Binary) and node.op == "??":
        _mark_members(node.left, guarded)
    if isinstance(node, ast.Member) and node.optional and isinstance(node.node, ast.Member):
        guarded.add(id(node.node))
    for child in _children(node):
        _guard(child, guarded)


def _mark_members(node: Any, guarded: set[int]) -> None:
    if isinstance(node, ast.Member):
        guarded.add(id(node))
    for child in _children(node):
        _mark_members(child, guarded)


def _children(node: Any) -> list[ast.Node]:
    out: list[ast.Node] = []
    for child in vars(node).values():
        for item in child if isinstance(child, list) else [child]:
            out.extend(p for p in (item if isinstance(item, tuple) else [item]) if isinstance(p, ast.Node))
    return out


def _identifiers(node: Any, guarded: set[int], found: list[str]) -> None:
    for child in _children(node):
        _identifiers(child, guarded, found)
    if id(node) in guarded:
        return
    name = node.name if isinstance(node, ast.Ident) else _member_path(node) if isinstance(node, ast.Member) else None
    if name is not None and name not in found:
        found.append(name)


def _member_path(node: ast.Member) -> str | None:
    parts: list[str] = []
    current: ast.Node = node
    while isinstance(current, ast.Member):
        if current.optional or not (isinstance(current.prop, ast.Literal) and isinstance(current.prop.value, str)):
            return None
        parts.insert(0, current.prop.value)
        current = current.node
    if isinstance(current, ast.Ident):
        return ".".join([current.name, *parts])
    return None


# --- the environment (util/expr/env/env.go, util/expand/expand.go) ----------------------------------------


def expand(flat: Mapping[str, Any]) -> dict[str, Any]:
    """expand.Expand: dotted keys to nested maps; a key that is also another key's prefix is dropped when it sorts
    just before one of its children, as removeConflicts does (any other conflict depends on Go's map order)."""
    keys = sorted(flat)
    kept = dict(flat)
    for key, following in zip(keys, keys[1:], strict=False):
        if following.startswith(key + "."):
            del kept[key]
    return _expand_prefixed(kept, "")


def _expand_prefixed(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    dot = prefix + "." if prefix else ""
    scalars: dict[str, Any] = {}
    nested: set[str] = set()
    for key, value in values.items():
        if key.startswith(dot):
            head, sep, _ = key[len(dot):].partition(".")
            if sep:
                nested.add(head)
            else:
                scalars[head] = value
    for head in nested & scalars.keys():
        raise Unsupported(f"the variable {dot + head!r} beside {dot + head}.* (Argo picks one at random)")
    return scalars | {head: _expand_prefixed(values, dot + head) for head in nested}


def argo_env(replace_map: Mapping[str, Any]) -> dict[str, Any]:
    """GetFuncMap(replaceMap): the expanded variables, asInt, asFloat, jsonpath, toJson and sprig's functions (not
    env and expandenv). Parameters are strings, an absent optional None."""
    from workflows.local.lang.sprig import SPRIG

    env = expand(replace_map)
    env["asInt"] = GoFunc("asInt", exprbuiltins.to_go_int, ("interface {}",), "interface {}")
    env["asFloat"] = GoFunc("asFloat", exprbuiltins.to_go_float, ("interface {}",), "interface {}")
    env["jsonpath"] = GoFunc("jsonpath", json_path, ("string", "string"), "interface {}")
    env["toJson"] = GoFunc("toJson", _to_json, ("interface {}",), "string")
    env["sprig"] = dict(SPRIG)
    return env


def _to_json(value: Any) -> str:
    try:
        return to_json(value)
    except JSONError as err:
        raise ExprRuntimeError(str(err)) from err


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    return compile_expr(text).run(env)


def eval_bool(text: str, env: Mapping[str, Any]) -> bool:
    """argoexpr.EvalBool(text, env): retryStrategy.expression, hooks' expression, depends."""
    return compile_expr(text).run_bool(env)


def template_text(value: Any) -> str:
    """The text `{{=EXPR}}` becomes: a string as it is, anything else as Go's json.Marshal writes it."""
    if isinstance(value, str):
        return value
    try:
        return to_json(value)
    except JSONError as err:
        raise ExprRuntimeError(f"failed to marshal evaluated expression: {err}") from err


# --- {{=...}} in a template (util/template/expression_template.go) -----------------------------------------


def has_variable(env: Mapping[str, Any], name: str) -> bool:
    """hasVarInEnv: the name, or a dotted path through maps and structs (a nil leaf counts as present)."""
    if name in env:
        return True
    parts = name.split(".")
    current: Any = env
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in env:
            current, parts = env[".".join(parts[:i])], parts[i:]
            break
    for part in parts:
        if isinstance(current, GoStruct):
            current = current.fields.get(part, _MISSING)
        elif isinstance(current, dict):
            current = current.get(part, _MISSING)
        else:
            return False
        if current is _MISSING:
            return False
    return True


_MISSING = object()


def replace_expression(text: str, replace_map: Mapping[str, Any],
                       strict: Literal["all"] | Sequence[str] | None = "all") -> str | None:
    """What Argo writes for `{{=text}}` given these variables: the text, or None where Argo leaves the tag
    unresolved for a later pass. `strict` is "all" for a final substitution (Replace without allowUnresolved),
    the prefixes of ReplaceStrict (e.g. ["tasks", "steps"]), or None (Replace with allowUnresolved).
    Raises LangError where Argo fails the node."""
    env = argo_env(replace_map)
    program = compile_expr(text)
    missing = [name for name in program.identifiers() if not has_variable(env, name)]
    strict_re = None if strict is None else re.compile(".*") if strict == "all" else re.compile(
        "^((" + "|".join(re.escape(p) for p in strict) + r"))(\.|$)")
    for name in missing:
        if strict_re is not None and strict_re.match(name):
            raise LangError(f"failed to evaluate expression: {name} is missing")
    allow_unresolved = bool(missing) or strict_re is None
    if any(isinstance(v, str) and v.startswith(PLACEHOLDER_PREFIX) for v in _strings(env)):
        allow_unresolved = True
    if allow_unresolved and any(name in LATE_VARIABLES for name in missing):
        return None
    try:
        result = program.run(env)
    except Unsupported:
        raise
    except LangError as err:
        if allow_unresolved:
            return None
        raise LangError(f"failed to evaluate expression: {err}") from err
    if result is None:
        if allow_unresolved:
            return None
        raise LangError(f"failed to evaluate expression {text!r}")
    return template_text(result)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [value] if isinstance(value, str) else []
