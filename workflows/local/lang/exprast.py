"""expr-lang's syntax tree (ast/node.go): the node kinds the parser builds and the checker and evaluator visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# parser.go `predicates`: arguments after the collection, "p" a predicate, "?" optional.
_P, _OPT_P, _OPT_E = ("e", "p"), ("e", "p?"), ("e", "p", "e?")
PREDICATES = {"all": _P, "none": _P, "any": _P, "one": _P, "filter": _P, "map": _P, "count": _OPT_P, "sum": _OPT_P,
              "find": _P, "findIndex": _P, "findLast": _P, "findLastIndex": _P, "groupBy": _P, "sortBy": _OPT_E,
              "reduce": _OPT_E}
# builtin/builtin.go `Builtins`: the names a call resolves to unless the environment defines them.
BUILTINS = frozenset(PREDICATES) | frozenset((
    "len", "type", "abs", "ceil", "floor", "round", "int", "float", "string", "trim", "trimPrefix", "trimSuffix",
    "upper", "lower", "split", "splitAfter", "replace", "repeat", "join", "indexOf", "lastIndexOf", "hasPrefix",
    "hasSuffix", "max", "min", "mean", "median", "toJSON", "fromJSON", "toBase64", "fromBase64", "now", "duration",
    "date", "timezone", "first", "last", "get", "take", "keys", "values", "toPairs", "fromPairs", "reverse", "uniq",
    "concat", "flatten", "sort", "bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr", "bitushr", "bitnot",
))
# --- the tree (ast/node.go) -------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    pos: int = field(default=0, kw_only=True)


@dataclass(eq=False)
class Nil(Node):
    pass


@dataclass(eq=False)
class Literal(Node):
    value: Any  # bool, int, float or str


@dataclass(eq=False)
class Ident(Node):
    name: str


@dataclass(eq=False)
class Unary(Node):
    op: str
    node: Node


@dataclass(eq=False)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(eq=False)
class Member(Node):
    node: Node
    prop: Node
    optional: bool = False
    method: bool = False


@dataclass(eq=False)
class Chain(Node):
    node: Node


@dataclass(eq=False)
class Slice(Node):
    node: Node
    start: Node | None
    stop: Node | None


@dataclass(eq=False)
class Call(Node):
    callee: Node
    args: list[Node]


@dataclass(eq=False)
class Builtin(Node):
    name: str
    args: list[Node]
    throws: bool = False  # find() standing for filter()[0] fails when nothing matches (optimizer/filter_first.go)


@dataclass(eq=False)
class Predicate(Node):
    node: Node


@dataclass(eq=False)
class Pointer(Node):
    name: str


@dataclass(eq=False)
class Conditional(Node):
    cond: Node
    yes: Node
    no: Node


@dataclass(eq=False)
class Array(Node):
    items: list[Node]


@dataclass(eq=False)
class MapLit(Node):
    pairs: list[tuple[Node, Node]]


