"""expr-lang's optimizer passes whose rewrites change what an expression gives (optimizer/, v1.17.8).

Argo compiles with the optimizer on: `x in ["a", "b"]` looks `x` up as a map key (so nil finds "" and a number
is an error), constants fold (`x && true` is `x`, `x && false` is false without evaluating `x`, `1 % 0` fails
compiling), `filter(...)[0]` is `find`, and `sum([a, b, c])` is `a + (b + c)` unless every element is constant.
"""

from __future__ import annotations

from typing import Any

from workflows.local.lang import exprast as ast
from workflows.local.lang import exprops
from workflows.local.lang.errors import ExprCompileError


def optimize(tree: ast.Node) -> ast.Node:
    tree = _rewrite(tree, _in_array)
    while True:
        folder = _Fold()
        tree = _rewrite(tree, folder)
        if not folder.applied:
            break
    return _rewrite(tree, _after_fold)


def _rewrite(node: ast.Node, fn: Any) -> ast.Node:
    """Post-order: children first, as ast.Walk visits them."""
    for name, value in vars(node).items():
        if isinstance(value, ast.Node):
            setattr(node, name, _rewrite(value, fn))
        elif isinstance(value, list):
            setattr(node, name, [_rewrite(v, fn) if isinstance(v, ast.Node) else
                                 tuple(_rewrite(p, fn) for p in v) if isinstance(v, tuple) else v for v in value])
    result: ast.Node = fn(node)
    return result


def _in_array(node: ast.Node) -> ast.Node:
    if isinstance(node, ast.Binary) and node.op == "in" and isinstance(node.right, ast.Array) and node.right.items:
        items = node.right.items
        if all(isinstance(i, ast.Literal) and type(i.value) is str for i in items):
            # a constant map[string]struct{}: the needle is looked up as a map key
            values = frozenset(i.value for i in items if isinstance(i, ast.Literal))
            node.right = ast.Literal(values, pos=node.right.pos)
    return node


def _const(node: ast.Node, *kinds: type) -> bool:
    return isinstance(node, ast.Literal) and type(node.value) in kinds


class _Fold:
    """optimizer/fold.go: constant operations become constants; `x && true` becomes `x`, `x && false` false."""

    def __init__(self) -> None:
        self.applied = False

    def __call__(self, node: ast.Node) -> ast.Node:
        new = self.fold(node)
        if new is not node:
            self.applied = True
        return new

    def fold(self, node: ast.Node) -> ast.Node:  # noqa: C901 - one case per folded operator, as fold.go
        def lit(value: Any) -> ast.Literal:
            return ast.Literal(value, pos=node.pos)

        if isinstance(node, ast.Unary) and isinstance(node.node, ast.Literal):
            value = node.node.value
            if node.op in ("-", "+") and type(value) in (int, float):
                return lit(exprops.negate(value) if node.op == "-" else value)
            if node.op in ("!", "not") and type(value) is bool:
                return lit(not value)
        if isinstance(node, ast.Array) and node.items and all(_const(i, int, float, str, bool) for i in node.items):
            return lit([i.value for i in node.items if isinstance(i, ast.Literal)])
        if not isinstance(node, ast.Binary):
            return node
        left, right, op = node.left, node.right, node.op
        if op in ("and", "&&", "or", "||"):
            neutral = op in ("and", "&&")
            if _const(left, bool) and left.value is neutral:  # type: ignore[attr-defined]
                return right
            if _const(right, bool) and right.value is neutral:  # type: ignore[attr-defined]
                return left
            if _const(left, bool) or _const(right, bool):
                return lit(not neutral)
            return node
        if not (isinstance(left, ast.Literal) and isinstance(right, ast.Literal)):
            return node
        a, b = left.value, right.value
        numbers = type(a) in (int, float) and type(b) in (int, float)
        if op in ("+", "-", "*", "/", "**", "^") and numbers:
            return lit(exprops.arithmetic(op, a, b))
        if op == "+" and type(a) is str and type(b) is str:
            return lit(a + b)
        if op == "%" and type(a) is int and type(b) is int:
            if b == 0:
                raise ExprCompileError("integer divide by zero")
            return lit(exprops.arithmetic(op, a, b))
        if op == "==" and type(a) is type(b) and type(a) in (int, str, bool):
            return lit(a == b)
        return node


def _after_fold(node: ast.Node) -> ast.Node:
    if isinstance(node, ast.Member) and not node.optional and isinstance(node.prop, ast.Literal) \
            and type(node.prop.value) is int and node.prop.value in (0, -1) \
            and isinstance(node.node, ast.Builtin) and node.node.name == "filter" and len(node.node.args) == 2:
        name = "find" if node.prop.value == 0 else "findLast"
        return ast.Builtin(name, node.node.args, throws=True, pos=node.pos)
    if isinstance(node, ast.Builtin) and node.name in ("first", "last") and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Builtin) and node.args[0].name == "filter" \
            and len(node.args[0].args) == 2:
        return ast.Builtin("find" if node.name == "first" else "findLast", node.args[0].args, pos=node.pos)
    if isinstance(node, ast.Builtin) and node.name == "sum" and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Array) and len(node.args[0].items) >= 2:
        items = node.args[0].items
        folded: ast.Node = ast.Binary("+", items[-2], items[-1], pos=node.pos)
        for item in reversed(items[:-2]):
            folded = ast.Binary("+", item, folded, pos=node.pos)
        return folded
    return node
