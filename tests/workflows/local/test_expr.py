"""Argo's expression languages as the runner and the linter read them."""

from __future__ import annotations

import pytest

from workflows.local.expr import (
    ExpressionError,
    UnresolvedVariable,
    depends_expression,
    depends_tasks,
    evaluate_bool,
    evaluate_depends,
    find_variables,
    substitute,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true == true", True),
        ("false == true", False),
        ("'a' == 'a' && !(1 > 2)", True),
        ("\"x\" != 'x' || 2.5 >= 2", True),
        ("3 < 10", True),
        ("'10' < '9'", True),  # strings compare as strings
        ("1 == 1.0", True),
        ("'1' == 1", False),  # no coercion between strings and numbers
        ("-1 < 0", True),
        ("'abc' =~ '^a'", True),
        ("not (true and false) or false", True),
    ],
)
def test_when_expressions_evaluate_like_govaluate(text, expected):
    assert evaluate_bool(text) is expected


def test_retry_expression_reads_last_retry():
    last = {"lastRetry": {"exitCode": "3", "status": "Failed", "duration": "4", "message": ""}}
    assert evaluate_bool("asInt(lastRetry.exitCode) == 3", last)
    assert not evaluate_bool("asInt(lastRetry.exitCode) == 3 && lastRetry.status == 'Error'", last)


@pytest.mark.parametrize("text", ["yes == true", "1 <", "(1 == 1", "nope(1)", "'a' < 1", "1 == 1 2"])
def test_bad_expressions_are_errors_that_quote_them(text):
    with pytest.raises(ExpressionError, match="'"):
        evaluate_bool(text)


def test_depends_expands_bare_tasks_as_argo_does():
    assert depends_expression("a && b.Failed", None) == "(a.Succeeded || a.Skipped || a.Daemoned) && b.Failed"
    assert depends_expression(None, ["a"], {"a": {"failed": True}}) == \
        "(a.Succeeded || a.Skipped || a.Daemoned || a.Failed)"
    assert depends_tasks("train-1 && (gate.Failed || !x)", None) == ["train-1", "gate", "x"]


def test_depends_evaluates_on_task_phases():
    expression = depends_expression("train && (gate || gate.Failed)", None)
    assert evaluate_depends(expression, {"train": "Succeeded", "gate": "Failed"})
    assert not evaluate_depends(expression, {"train": "Omitted", "gate": "Succeeded"})
    assert evaluate_depends(depends_expression("a", None), {"a": "Skipped"})


def test_depends_rejects_unknown_results():
    with pytest.raises(ExpressionError, match="unknown result 'Succeded'"):
        depends_tasks("a.Succeded", None)


def test_substitute_names_the_unresolved_variable():
    assert find_variables("x {{ a.b }} {{c}}") == ["a.b", "c"]
    assert substitute("{{a}}-{{b}}", {"a": "1", "b": "2"}.get) == "1-2"
    with pytest.raises(UnresolvedVariable) as err:
        substitute("{{a}} {{nope}}", {"a": "1"}.get)
    assert str(err.value) == "unresolved variable {{nope}}"
