"""expr-lang's lexer and parser (github.com/expr-lang/expr v1.17.8, parser/lexer and parser/parser.go): text to a tree.

The tree keeps expr-lang's node kinds; what expr-lang parses but the local runner does not evaluate (`let`,
`if {} else {}`, `;` sequences, byte strings, `$env`, `::`) is refused here with `Unsupported`, naming it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from workflows.local.lang.errors import ExprSyntaxError, Unsupported

# parser/operator/operator.go: precedence and associativity ("R" for right).
BINARY = {"|": (0, "L"), "or": (10, "L"), "||": (10, "L"), "and": (15, "L"), "&&": (15, "L"),
          "==": (20, "L"), "!=": (20, "L"), "<": (20, "L"), ">": (20, "L"), ">=": (20, "L"), "<=": (20, "L"),
          "in": (20, "L"), "matches": (20, "L"), "contains": (20, "L"), "startsWith": (20, "L"),
          "endsWith": (20, "L"), "..": (25, "L"), "+": (30, "L"), "-": (30, "L"), "*": (60, "L"), "/": (60, "L"),
          "%": (60, "L"), "**": (100, "R"), "^": (100, "R"), "??": (500, "L")}
UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
COMPARISONS = ("<", ">", ">=", "<=")
NEGATABLE = ("contains", "matches", "startsWith", "endsWith", "in")
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
MAX_NODES = 10000  # conf.DefaultMaxNodes


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


# --- the lexer (parser/lexer) -----------------------------------------------------------------------------

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0")


def is_space(c: str) -> bool:
    """unicode.IsSpace."""
    return c in _GO_SPACE or (c > "\xff" and c.isspace())


def is_letter(c: str) -> bool:
    return c == "_" or c == "$" or unicodedata.category(c).startswith("L")


def is_alnum(c: str) -> bool:
    return is_letter(c) or unicodedata.category(c) == "Nd"


@dataclass(frozen=True)
class Token:
    kind: str  # Identifier Number String Bytes Operator Bracket EOF
    value: str
    pos: int

    def __str__(self) -> str:
        return self.kind if not self.value else f"{self.kind}({self.value!r})".replace("'", '"')


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
                   "'": "'", '"': '"', "`": "`", "?": "?"}


def unescape(body: str) -> str:
    """parser/lexer/utils.go unescape, on the text between the quotes."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("unable to unescape string, found '\\' as last character")
        e, i = body[i + 1], i + 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e == "u" and body.startswith("{", i):
            end = body.find("}", i)
            digits = body[i + 1:end] if end > 0 else ""
            if not 1 <= len(digits) <= 6 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("unable to unescape string")
            out.append(_rune(int(digits, 16)))
            i = end + 1
        elif e in "xXuU":
            n = {"x": 2, "X": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + n]
            if len(digits) < n or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("unable to unescape string")
            out.append(_rune(int(digits, 16)))
            i += n
        elif e in "0123":
            digits = body[i:i + 2]
            if len(digits) < 2 or any(d not in "01234567" for d in digits):
                raise ValueError("unable to unescape octal sequence in string")
            out.append(_rune(int(e + digits, 8)))
            i += 2
        else:
            raise ValueError("unable to unescape string")
    return "".join(out)


def _rune(code: int) -> str:
    if code > 0x10FFFF:
        raise ValueError("unable to unescape string")
    if 0xD800 <= code <= 0xDFFF:
        raise Unsupported(f"a string escape of the surrogate U+{code:04X} (Go writes it as U+FFFD)")
    return chr(code)


