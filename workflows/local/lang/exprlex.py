"""expr-lang's lexer (parser/lexer, v1.17.8): text to tokens, string escapes as lexer/utils.go reads them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from workflows.local.lang.errors import ExprSyntaxError, Unsupported

NEGATABLE = ("contains", "matches", "startsWith", "endsWith", "in")
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


