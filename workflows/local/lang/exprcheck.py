"""expr-lang's type checker (checker/checker.go, checker/nature) and the optimizer passes that change results.

Argo compiles every expression with its environment (`expr.Env(env)`), so a name the environment lacks and an
operation on known, mismatched types are errors before anything runs, even where running would give a value
(`retries == 1`: retries is a string). Types below the environment's first level are unknown, as in Go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.local.lang import exprast as ast
from workflows.local.lang.errors import ExprCompileError
from workflows.local.lang.exproptimize import optimize
from workflows.local.lang.gotypes import GoFunc, GoStruct, Int64, IntList, StrList, StrMap, Uint8


@dataclass(eq=False)
class Nature:
    type: str | None  # the Go type as reflect prints it; None when unknown
    kind: str  # unknown nil bool int float string slice map struct func interface
    elem: Nature | None = None  # a slice's element, a map's value, a predicate's result
    fields: dict[str, Nature] | None = field(default=None)  # the environment's entries, a struct's fields
    func: GoFunc | None = None
    nil: bool = False

    def __str__(self) -> str:
        return self.type or ("nil" if self.nil else "unknown")

    @property
    def unknown(self) -> bool:
        return (self.type is None and not self.nil) or self.kind == "interface"

    @property
    def integer(self) -> bool:
        return self.kind == "int"

    @property
    def number(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def array(self) -> bool:
        return self.kind == "slice"

    def element(self) -> Nature:
        return self.elem or ANY if self.kind in ("slice", "map") else UNKNOWN

    def assignable_to(self, other: Nature) -> bool:
        if self.nil and other.kind in ("map", "slice", "func", "interface"):
            return True
        if self.type is None or other.type is None or (self.kind != other.kind and other.kind != "interface"):
            return False
        return other.kind == "interface" or self.type == other.type

    def comparable_to(self, other: Nature) -> bool:
        return (self.unknown or other.unknown or self.nil or other.nil or (self.number and other.number)
                or (self.array and other.array) or self.assignable_to(other))

    def maybe(self, other: Nature, *kinds: str) -> bool:
        """Nature.MaybeCompatible: one side unknown and the other of these kinds (or both unknown)."""
        return (self.unknown and other.unknown or self.unknown and other.kind in kinds
                or other.unknown and self.kind in kinds)


UNKNOWN = Nature(None, "unknown")
NIL = Nature(None, "nil", nil=True)
ANY = Nature("interface {}", "interface")
BOOL, INT, FLOAT, STRING = Nature("bool", "bool"), Nature("int", "int"), Nature("float64", "float"), Nature(
    "string", "string")
MAP = Nature("map[string]interface {}", "map", ANY)


def array_of(elem: Nature) -> Nature:
    return Nature("[]interface {}", "slice", elem)


ARRAY = array_of(ANY)
_BY_TYPE = {"int": INT, "float64": FLOAT, "string": STRING, "bool": BOOL, "interface {}": ANY,
            "[]interface {}": ARRAY, "map[string]interface {}": MAP, "int64": Nature("int64", "int"),
            "[]string": Nature("[]string", "slice", STRING), "[]int": Nature("[]int", "slice", INT)}


def of_type(name: str) -> Nature:
    return _BY_TYPE[name]


def nature_of(value: Any) -> Nature:
    """conf.Env's nature of one environment value."""
    if value is None:
        return NIL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, Int64):
        return Nature("int64", "int")
    if isinstance(value, Uint8):
        return Nature("uint8", "int")
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STRING
    if isinstance(value, StrList):
        return of_type("[]string")
    if isinstance(value, IntList):
        return of_type("[]int")
    if isinstance(value, list):
        return ARRAY
    if isinstance(value, StrMap):
        return Nature("map[string]string", "map", STRING)
    if isinstance(value, dict):
        return MAP
    if isinstance(value, GoStruct):
        return Nature(value.type_name, "struct", fields={k: nature_of(v) for k, v in value.fields.items()})
    if isinstance(value, GoFunc):
        return Nature(value.type_name, "func", func=value)
    raise ExprCompileError(f"no expr-lang type for {type(value).__name__}")


