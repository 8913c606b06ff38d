"""Go's regexp (RE2 syntax, regexp/syntax) compiled to a Python pattern that matches the same texts.

Go refuses what Python takes (lookarounds, backreferences, possessive quantifiers, `\\Z`): that is an error here
too, as Go's regexp.Compile raises it. Go's \\d, \\w, \\s and \\b are ASCII, `$` is the end of the text, `{,n}` is
literal text; they are translated. What has no faithful translation (Unicode classes \\p{..}, the m and U flags,
flags set in the middle of a pattern, \\Q..\\E) is refused with `Unsupported`.
"""

from __future__ import annotations

import functools
import re

from workflows.local.lang.errors import LangError, Unsupported

_WORD = "0-9A-Za-z_"
_CLASSES = {"d": "0-9", "w": _WORD, "s": "\\t\\n\\f\\r "}
_POSIX = {"alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
          "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
          "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": _WORD, "xdigit": "0-9A-Fa-f"}
_BOUNDARY = f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))"
_NOT_BOUNDARY = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_SIMPLE = {"a": "\\x07", "f": "\\f", "t": "\\t", "n": "\\n", "r": "\\r", "v": "\\v"}
MAX_REPEAT = 1000


class RegexpError(LangError):
    """Go's regexp.Compile refuses the pattern: `error parsing regexp: ...`."""


def _fail(what: str, pattern: str) -> RegexpError:
    return RegexpError(f"error parsing regexp: {what}: `{pattern}`")


@functools.lru_cache(maxsize=256)
def compile_go(pattern: str) -> re.Pattern[str]:
    """regexp.Compile(pattern), as a Python pattern; RegexpError where Go refuses it."""
    out: list[str] = []
    i, n, depth, quantifiable = 0, len(pattern), 0, False
    flags = ""
    lead = re.match(r"\(\?([imsU]+)\)", pattern)
    if lead:
        flags, i = lead.group(1), lead.end()
    if set(flags) & set("mU"):
        raise Unsupported(f"the regexp flag(s) {''.join(sorted(set(flags) & set('mU')))} in `{pattern}`")
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
            quantifiable = True
            continue
        if c == "[":
            text, i = _class(pattern, i)
            out.append(text)
            quantifiable = True
            continue
        if c == "(":
            if pattern.startswith("(?", i):
                m = re.match(r"\(\?(?:P?<([A-Za-z0-9_]+)>|([imsU]*)(?:-([imsU]*))?:)", pattern[i:])
                if not m:
                    if re.match(r"\(\?[imsU-]*\)", pattern[i:]):
                        raise Unsupported(f"regexp flags set inside the pattern `{pattern}`")
                    raise _fail("invalid or unsupported Perl syntax", pattern[i:i + 3])
                if m.group(1) is not None:
                    out.append(f"(?P<{m.group(1)}>")
                else:
                    on, off = m.group(2) or "", m.group(3) or ""
                    if set(on + off) & set("mU"):
                        raise Unsupported(f"the regexp flags m and U in `{pattern}`")
                    out.append(f"(?{on}{'-' + off if off else ''}:" if on or off else "(?:")
                i += m.end()
            else:
                out.append("(")
                i += 1
            depth += 1
            quantifiable = False
            continue
        if c == ")":
            if depth == 0:
                raise _fail("unexpected )", pattern)
            depth -= 1
            out.append(")")
            i += 1
            quantifiable = True
            continue
        if c in "*+?{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:]) if c == "{" else None
            if c == "{" and not m:
                out.append("\\{")
                i += 1
                quantifiable = True
                continue
            if not quantifiable:
                raise _fail("missing argument to repetition operator", pattern[i:i + 1])
            if m:
                low, high = int(m.group(1)), int(m.group(3)) if m.group(3) else None
                if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
                    raise _fail("invalid repeat count", m.group(0))
            token = m.group(0) if m else c
            i += len(token)
            if pattern.startswith("?", i):
                token += "?"
                i += 1
            if i < n and pattern[i] in "*+?" or (i < n and pattern[i] == "{" and re.match(r"\{\d+(,\d*)?\}",
                                                                                        pattern[i:])):
                raise _fail("invalid nested repetition operator", token + pattern[i])
            out.append(token)
            quantifiable = False
            continue
        if c == "$":
            out.append("\\Z")
        elif c in "^.|":
            out.append(c)
        else:
            out.append(re.escape(c))
        quantifiable = c != "|"
        i += 1
    if depth:
        raise _fail("missing closing )", pattern)
    body = "".join(out)
    try:
        return re.compile(("(?" + flags + ")" if flags else "") + body)
    except re.error as err:  # Go took it (or the check above would have said why not): no faithful translation
        raise Unsupported(f"the regexp `{pattern}` ({err})") from err


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise _fail("trailing backslash at end of expression", "")
    e = pattern[i + 1]
    if e in _CLASSES or e in _CLASSES.keys() | {k.upper() for k in _CLASSES}:
        body = _CLASSES[e.lower()]
        if in_class:
            if e.isupper():
                raise Unsupported(f"a negated class \\{e} inside [...] in `{pattern}`")
            return body, i + 2
        return (f"[^{body}]" if e.isupper() else f"[{body}]"), i + 2
    if e in _SIMPLE:
        return _SIMPLE[e], i + 2
    if not in_class and e in "bBAz":
        return {"b": _BOUNDARY, "B": _NOT_BOUNDARY, "A": "\\A", "z": "\\Z"}[e], i + 2
    if e in "01234567":
        m = re.match(r"[0-7]{1,3}", pattern[i + 1:])
        assert m
        if e != "0" and len(m.group(0)) == 1:
            raise _fail("invalid escape sequence", pattern[i:i + 2])
        return re.escape(chr(int(m.group(0), 8))), i + 1 + len(m.group(0))
    if e == "x":
        m = re.match(r"x(?:\{([0-9A-Fa-f]{1,8})\}|([0-9A-Fa-f]{2}))", pattern[i + 1:])
        if not m:
            raise _fail("invalid escape sequence", pattern[i:i + 4])
        code = int(m.group(1) or m.group(2), 16)
        if code > 0x10FFFF:
            raise _fail("invalid escape sequence", pattern[i:i + 1 + len(m.group(0))])
        return re.escape(chr(code)), i + 1 + len(m.group(0))
    if e in "pPQEC":
        raise Unsupported(f"the regexp escape \\{e} in `{pattern}`")
    if e.isascii() and not e.isalnum():
        return re.escape(e), i + 2
    raise _fail("invalid escape sequence", pattern[i:i + 2])


def _class(pattern: str, i: int) -> tuple[str, int]:
    out, j = ["["], i + 1
    if pattern.startswith("^", j):
        out.append("^")
        j += 1
    first = True
    while True:
        if j >= len(pattern):
            raise _fail("missing closing ]", pattern[i:])
        c = pattern[j]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), j + 1
        first = False
        posix = re.match(r"\[:(\^?)([a-z]+):\]", pattern[j:])
        if posix:
            if posix.group(2) not in _POSIX:
                raise _fail("invalid character class range", posix.group(0))
            if posix.group(1):
                raise Unsupported(f"a negated POSIX class {posix.group(0)} in `{pattern}`")
            out.append(_POSIX[posix.group(2)])
            j += posix.end()
        elif c == "\\":
            text, j = _escape(pattern, j, in_class=True)
            out.append(text)
        elif c == "-" and out[-1] not in ("[", "^") and j + 1 < len(pattern) and pattern[j + 1] != "]":
            out.append("-")
            j += 1
        else:
            out.append(re.escape(c) if c in "[]\\^-&~|" else c)
            j += 1
