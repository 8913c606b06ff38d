"""expr-lang's lexer and parser (github.com/expr-lang/expr v1.17.8, parser/lexer and parser/parser.go): text to a tree.

The tree keeps expr-lang's node kinds; what expr-lang parses but the local runner does not evaluate (`let`,
`if {} else {}`, `;` sequences, byte strings, `$env`, `::`) is refused here with `Unsupported`, naming it.
"""

from __future__ import annotations

from typing import Any

from workflows.local.lang.errors import ExprSyntaxError, Unsupported
from workflows.local.lang.exprast import (
    BUILTINS,
    PREDICATES,
    Array,
    Binary,
    Builtin,
    Call,
    Chain,
    Conditional,
    Ident,
    Literal,
    MapLit,
    Member,
    Nil,
    Node,
    Pointer,
    Predicate,
    Slice,
    Unary,
)
from workflows.local.lang.exprlex import NEGATABLE, Lexer, Token, is_alnum, is_letter

# parser/operator/operator.go: precedence and associativity ("R" for right).
BINARY = {"|": (0, "L"), "or": (10, "L"), "||": (10, "L"), "and": (15, "L"), "&&": (15, "L"),
          "==": (20, "L"), "!=": (20, "L"), "<": (20, "L"), ">": (20, "L"), ">=": (20, "L"), "<=": (20, "L"),
          "in": (20, "L"), "matches": (20, "L"), "contains": (20, "L"), "startsWith": (20, "L"),
          "endsWith": (20, "L"), "..": (25, "L"), "+": (30, "L"), "-": (30, "L"), "*": (60, "L"), "/": (60, "L"),
          "%": (60, "L"), "**": (100, "R"), "^": (100, "R"), "??": (500, "L")}
UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
COMPARISONS = ("<", ">", ">=", "<=")
MAX_NODES = 10000  # conf.DefaultMaxNodes


# --- the parser (parser/parser.go) ------------------------------------------------------------------------