class Lexer:
    def __init__(self, text: str):
        self.text, self.i, self.tokens = text, 0, []  # type: ignore[var-annotated]

    def fail(self, message: str) -> ExprSyntaxError:
        return ExprSyntaxError(f"{message} (1:{self.i})")

    def peek(self, k: int = 0) -> str:
        return self.text[self.i + k] if self.i + k < len(self.text) else ""

    def emit(self, kind: str, value: str, start: int) -> None:
        self.tokens.append(Token(kind, value, start))

    def lex(self) -> list[Token]:
        text = self.text
        while self.i < len(text):
            start, c = self.i, text[self.i]
            self.i += 1
            if is_space(c):
                continue
            if c in "'\"":
                self.string(c, start)
            elif c == "`":
                end = start + 1
                while True:
                    end = text.find("`", end)
                    if end < 0:
                        raise self.fail("literal not terminated")
                    if text.startswith("``", end):
                        end += 2
                        continue
                    break
                self.emit("String", text[start + 1:end].replace("``", "`"), start)
                self.i = end + 1
            elif c in "bB" and self.peek() in ("'", '"'):
                raise Unsupported("a byte string literal (b'...')")
            elif c.isdigit() and c.isascii() or (c == "." and self.peek().isdigit() and self.peek().isascii()):
                self.i = start
                self.number()
            elif c == "?":
                if self.peek() in (".", "?"):
                    self.i += 1
                self.emit("Operator", text[start:self.i], start)
            elif c == "/" and self.peek() in "/*" and self.peek():
                if self.peek() == "/":
                    end = text.find("\n", self.i)
                    self.i = len(text) if end < 0 else end + 1
                else:
                    end = text.find("*/", self.i + 1)
                    if end < 0:
                        raise self.fail("unclosed comment")
                    self.i = end + 2
            elif c == "#":
                self.emit("Operator", "#", start)
                j = self.i
                while j < len(text) and is_alnum(text[j]):
                    j += 1
                if j > self.i:
                    self.emit("Identifier", text[self.i:j], self.i)
                    self.i = j
            elif c in "|:":
                if self.peek() == c:
                    self.i += 1
                self.emit("Operator", text[start:self.i], start)
            elif c in "([{)]}":
                self.emit("Bracket", c, start)
            elif c in ",;%+-^/":
                self.emit("Operator", c, start)
            elif c in "&!=*<>":
                if self.peek() and self.peek() in "&=*":
                    self.i += 1
                self.emit("Operator", text[start:self.i], start)
            elif c == ".":
                if self.peek() == ".":
                    self.i += 1
                self.emit("Operator", text[start:self.i], start)
            elif is_alnum(c):
                self.identifier(start)
            else:
                raise self.fail(f"unrecognized character: U+{ord(c):04X} {c!r}")
        self.emit("EOF", "", self.i)
        return self.tokens

    def string(self, quote: str, start: int) -> None:
        i = self.i
        while True:
            if i >= len(self.text) or self.text[i] == "\n":
                self.i = i
                raise self.fail("literal not terminated")
            if self.text[i] == "\\":
                i += 2
                continue
            if self.text[i] == quote:
                break
            i += 1
        try:
            value = unescape(self.text[start + 1:i])
        except ValueError as err:
            raise self.fail(str(err)) from err
        self.i = i + 1
        self.emit("String", value, start)

    def number(self) -> None:
        text, start, digits = self.text, self.i, "0123456789_"

        def accept(chars: str) -> bool:
            if self.peek() and self.peek() in chars:
                self.i += 1
                return True
            return False

        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        while accept(digits):
            pass
        end = self.i
        if accept("."):
            if self.peek() == ".":  # `1..2` is a range
                self.i = end
                self.emit("Number", text[start:self.i], start)
                return
            while accept(digits):
                pass
        if accept("eE"):
            accept("+-")
            while accept(digits):
                pass
        if self.peek() and is_alnum(self.peek()):
            self.i += 1
            raise self.fail(f"bad number syntax: {text[start:self.i]!r}")
        self.emit("Number", text[start:self.i], start)

    def identifier(self, start: int) -> None:
        text = self.text
        while self.i < len(text) and is_alnum(text[self.i]):
            self.i += 1
        word = text[start:self.i]
        if word == "not":
            self.emit("Operator", "not", start)
            j = self.i
            while j < len(text) and text[j] == " ":
                j += 1
            k = j
            while k < len(text) and is_alnum(text[k]):
                k += 1
            if text[j:k] in NEGATABLE:
                self.emit("Operator", text[j:k], j)
                self.i = k
        elif word in ("in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"):
            self.emit("Operator", word, start)
        else:
            self.emit("Identifier", word, start)


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