# --- builtins' signatures (builtin/builtin.go: Types and Validate) ----------------------------------------

_S, _I, _B, _A = "string", "int", "bool", "interface {}"
_TYPES: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "type": [((_A,), _S)], "string": [((_A,), _S)], "toJSON": [((_A,), _S)], "fromJSON": [((_S,), _A)],
    "toBase64": [((_S,), _S)], "fromBase64": [((_S,), _S)], "upper": [((_S,), _S)], "lower": [((_S,), _S)],
    "trim": [((_S,), _S), ((_S, _S), _S)], "trimPrefix": [((_S, _S), _S), ((_S,), _S)],
    "trimSuffix": [((_S, _S), _S), ((_S,), _S)], "split": [((_S, _S), "[]string"), ((_S, _S, _I), "[]string")],
    "splitAfter": [((_S, _S), "[]string"), ((_S, _S, _I), "[]string")],
    "replace": [((_S, _S, _S, _I), _S), ((_S, _S, _S), _S)], "repeat": [((_S, _I), _S)],
    "join": [(("[]string", _S), _S), (("[]interface {}", _S), _S), (("[]interface {}",), _S),
             (("[]string", _S), _S), (("[]string",), _S)],
    "indexOf": [((_S, _S), _I)], "lastIndexOf": [((_S, _S), _I)], "hasPrefix": [((_S, _S), _B)],
    "hasSuffix": [((_S, _S), _B)],
    "sort": [(("[]interface {}", _S), "[]interface {}"), (("[]int", _S), "[]interface {}"),
             (("[]string", _S), "[]interface {}"), (("[]interface {}",), "[]interface {}"),
             (("[]string",), "[]interface {}"), (("[]int",), "[]interface {}")],
    "bitnot": [((_I,), _I)],
}
_TYPES.update({name: [((_I, _I), _I)] for name in ("bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr",
                                                    "bitushr")})
_NUMERIC = ("int", "float")


def _validate(name: str, args: list[Nature]) -> Nature:
    """The builtins whose Validate function decides their type; `args` unknown natures count as interface{}."""
    kinds = ["interface" if a.unknown else (a.kind if a.type else "invalid") for a in args]

    def one() -> str:
        if len(args) != 1:
            raise ExprCompileError(f"invalid number of arguments (expected 1, got {len(args)})")
        return kinds[0]

    def bad(what: str) -> ExprCompileError:
        return ExprCompileError(f"{what} (type {args[0] if args[0].type else '<nil>'})")

    if name == "len":
        if one() not in ("slice", "map", "string", "interface"):
            raise bad("invalid argument for len")
        return INT
    if name == "abs":
        if one() not in _NUMERIC + ("interface",):
            raise bad("invalid argument for abs")
        return ANY if kinds[0] == "interface" else args[0]
    if name in ("ceil", "floor", "round"):
        if one() not in _NUMERIC + ("interface",):
            raise bad(f"invalid argument for {name}")
        return FLOAT
    if name in ("int", "float"):
        if one() not in _NUMERIC + ("interface", "string"):
            raise bad(f"invalid argument for {name}")
        return INT if name == "int" else FLOAT
    if name in ("max", "min", "mean", "median"):
        if not args:
            raise ExprCompileError(f"not enough arguments to call {name}")
        for arg, kind in zip(args, kinds, strict=True):
            if kind in ("interface", "slice"):
                return ANY
            if kind not in _NUMERIC:
                raise ExprCompileError(f"invalid argument for {name} (type {arg})")
        return args[0]
    if name in ("first", "last"):
        if one() == "interface":
            return ANY
        if kinds[0] == "slice":  # Validate sees the Go type, so a []interface{} literal's element type is lost
            return {"[]string": STRING, "[]int": INT}.get(args[0].type or "", ANY)
        raise bad(f"cannot get {name} element from")
    if name in ("keys", "values", "toPairs"):
        if one() not in ("interface", "map"):
            raise bad(f"cannot get {name} from")
        return ARRAY
    if name in ("reverse", "uniq", "flatten"):
        if one() not in ("interface", "slice"):
            raise bad(f"cannot {name}")
        return ARRAY
    if name == "concat":
        if not args:
            raise ExprCompileError("invalid number of arguments (expected at least 1, got 0)")
        for arg, kind in zip(args, kinds, strict=True):
            if kind not in ("interface", "slice"):
                raise ExprCompileError(f"cannot concat {arg}")
        return ARRAY
    if name == "take":
        if len(args) != 2:
            raise ExprCompileError(f"invalid number of arguments (expected 2, got {len(args)})")
        if kinds[0] not in ("interface", "slice"):
            raise bad("cannot take from")
        if kinds[1] not in ("interface", "int"):
            raise ExprCompileError(f"cannot take {args[1]} elements")
        return ANY if kinds[0] == "interface" else args[0]
    raise ExprCompileError(f"unknown builtin {name}")