class Parser:
    def __init__(self, text: str, overridden: frozenset[str] = frozenset()):
        self.text, self.tokens, self.k = text, Lexer(text).lex(), 0
        self.overridden, self.depth, self.nodes = overridden, 0, 0

    @property
    def cur(self) -> Token:
        return self.tokens[self.k]

    def is_(self, kind: str, *values: str) -> bool:
        return self.cur.kind == kind and (not values or self.cur.value in values)

    def advance(self) -> None:
        if self.cur.kind == "EOF":
            raise self.fail("unexpected end of expression")
        self.k += 1

    def fail(self, message: str, token: Token | None = None) -> ExprSyntaxError:
        token = token or self.cur
        return ExprSyntaxError(f"{message} (1:{token.pos + 1})\n | {self.text}")

    def expect(self, kind: str, *values: str) -> None:
        if not self.is_(kind, *values):
            raise self.fail(f"unexpected token {self.cur}")
        self.advance()

    def node(self, node: Node, token: Token) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail("compilation failed: expression exceeds maximum allowed nodes")
        node.pos = token.pos
        return node

    def parse(self) -> Node:
        node = self.expression(0)
        if self.is_("Operator", ";"):
            raise Unsupported("a sequence of expressions separated by ';'")
        if not self.is_("EOF"):
            raise self.fail(f"unexpected token {self.cur}")
        return node

    def expression(self, precedence: int) -> Node:
        if precedence == 0 and self.is_("Operator", "let"):
            raise Unsupported("a 'let' variable declaration")
        if precedence == 0 and self.is_("Operator", "if"):
            raise Unsupported("an 'if { } else { }' expression")
        left = self.primary()
        previous = ""
        while self.cur.kind == "Operator":
            op_token = self.cur
            negated = self.is_("Operator", "not")
            if negated:
                saved = self.k
                self.advance()
                if self.cur.kind == "Operator" and self.cur.value in NEGATABLE:
                    if BINARY[self.cur.value][0] < precedence:
                        self.k = saved
                        break
                    op_token = self.cur
                else:
                    raise self.fail(f"unexpected token {self.cur}")
            op = op_token.value
            if op not in BINARY or BINARY[op][0] < precedence:
                break
            self.advance()
            if op == "|":
                name = self.cur
                self.expect("Identifier")
                left = self.call(name, [left])
            else:
                if previous == "??" and op != "??":
                    raise self.fail(f"Operator ({op}) and coalesce expressions (??) cannot be mixed. Wrap either "
                                    "by parentheses.", op_token)
                if op in COMPARISONS:
                    left = self.comparison(left, op_token, BINARY[op][0])
                else:
                    prec, assoc = BINARY[op]
                    right = self.expression(prec + 1 if assoc == "L" else prec)
                    left = self.node(Binary(op, left, right), op_token)
                    if negated:
                        left = self.node(Unary("not", left), op_token)
            previous = op
        if precedence == 0:
            left = self.conditional(left)
        return left

    def comparison(self, left: Node, token: Token, precedence: int) -> Node:
        root: Node | None = None
        while True:
            right = self.expression(precedence + 1)
            cmp = self.node(Binary(token.value, left, right), token)
            root = cmp if root is None else self.node(Binary("&&", root, cmp), token)
            left, token = right, self.cur
            if not (token.kind == "Operator" and token.value in COMPARISONS):
                return root
            self.advance()

    def conditional(self, node: Node) -> Node:
        while self.is_("Operator", "?"):
            token = self.cur
            self.advance()
            if not self.is_("Operator", ":"):
                yes = self.expression(0)
                self.expect("Operator", ":")
                no = self.expression(0)
            else:
                self.advance()
                yes, no = node, self.expression(0)
            node = self.node(Conditional(node, yes, no), token)
        return node

    def primary(self) -> Node:
        token = self.cur
        if token.kind == "Operator" and token.value in UNARY:
            self.advance()
            inner = self.expression(UNARY[token.value])
            return self.postfix(self.node(Unary(token.value, inner), token))
        if self.is_("Bracket", "("):
            self.advance()
            inner = self.expression(0)
            if self.is_("Operator", ";"):
                raise Unsupported("a sequence of expressions separated by ';'")
            self.expect("Bracket", ")")
            return self.postfix(inner)
        if self.depth > 0 and token.kind == "Operator" and token.value in ("#", "."):
            name = ""
            if token.value == "#":
                self.advance()
                if self.cur.kind == "Identifier":
                    name = self.cur.value
                    self.advance()
            return self.postfix(self.node(Pointer(name), token))
        if self.is_("Operator", "::"):
            raise Unsupported("a '::' call")
        return self.secondary()

    def secondary(self) -> Node:
        token = self.cur
        node: Node
        if token.kind == "Identifier":
            self.advance()
            if token.value in ("true", "false"):
                return self.node(Literal(token.value == "true"), token)
            if token.value == "nil":
                return self.node(Nil(), token)
            if token.value == "$env":
                raise Unsupported("$env")
            node = self.call(token, []) if self.is_("Bracket", "(") else self.node(Ident(token.value), token)
        elif token.kind == "Number":
            self.advance()
            return self.node(Literal(self.number(token)), token)
        elif token.kind == "String":
            self.advance()
            node = self.node(Literal(token.value), token)
        elif self.is_("Bracket", "["):
            node = self.array(token)
        elif self.is_("Bracket", "{"):
            node = self.map(token)
        else:
            raise self.fail(f"unexpected token {token}")
        return self.postfix(node)

    def number(self, token: Token) -> int | float:
        value = token.value.replace("_", "")
        lower = value.lower()
        try:
            if lower.startswith(("0x", "0b", "0o")):
                number: int | float = int(value, 0)
            elif "." in lower or "e" in lower:
                number = float(value)
            else:
                number = int(value, 10)
        except ValueError as err:
            raise self.fail(f"invalid number literal: {token.value}", token) from err
        if isinstance(number, int) and number > (1 << 63) - 1:
            raise self.fail("integer literal is too large", token)
        if isinstance(number, float) and number == float("inf"):
            raise self.fail(f"invalid float literal: strconv.ParseFloat: parsing {value!r}: value out of range")
        return number

    def call(self, token: Token, args: list[Node]) -> Node:
        name = token.value
        overridden = name in self.overridden
        if name in PREDICATES and not overridden:
            self.expect("Bracket", "(")
            kinds = PREDICATES[name][len(args):]
            for i, kind in enumerate(kinds):
                if self.is_("Bracket", ")"):
                    if kind.endswith("?"):
                        break
                    raise self.fail(f"expected at least {len(kinds)} arguments")
                if i > 0:
                    self.expect("Operator", ",")
                args.append(self.predicate() if kind.startswith("p") else self.expression(0))
            if self.is_("Operator", ","):
                self.advance()
            self.expect("Bracket", ")")
            return self.node(Builtin(name, args), token)
        if name in BUILTINS and not overridden:
            return self.node(Builtin(name, self.arguments(args)), token)
        callee = self.node(Ident(name), token)
        return self.node(Call(callee, self.arguments(args)), token)

    def arguments(self, args: list[Node]) -> list[Node]:
        offset = len(args)
        self.expect("Bracket", "(")
        while not self.is_("Bracket", ")"):
            if len(args) > offset:
                self.expect("Operator", ",")
            if self.is_("Bracket", ")"):
                break
            args.append(self.expression(0))
        self.expect("Bracket", ")")
        return args

    def predicate(self) -> Node:
        token = self.cur
        braces = self.is_("Bracket", "{")
        if braces:
            self.advance()
        self.depth += 1
        inner = self.expression(0)
        if self.is_("Operator", ";"):
            raise (Unsupported("a sequence of expressions separated by ';'") if braces
                   else self.fail("wrap predicate with brackets { and }"))
        self.depth -= 1
        if braces:
            self.expect("Bracket", "}")
        return self.node(Predicate(inner), token)

    def array(self, token: Token) -> Node:
        items: list[Node] = []
        self.expect("Bracket", "[")
        while not self.is_("Bracket", "]"):
            if items:
                self.expect("Operator", ",")
                if self.is_("Bracket", "]"):
                    break
            items.append(self.expression(0))
        self.expect("Bracket", "]")
        return self.node(Array(items), token)

    def map(self, token: Token) -> Node:
        pairs: list[tuple[Node, Node]] = []
        self.expect("Bracket", "{")
        while not self.is_("Bracket", "}"):
            if pairs:
                self.expect("Operator", ",")
                if self.is_("Bracket", "}"):
                    break
                if self.is_("Operator", ","):
                    raise self.fail(f"unexpected token {self.cur}")
            key: Node
            if self.cur.kind in ("Number", "String", "Identifier"):
                key = self.node(Literal(self.cur.value), self.cur)
                self.advance()
            elif self.is_("Bracket", "("):
                key = self.expression(0)
            else:
                raise self.fail("a map key must be a quoted string, a number, a identifier, or an expression "
                                f"enclosed in parentheses (unexpected token {self.cur})")
            self.expect("Operator", ":")
            pairs.append((key, self.expression(0)))
        self.expect("Bracket", "}")
        return self.node(MapLit(pairs), token)

    def postfix(self, node: Node) -> Node:
        while self.cur.kind in ("Operator", "Bracket"):
            token = self.cur
            optional = token.value == "?."
            if token.value in (".", "?."):
                self.advance()
                if optional and self.is_("Bracket", "["):
                    node = self.index(node, self.cur, optional=True)
                    continue
                prop = self.cur
                self.advance()
                if prop.kind != "Identifier" and not (prop.kind == "Operator" and _valid_identifier(prop.value)):
                    raise self.fail("expected name", prop)
                chained = isinstance(node, Chain)
                base = node.node if isinstance(node, Chain) else node
                member = self.node(Member(base, self.node(Literal(prop.value), prop), optional), prop)
                if self.is_("Bracket", "("):
                    member.method = True
                    node = self.node(Call(member, self.arguments([])), prop)
                else:
                    node = member
                if chained or optional:
                    node = self.node(Chain(node), prop)
            elif token.value == "[":
                node = self.index(node, token, optional=False)
            else:
                break
        return node

    def index(self, node: Node, token: Token, optional: bool) -> Node:
        self.advance()
        if self.is_("Operator", ":"):
            self.advance()
            stop = None if self.is_("Bracket", "]") else self.expression(0)
            self.expect("Bracket", "]")
            return self.node(Slice(node, None, stop), token)
        start = self.expression(0)
        if self.is_("Operator", ":"):
            self.advance()
            stop = None if self.is_("Bracket", "]") else self.expression(0)
            self.expect("Bracket", "]")
            return self.node(Slice(node, start, stop), token)
        member: Node = self.node(Member(node, start, optional), token)
        if optional:
            member = self.node(Chain(member), token)
        self.expect("Bracket", "]")
        return member


def _valid_identifier(word: str) -> bool:
    return bool(word) and is_letter(word[0]) and all(is_alnum(c) for c in word[1:])


def parse(text: str, overridden: frozenset[str] = frozenset()) -> Node:
    """The tree of an expression; `overridden` are environment names that shadow expr-lang's builtins."""
    return Parser(text, overridden).parse()
