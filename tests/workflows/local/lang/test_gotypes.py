"""Go's formatting, parsing and regexp behaviour the expression languages rely on (Go's standard library)."""

from __future__ import annotations

import pytest

from workflows.local.lang.errors import Unsupported
from workflows.local.lang.goregexp import RegexpError, compile_go
from workflows.local.lang.gotypes import fmt_v, parse_float, parse_int, to_json


@pytest.mark.parametrize(
    ("value", "printed"),
    # fmt's %v of a float64 is strconv 'g' with the shortest digits: an exponent from 1e+06 and below 1e-4
    # (strconv/ftoa.go: eprec is 6 for the shortest); lists and maps as fmt prints them (map keys sorted)
    [(123456.0, "123456"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (1e-5, "1e-05"),
     (1.5, "1.5"), (100.0, "100"), (None, "<nil>"), ([1, "a", None], "[1 a <nil>]"),
     ({"b": 1, "a": 2}, "map[a:2 b:1]")],
)
def test_values_print_as_fmt_prints_them(value: object, printed: str) -> None:
    assert fmt_v(value) == printed


@pytest.mark.parametrize(
    ("value", "encoded"),
    # encoding/json encode.go floatEncoder ('f' below 1e21, 'e' with e-09 cleaned to e-9) and its string escaping
    # (HTML characters, U+2028, \b and \f as Go 1.22+ writes them)
    [(1e20, "100000000000000000000"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.00001, "0.00001"),
     ("a\b\f<&\u2028\x01", '"a\\b\\f\\u003c\\u0026\\u2028\\u0001"'), ({"b": [1.0, True]}, '{"b":[1,true]}')],
)
def test_values_encode_as_encoding_json_does(value: object, encoded: str) -> None:
    assert to_json(value) == encoded


def test_numbers_parse_as_strconv_parses_them() -> None:
    assert parse_float("1_000.5") == 1000.5
    assert parse_float("0x1p-2") == 0.25
    for bad in (" 1", "1e400", "١", "0x10", "1__0"):
        with pytest.raises(ValueError):
            parse_float(bad)
    assert parse_int("+5") == 5
    assert parse_int("0x10", base=0) == 16 and parse_int("010", base=0) == 8 and parse_int("0b11", base=0) == 3
    for bad in ("1_0", " 5", "5.0", "9223372036854775808"):
        with pytest.raises(ValueError):
            parse_int(bad)


def test_regexps_match_as_go_matches() -> None:
    # RE2 (regexp/syntax): $ is the end of the text, \d \w \s are ASCII, POSIX classes, {,n} is literal
    assert compile_go("^abc$").search("abc\n") is None
    assert compile_go(r"\d+").fullmatch("١٢") is None
    assert compile_go("[[:alpha:]]+").fullmatch("abc")
    assert compile_go("a{,2}").fullmatch("a{,2}")
    assert compile_go(r"(?i)HEADS").search("heads")


@pytest.mark.parametrize("pattern", ["(?=a)", "(?<!a)", r"\1", "a**", "a*+", "(a", "a)", "[a"])
def test_regexps_go_refuses_are_errors(pattern: str) -> None:
    with pytest.raises(RegexpError, match="error parsing regexp"):
        compile_go(pattern)


@pytest.mark.parametrize("pattern", [r"\pL", "(?m)^a", "a(?i)b", r"\Qa\E"])
def test_regexps_with_no_faithful_translation_are_refused(pattern: str) -> None:
    with pytest.raises(Unsupported):
        compile_go(pattern)
