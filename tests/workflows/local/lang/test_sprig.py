"""The sprig functions Argo exposes under `sprig.`: expectations from sprig v3.3.0's own tests, cited."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.local.lang.errors import ExprRuntimeError, Unsupported
from workflows.local.lang.exprlang import argo_env, compile_expr, template_text


def text(code: str, variables: dict[str, Any] | None = None) -> str:
    """What `{{=code}}` becomes in an Argo template."""
    return template_text(compile_expr(code).run(argo_env(variables or {})))


@pytest.mark.parametrize(
    ("code", "want"),
    [
        # strings_test.go TestSubstr, TestTrunc, TestQuote, TestSquote, TestCat, TestSplit, TestSplitn, TestJoin
        ("sprig.substr(0, 3, 'fooo')", "foo"), ("sprig.substr(0, 10, 'foo')", "foo"),
        ("sprig.trunc(3, 'foooooo')", "foo"), ("sprig.trunc(-3, 'baaaaaar')", "aar"),
        ("sprig.trunc(-999, 'baaaaaar')", "baaaaaar"), ("sprig.trunc(0, 'abc')", ""),
        ("sprig.quote('a', 'b', 'c')", '"a" "b" "c"'), ("sprig.quote('\"a\"', 'b', 'c')", '"\\"a\\"" "b" "c"'),
        ("sprig.quote(1, 2, 3)", '"1" "2" "3"'), ("sprig.squote('a', 'b', 'c')", "'a' 'b' 'c'"),
        ("sprig.squote(1, 2, 3)", "'1' '2' '3'"), ("sprig.cat('a', 'b', 'c')", "a b c"),
        ("sprig.split('$', 'foo$bar$baz')._0", "foo"), ("sprig.splitn('$', 2, 'foo$bar$baz')._1", "bar$baz"),
        ("sprig.join('-', sprig.tuple('a', 'b', 'c'))", "a-b-c"), ("sprig.join('-', sprig.tuple(1, 2, 3))", "1-2-3"),
        ("sprig.kindOf(sprig.toString(1))", "string"), ("sprig.kindOf(sprig.toStrings(sprig.list(1, 2, 3))[1])",
                                                       "string"),
        ("sprig.b64enc('coffee')", "Y29mZmVl"), ("sprig.b64dec('Y29mZmVl')", "coffee"),
        ("sprig.b32enc('coffee')", "MNXWMZTFMU======"), ("sprig.b32dec('MNXWMZTFMU======')", "coffee"),
        # numeric_test.go TestBiggest, TestMaxf, TestMin, TestMinf, TestAdd1, TestAdd1f, TestAdd, TestAddf, TestDiv,
        # TestDivf, TestMul, TestMulf, TestSub, TestSubf (a template's `x | f a b` is f(a, b, x))
        ("sprig.biggest(1, 2, 3, 345, 5, 6, 7)", "345"), ("sprig.maxf(1, 2, 3, 345.7, 5, 6, 7)", "345.7"),
        ("sprig.min(1, 2, 3, 345, 5, 6, 7)", "1"), ("sprig.minf(1.4, 2, 3, 345.6, 5, 6, 7)", "1.4"),
        ("sprig.add1(3)", "4"), ("sprig.add1f(3.4)", "4.4"), ("sprig.add(1, 2, 3)", "6"),
        ("sprig.addf(1.5, 2.2, 3)", "6.7"), ("sprig.div(5, 4)", "1"), ("sprig.divf(5, 4, 2)", "0.625"),
        ("sprig.mul('2', 3, '4', 1)", "24"), ("sprig.mulf('2.4', 10, '4', 1.2)", "115.2"), ("sprig.sub(14, 3)", "11"),
        ("sprig.subf(4.5, 1, 3)", "0.5"),
        # list_test.go TestPush, TestChunk, TestPrepend, TestFirst, TestLast
        ("len(sprig.append(sprig.tuple(1, 2, 3), 4))", "4"),
        ("sprig.join('-', sprig.append(sprig.tuple(1, 2, 3, 4), 5))", "1-2-3-4-5"),
        ("sprig.join('-', sprig.append(sprig.regexSplit('/', 'foo/bar/baz', -1), 'qux'))", "foo-bar-baz-qux"),
        ("len(sprig.chunk(3, sprig.tuple(1, 2, 3, 4, 5, 6, 7)))", "3"), ("len(sprig.chunk(3, sprig.tuple()))", "0"),
        ("sprig.join('|', map(sprig.chunk(3, sprig.tuple(1, 2, 3, 4, 5, 6, 7, 8)), sprig.join('-', #)))",
         "1-2-3|4-5-6|7-8"),
        ("sprig.join('-', sprig.prepend(sprig.tuple(1, 2, 3, 4), 0))", "0-1-2-3-4"),
        ("sprig.first(sprig.list(1, 2, 3))", "1"), ("sprig.first(sprig.regexSplit('/src/', 'foo/src/bar', -1))", "foo"),
        ("sprig.last(sprig.list(1, 2, 3))", "3"),
        # defaults_test.go TestDefault, TestEmpty
        ("sprig.default('foo', '')", "foo"), ("sprig.default('foo', 234)", "234"), ("sprig.default('foo', 2.34)",
                                                                                   "2.34"),
        ("sprig.empty(1)", "false"), ("sprig.empty(0)", "true"), ("sprig.empty('')", "true"),
        ("sprig.empty(sprig.list())", "true"), ("sprig.empty(false)", "true"),
        # regex_test.go TestRegexMatch, TestRegexFindAll, TestRegexFindl, TestRegexReplaceAll,
        # TestRegexReplaceAllLiteral, TestRegexSplit, TestRegexQuoteMeta
        ("sprig.regexMatch('[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\\\.[A-Za-z]{2,}', 'Test@Acme.Com')", "true"),
        ("sprig.regexMatch('[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\\\.[A-Za-z]{2,}', 'test@acme')", "false"),
        ("len(sprig.regexFindAll('a{2}', 'aa', -1))", "1"), ("len(sprig.regexFindAll('a{2}', 'aaaaaaaa', 1))", "1"),
        ("len(sprig.regexFindAll('a{2}', 'aaaa', -1))", "2"), ("len(sprig.regexFindAll('a{2}', 'none', -1))", "0"),
        ("sprig.regexFind('fo.?', 'foorbar')", "foo"), ("sprig.regexFind('fo.?', 'none')", ""),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', 'T')", "-T-T-"),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '$1')", "--xx-"),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '$1W')", "---"),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '${1}W')", "-W-xxW-"),
        ("sprig.regexReplaceAllLiteral('a(x*)b', '-ab-axxb-', '${1}')", "-${1}-${1}-"),
        ("len(sprig.regexSplit('a', 'banana', -1))", "4"), ("len(sprig.regexSplit('a', 'banana', 2))", "2"),
        ("len(sprig.regexSplit('z+', 'pizza', -1))", "2"), ("len(sprig.regexSplit('z+', 'pizza', 1))", "1"),
        ("sprig.regexQuoteMeta('1.2.3')", "1\\.2\\.3"),
    ],
)
def test_sprig_gives_what_its_own_tests_expect(code: str, want: str) -> None:
    assert text(code) == want


def test_sprig_keeps_go_types_and_reflect_conversions() -> None:
    # functions.go: add returns int64 and trunc takes (int, string); reflect's Call refuses an int64 for an int
    # (vm.go OpCall), and passes nil as the parameter's zero value
    assert text("sprig.add(1, 2) + 1") == "4"
    assert text("sprig.typeOf(sprig.add(1))") == "int64"
    with pytest.raises(ExprRuntimeError, match="reflect: Call using int64 as type int"):
        text("sprig.trunc(sprig.add(1, 2), 'hello')")
    with pytest.raises(ExprRuntimeError, match="reflect: Call using string as type int"):
        text("sprig.trunc('5', 'hello')")
    assert text("sprig.upper(nil)") == ""


def test_parameters_flow_through_sprig_as_strings() -> None:
    assert text("sprig.int64(inputs.parameters.n) + 1", {"inputs.parameters.n": "41"}) == "42"
    assert text("sprig.join(',', sprig.splitList(' ', inputs.parameters.s))", {"inputs.parameters.s": "a b c"}) \
        == "a,b,c"


def test_sprig_functions_with_no_faithful_local_value_are_refused() -> None:
    for code in ("sprig.now()", "sprig.randAlpha(5)", "sprig.uuidv4()", "sprig.semver('1.0.0')",
                 "sprig.merge({}, {})", "sprig.env('HOME')", "sprig.date('2006', 0)"):
        with pytest.raises(Unsupported, match="sprig"):
            compile_expr(code)
