"""Runs a checked expr-lang tree as expr-lang's compiler and VM do (compiler/compiler.go, vm/vm.go).

`&&`/`||` short-circuit and give the right operand as it is; the left one, a condition, `!` and each predicate
result must be a bool (Go's type assertion panics otherwise, nil included); `??` and `?.` treat only nil as
missing; an unknown name inside the arguments of an untyped call is nil (OpLoadFast).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.local.lang import exprast as ast
from workflows.local.lang import exprbuiltins, exprops
from workflows.local.lang.errors import ExprRuntimeError, LangError, Unsupported
from workflows.local.lang.goregexp import RegexpError, compile_go
from workflows.local.lang.gotypes import Uint8, go_type

panic = exprops.panic


class _NilChain(Exception):
    """An optional member (`?.`) met nil: the whole chain is nil."""


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        shown = "nil" if value is None else go_type(value)
        raise panic(f"interface conversion: interface {{}} is {shown}, not bool")
    return value


class Scope:
    def __init__(self, items: Any):
        if isinstance(items, list):
            self.items: list[Any] = items
        elif isinstance(items, str):
            self.items = [Uint8(b) for b in items.encode()]
        elif isinstance(items, dict) and not items:
            self.items = []
        elif items is None:
            raise panic("reflect: call of reflect.Value.Len on zero Value")
        else:
            raise panic(f"reflect: call of reflect.Value.Index on {go_type(items)} Value")
        self.index, self.acc = 0, None


class Evaluator:
    def __init__(self, env: Mapping[str, Any]):
        self.env = env
        self.scopes: list[Scope] = []

    def run(self, node: ast.Node) -> Any:
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    def _nil(self, node: ast.Nil) -> Any:
        return None

    def _literal(self, node: ast.Literal) -> Any:
        return node.value

    def _ident(self, node: ast.Ident) -> Any:
        return self.env.get(node.name)

    def _unary(self, node: ast.Unary) -> Any:
        value = self.run(node.node)
        if node.op in ("!", "not"):
            return not as_bool(value)
        return exprops.negate(value) if node.op == "-" else value

    def _binary(self, node: ast.Binary) -> Any:  # noqa: C901 - one case per operator, as the compiler has
        op = node.op
        if op in ("||", "or"):
            left = self.run(node.left)
            return True if as_bool(left) else self.run(node.right)
        if op in ("&&", "and"):
            left = self.run(node.left)
            return False if not as_bool(left) else self.run(node.right)
        if op == "??":
            left = self.run(node.left)
            return left if left is not None else self.run(node.right)
        left, right = self.run(node.left), self.run(node.right)
        if op == "==":
            return exprops.equal(left, right)
        if op == "!=":
            return not exprops.equal(left, right)
        if op in ("<", ">", "<=", ">="):
            return exprops.compare(op, left, right)
        if op in ("+", "-", "*", "/", "%", "**", "^"):
            return exprops.arithmetic(op, left, right)
        if op == "in":
            return exprops.contains(left, right)
        if op == "..":
            return exprops.make_range(left, right)
        if left is None or right is None:  # matches, contains, startsWith, endsWith
            return False
        if not isinstance(left, str):
            raise panic(f"interface conversion: interface {{}} is {go_type(left)}, not string")
        if op == "matches":
            return self._matches(left, right)
        if not isinstance(right, str):
            raise panic(f"interface conversion: interface {{}} is {go_type(right)}, not string")
        if op == "contains":
            return right in left
        return left.startswith(right) if op == "startsWith" else left.endswith(right)

    def _matches(self, text: str, pattern: Any) -> bool:
        if not isinstance(pattern, str):
            raise panic(f"interface conversion: interface {{}} is {go_type(pattern)}, not string")
        try:
            return compile_go(pattern).search(text) is not None
        except RegexpError as err:
            raise panic(str(err)) from err

    def _chain(self, node: ast.Chain) -> Any:
        try:
            return self.run(node.node)
        except _NilChain:
            return None

    def _member(self, node: ast.Member) -> Any:
        base = self.run(node.node)
        if node.optional and base is None:
            raise _NilChain
        return exprops.fetch(base, self.run(node.prop))

    def _slice(self, node: ast.Slice) -> Any:
        base = self.run(node.node)
        stop = self.run(node.stop) if node.stop is not None else exprops.length(base)
        start = self.run(node.start) if node.start is not None else 0
        return exprops.slice_(base, start, stop)

    def _call(self, node: ast.Call) -> Any:
        func = self.run(node.callee)
        return exprops.call(func, [self.run(a) for a in node.args])

    def _conditional(self, node: ast.Conditional) -> Any:
        return self.run(node.yes) if as_bool(self.run(node.cond)) else self.run(node.no)

    def _array(self, node: ast.Array) -> Any:
        return [self.run(item) for item in node.items]

    def _maplit(self, node: ast.MapLit) -> Any:
        out: dict[str, Any] = {}
        for key_node, value_node in node.pairs:
            key, value = self.run(key_node), self.run(value_node)
            if not isinstance(key, str):
                raise panic(f"interface conversion: interface {{}} is {go_type(key)}, not string")
            out[key] = value
        return out

    def _pointer(self, node: ast.Pointer) -> Any:
        scope = self.scopes[-1]
        if node.name == "":
            return scope.items[scope.index]
        if node.name == "index":
            return scope.index
        return scope.acc

    def _builtin(self, node: ast.Builtin) -> Any:
        if node.name in ast.PREDICATES:
            return self._predicate_builtin(node)
        args = [self.run(a) for a in node.args]
        try:
            return exprbuiltins.BUILTINS[node.name](*args)
        except TypeError as err:
            raise panic(f"invalid number of arguments for {node.name}: {err}") from err

    def _predicate_builtin(self, node: ast.Builtin) -> Any:  # noqa: C901 - one loop per builtin, as compiled
        name = node.name
        scope = Scope(self.run(node.args[0]))
        self.scopes.append(scope)
        try:
            items = scope.items
            predicate = node.args[1].node if len(node.args) > 1 else None  # type: ignore[attr-defined]

            def test(i: int) -> Any:
                scope.index = i
                return self.run(predicate) if predicate is not None else items[i]

            if name == "reduce":
                start = 0
                if len(node.args) == 3:
                    scope.acc = self.run(node.args[2])
                elif not items:
                    raise panic("reduce of empty array with no initial value")
                else:
                    scope.acc, start = items[0], 1
                for i in range(start, len(items)):
                    scope.acc = test(i)
                return scope.acc
            if name == "map":
                return [test(i) for i in range(len(items))]
            if name == "sum":
                total: Any = 0
                for i in range(len(items)):
                    total = exprops.arithmetic("+", test(i), total)
                return total
            backwards = name in ("findLast", "findLastIndex")
            order = range(len(items) - 1, -1, -1) if backwards else range(len(items))
            count, kept = 0, []
            for i in order:
                hit = as_bool(test(i))
                if name == "none":
                    hit = not hit
                    if not hit:
                        return False
                    continue
                if name == "all" and not hit:
                    return False
                if name == "any" and hit:
                    return True
                if name in ("find", "findLast") and hit:
                    return items[i]
                if name in ("findIndex", "findLastIndex") and hit:
                    return i
                if hit:
                    count += 1
                if name == "filter" and hit:
                    kept.append(items[i])
            if name in ("all", "none"):
                return True
            if name == "any":
                return False
            if name in ("find", "findLast") and node.throws:
                raise panic("reflect: slice index out of range")
            if name in ("find", "findLast", "findIndex", "findLastIndex"):
                return None
            if name == "filter":
                return kept
            if name == "one":
                return count == 1
            return count  # count
        finally:
            self.scopes.pop()


def evaluate(tree: ast.Node, env: Mapping[str, Any]) -> Any:
    """Run a checked tree; Go's panics are ExprRuntimeError, what is not evaluated here is Unsupported."""
    try:
        return Evaluator(env).run(tree)
    except (LangError, Unsupported):
        raise
    except RecursionError as err:
        raise ExprRuntimeError("expression nested too deeply") from err