def check_arguments(name: str, func: GoFunc, args: list[Nature]) -> Nature:
    """checker.checkArguments: arity, then each argument assignable to its parameter (unknown passes)."""
    n = len(func.params)
    if func.variadic and len(args) < n - 1:
        raise ExprCompileError(f"not enough arguments to call {name}")
    if not func.variadic and len(args) != n:
        raise ExprCompileError(f"{'too many' if len(args) > n else 'not enough'} arguments to call {name}")
    for i, arg in enumerate(args):
        param = of_type(func.params[min(i, n - 1)])
        if param.integer and arg.integer:
            continue
        if arg.nil:
            if param.kind == "interface":
                continue
            raise ExprCompileError(f"cannot use nil as argument (type {param}) to call {name}")
        if not arg.assignable_to(param) and not arg.unknown:
            raise ExprCompileError(f"cannot use {arg} as argument (type {param}) to call {name} ")
    return of_type(func.result)


class Checker:
    """Visits the tree, returning each node's nature; raises ExprCompileError as expr.Compile would."""

    def __init__(self, env: Nature):
        self.env = env
        self.scopes: list[tuple[Nature, dict[str, Nature]]] = []

    def visit(self, node: ast.Node) -> Nature:
        method = getattr(self, "_" + type(node).__name__.lower())
        nature: Nature = method(node)
        node.nature = nature  # type: ignore[attr-defined]
        return nature

    def _nil(self, node: ast.Nil) -> Nature:
        return NIL

    def _literal(self, node: ast.Literal) -> Nature:
        return nature_of(node.value)

    def _ident(self, node: ast.Ident) -> Nature:
        assert self.env.fields is not None
        if node.name in self.env.fields:
            return self.env.fields[node.name]
        raise ExprCompileError(f"unknown name {node.name}")

    def _unary(self, node: ast.Unary) -> Nature:
        n = self.visit(node.node)
        if node.op in ("!", "not") and (n.kind == "bool" or n.unknown):
            return BOOL
        if node.op in ("+", "-") and (n.number or n.unknown):
            return n if n.number else UNKNOWN
        raise ExprCompileError(f"invalid operation: {node.op} (mismatched type {n})")

    def _binary(self, node: ast.Binary) -> Nature:  # noqa: C901 - one case per operator, as in checker.go
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        result: Nature | None = None
        if op in ("==", "!="):
            result = BOOL if left.comparable_to(right) else None
        elif op in ("or", "||", "and", "&&"):
            both = left.kind == "bool" and right.kind == "bool"
            result = BOOL if both or left.maybe(right, "bool") else None
        elif op in ("<", ">", ">=", "<="):
            same = left.number and right.number or left.kind == right.kind == "string"
            result = BOOL if same or left.maybe(right, "int", "float", "string") else None
        elif op in ("-", "*", "+"):
            if left.number and right.number:
                result = FLOAT if "float" in (left.kind, right.kind) else INT
            elif op == "+" and left.kind == right.kind == "string":
                result = STRING
            elif left.maybe(right, "int", "float", *(("string",) if op == "+" else ())):
                result = UNKNOWN
        elif op in ("/", "**", "^"):
            result = FLOAT if left.number and right.number or left.maybe(right, "int", "float") else None
        elif op == "%":
            result = INT if left.integer and right.integer or left.maybe(right, "int") else None
        elif op == "in":
            result = self._in(node, left, right)
        elif op in ("matches", "contains", "startsWith", "endsWith"):
            if op == "matches" and isinstance(node.right, ast.Literal) and isinstance(node.right.value, str):
                from workflows.local.lang.goregexp import RegexpError, compile_go

                try:
                    compile_go(node.right.value)
                except RegexpError as err:
                    raise ExprCompileError(str(err)) from err
            ok = left.kind == right.kind == "string" or left.maybe(right, "string")
            result = BOOL if ok else None
        elif op == "..":
            result = of_type("[]int") if left.integer and right.integer or left.maybe(right, "int") else None
        elif op == "??":
            result = right if left.nil and not right.nil else left if right.nil and not left.nil else (
                NIL if left.nil else left if right.assignable_to(left) else UNKNOWN)
        if result is None:
            raise ExprCompileError(f"invalid operation: {op} (mismatched types {left} and {right})")
        return result

    def _in(self, node: ast.Binary, left: Nature, right: Nature) -> Nature | None:
        if (left.kind == "string" or left.unknown) and right.kind == "struct":
            return BOOL
        if right.kind == "map":
            if not left.unknown and not left.assignable_to(STRING):
                raise ExprCompileError(f"cannot use {left} as type string in map key")
            return BOOL
        if right.array:
            elem = right.element()
            if not left.comparable_to(elem):
                raise ExprCompileError(f"cannot use {left} as type {elem} in array")
            return BOOL
        if left.unknown and right.kind in ("string", "slice", "map") or right.unknown:
            return BOOL
        return None

    def _chain(self, node: ast.Chain) -> Nature:
        return self.visit(node.node)

    def _member(self, node: ast.Member) -> Nature:
        base, prop = self.visit(node.node), self.visit(node.prop)
        if base.unknown:
            return UNKNOWN
        name = node.prop.value if isinstance(node.prop, ast.Literal) and isinstance(node.prop.value, str) else None
        if name is not None and base.nil:
            raise ExprCompileError(f"type nil has no field {name}")
        if base.kind == "map":
            if not prop.assignable_to(STRING) and not prop.unknown:
                raise ExprCompileError(f"cannot use {prop} to get an element from {base}")
            return base.element()
        if base.array:
            if not prop.integer and not prop.unknown:
                raise ExprCompileError(f"array elements can only be selected using an integer (got {prop})")
            return base.element()
        if base.kind == "struct" and name is not None:
            assert base.fields is not None
            if name in base.fields:
                return base.fields[name]
        if name is not None:
            raise ExprCompileError(f"type {base} has no {'method' if node.method else 'field'} {name}")
        raise ExprCompileError(f"type {base}[{prop}] is undefined")

    def _slice(self, node: ast.Slice) -> Nature:
        n = self.visit(node.node)
        if n.unknown:
            return UNKNOWN
        if n.kind not in ("string", "slice"):
            raise ExprCompileError(f"cannot slice {n}")
        for bound in (node.start, node.stop):
            if bound is not None:
                b = self.visit(bound)
                if not b.integer and not b.unknown:
                    raise ExprCompileError(f"non-integer slice index {b}")
        return n

    def _call(self, node: ast.Call) -> Nature:
        callee = self.visit(node.callee)
        if callee.unknown:  # checker.go callNode: the arguments of an untyped call are not checked at all
            return UNKNOWN
        args = [self.visit(a) for a in node.args]
        name = node.callee.name if isinstance(node.callee, ast.Ident) else "function"
        if callee.func is not None:
            return check_arguments(name, callee.func, args)
        if callee.nil:
            raise ExprCompileError(f"{name} is nil; cannot call nil as function")
        raise ExprCompileError(f"{callee} is not callable")

    def _builtin(self, node: ast.Builtin) -> Nature:
        name = node.name
        if name in ast.PREDICATES:
            return self._predicate_builtin(node)
        if name == "get":
            if len(node.args) != 2:
                raise ExprCompileError(f"invalid number of arguments (expected 2, got {len(node.args)})")
            base, prop = self.visit(node.args[0]), self.visit(node.args[1])
            if base.unknown:
                return UNKNOWN
            if base.array and (prop.integer or prop.unknown) or base.kind == "map" and (
                    prop.assignable_to(STRING) or prop.unknown):
                return base.element()
            raise ExprCompileError(f"type {base} does not support indexing")
        args = [self.visit(a) for a in node.args]
        if name not in _TYPES:
            return _validate(name, args)
        error: ExprCompileError | None = None
        for params, result in _TYPES[name]:
            try:
                return check_arguments(name, GoFunc(name, print, params, result), args)
            except ExprCompileError as err:
                error = err
        assert error is not None
        raise error

    def _predicate_builtin(self, node: ast.Builtin) -> Nature:
        name = node.name
        collection = self.visit(node.args[0])
        if not collection.array and not collection.unknown:
            raise ExprCompileError(f"builtin {name} takes only array (got {collection})")
        if len(node.args) == 1:  # count(xs), sum(xs)
            return INT if name == "count" else (UNKNOWN if collection.unknown else collection.element())
        variables = {"index": INT} if name in ("map", "reduce") else {}
        if name == "reduce":
            variables["acc"] = UNKNOWN
        self.scopes.append((collection, variables))
        predicate = self.visit(node.args[1])
        self.scopes.pop()
        out = predicate.elem or UNKNOWN
        if name == "reduce" and len(node.args) == 3:
            self.visit(node.args[2])
        if name in ("all", "none", "any", "one", "filter", "count", "find", "findLast", "findIndex",
                    "findLastIndex") and out.kind != "bool" and not out.unknown:
            raise ExprCompileError(f"predicate should return boolean (got {out})")
        if name in ("all", "none", "any", "one"):
            return BOOL
        if name == "filter":
            return ARRAY if collection.unknown else array_of(collection.element())
        if name == "map":
            return array_of(out)
        if name in ("count", "findIndex", "findLastIndex"):
            return INT
        if name in ("find", "findLast"):
            return UNKNOWN if collection.unknown else collection.element()
        return out  # sum with a predicate, reduce

    def _predicate(self, node: ast.Predicate) -> Nature:
        inner = self.visit(node.node)
        return Nature("predicate", "func", elem=inner)

    def _pointer(self, node: ast.Pointer) -> Nature:
        if not self.scopes:
            raise ExprCompileError("cannot use pointer accessor outside predicate")
        collection, variables = self.scopes[-1]
        if node.name == "":
            if collection.unknown:
                return UNKNOWN
            return collection.element()
        if node.name in variables:
            return variables[node.name]
        raise ExprCompileError(f"unknown pointer #{node.name}")

    def _conditional(self, node: ast.Conditional) -> Nature:
        cond = self.visit(node.cond)
        if cond.kind != "bool" and not cond.unknown:
            raise ExprCompileError(f"non-bool expression (type {cond}) used as condition")
        yes, no = self.visit(node.yes), self.visit(node.no)
        if yes.nil or no.nil:
            return NIL if yes.nil and no.nil else (no if yes.nil else yes)
        if yes.assignable_to(no):
            if yes.array and no.array and not (yes.element().assignable_to(no.element())
                                               and no.element().assignable_to(yes.element())):
                return ARRAY
            return yes
        return UNKNOWN

    def _array(self, node: ast.Array) -> Nature:
        natures = [self.visit(item) for item in node.items]
        if all(n.kind == natures[0].kind for n in natures[1:]) and natures:
            return array_of(natures[-1])
        return array_of(UNKNOWN) if not natures else ARRAY

    def _maplit(self, node: ast.MapLit) -> Nature:
        for key, value in node.pairs:
            self.visit(key)
            self.visit(value)
        return MAP


def env_nature(env: Mapping[str, Any]) -> Nature:
    return Nature("map[string]interface {}", "map", ANY, fields={k: nature_of(v) for k, v in env.items()})


def check(tree: ast.Node, env: Mapping[str, Any]) -> ast.Node:
    """Type-check `tree` against the environment's values, then apply the optimizer's rewrites that change what
    an expression gives (optimizer/optimizer.go: in_array, fold, filter_first, filter_last, sum_array): the tree
    to run."""
    Checker(env_nature(env)).visit(tree)
    return optimize(tree)
