"""`when` as Argo evaluates it with govaluate; expectations come from govaluate's and Argo's own tests, cited."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.local.lang.errors import GovaluateError, Unsupported
from workflows.local.lang.govaluate import parse, should_execute
from workflows.local.lang.govaluate_stages import evaluate

# argo-workflows v4.1.2 workflow/controller/when_test.go TestShouldExecute
TRUE = ["foo == foo", "'ref/branch/master' == 'ref/branch/master'", "foo != bar", "1 == 1", "1 != 2", "1 < 2",
        "1 <= 1", "1/2 == 0.5", "a < b", "(foo == bar) || (foo == foo)", "(1 > 0) && (1 < 2)",
        "Error in (Failed, Error)", "!(Succeeded in (Failed, Error))", "true == true"]
FALSE = ["foo != foo", "'ref/branch/master' != 'ref/branch/master'", "foo == bar", "1 != 1", "1 == 2", "1 > 2",
         "1 <= 0", "1/2 != 0.5", "a > b", "(foo == bar) || (bar == foo)", "(1 > 0) && (11 < 2)",
         "Succeeded in (Failed, Error)", "!(Error in (Failed, Error))", "false == true"]


@pytest.mark.parametrize("when", TRUE)
def test_when_runs_the_step_as_argo_does(when: str) -> None:
    assert should_execute(when) is True


@pytest.mark.parametrize("when", FALSE)
def test_when_skips_the_step_as_argo_does(when: str) -> None:
    assert should_execute(when) is False


def test_a_bare_word_is_a_string_as_in_the_coin_flip_example() -> None:
    # issue 13: `{{tasks.flip.outputs.result}} == heads` after substitution; Argo turns variables into strings
    assert should_execute("heads == heads") is True
    assert should_execute("tails == heads") is False


# Knetic/govaluate 7625b7f8c03d evaluation_test.go TestNoParameterEvaluation: input and expected value.
@pytest.mark.parametrize(
    ("expression", "want"),
    [("51 + 49", 100.0), ("100 - 51", 49.0), ("100 & 50", 32.0), ("100 | 50", 118.0), ("100 ^ 50", 86.0),
     ("2 << 1", 4.0), ("2 >> 1", 1.0), ("~10", -11.0), ("5 * 20", 100.0), ("100 / 20", 5.0), ("101 % 2", 1.0),
     ("10 ** 2", 100.0), ("20 & 30 & 50", 16.0), ("20 * 5 - 49", 51.0), ("50 + (5 * (15 - 5))", 100.0),
     ("100 ^ (23 * (2 | 5))", 197.0), ("5 + 10 * 2", 25.0), ("10 * 10 * 10 + 1 * 10 * 10", 1100.0),
     ("1 + 101 % 2 * 5", 6.0), ("1 + 5 ** 3 % 2 * 5", 6.0), ("50 << 1 & 90", 64.0), ("90 & 50 << 1", 64.0),
     ("90 + 50 << 1 * 5", 4480.0), ("1 - 2 - 4 - 8", -13.0), ("1 * 4 / 2 * 8", 16.0),
     ("true ?? true ? 100 + 200 : 400", 300.0), ("'ab' < 'abc'", True), ("'aba' >= 'abc'", False),
     ("!true == false", True), ("10 * -10", -100.0), ("true ? 10", 10.0), ("false ? 10", None),
     ("1 > 5 ? 35.50", None), ("true ? 35.50 > 10", True), ("false ? 35.50 : 50", 50.0),
     ("true ? 1 : 5 > 10", 1.0), ("true ? (false ? 1 : (false ? 2 : 3)) : (false ? 4 : 5)", 3.0), ("1 ?? 2", 1.0),
     ("1 in (1, 2, 3)", True), ("true && true || true && false", True), ("false || true && true || false", True),
     ("(2 + 2) + 2 == 6", True)],
)
def test_govaluate_gives_what_its_own_tests_expect(expression: str, want: Any) -> None:
    assert evaluate(parse(expression)) == want


@pytest.mark.parametrize(
    ("when", "message"),
    # evaluationFailure_test.go and parsingFailure_test.go: the errors govaluate raises
    [("1 +", "Unexpected end of expression"), ("(1", "Unbalanced parenthesis"), ("'unclosed", "Unclosed string"),
     ("foo(1)", "Undefined function foo"), ("1 2", "Cannot transition token types"),
     ("foo - bar == 1", "cannot be used with the modifier '-'"), ("1 && true", "logical operator '&&'"),
     ("foo.bar == 1", "Unable to access unexported field 'bar'"), ("Foo.Bar == 1", "No parameter 'Foo' found"),
     ("1 ==- 1", "Invalid token"), ("'a' =~ '('", "error parsing regexp")],
)
def test_when_errors_as_argo_reports_them(when: str, message: str) -> None:
    with pytest.raises(GovaluateError, match=message):
        should_execute(when)


def test_a_result_other_than_true_or_false_is_an_error() -> None:
    with pytest.raises(GovaluateError, match="Expected boolean evaluation"):
        should_execute("1 + 1")
    assert should_execute("") is True  # steps.go shouldExecute: an empty when runs


def test_regex_matches_as_go_does() -> None:
    assert should_execute("'hello-world' =~ '^hello-[a-z]+$'") is True
    assert should_execute("'hello\n' =~ '^hello$'") is False  # Go's $ is the end of the text
    assert should_execute("abc !~ b") is False
    assert should_execute("1 == 1 == 1") is False  # (1 == 1) == 1: true is not the number 1


def test_a_quoted_date_is_refused() -> None:
    # govaluate's tryParseTime turns such a string into a Unix time in the controller's time zone
    with pytest.raises(Unsupported, match="date"):
        should_execute("'2024-01-01' == '2024-01-01'")
