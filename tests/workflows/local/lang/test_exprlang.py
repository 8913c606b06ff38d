"""expr-lang as Argo evaluates `{{=...}}`: each expected value comes from the Go sources' own tests, cited."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.local.lang.errors import ExprCompileError, ExprRuntimeError, ExprSyntaxError, LangError, Unsupported
from workflows.local.lang.exprlang import (
    argo_env,
    compile_expr,
    eval_bool,
    expand,
    replace_expression,
    template_text,
)
from workflows.local.lang.gotypes import IntList


def run(text: str, env: dict[str, Any] | None = None) -> Any:
    return compile_expr(text).run(env or {})


# expr-lang/expr v1.17.8 expr_test.go TestExpr: the expression and the value expr.Run returns.
@pytest.mark.parametrize(
    ("code", "want"),
    [
        ("1", 1), ("-.5", -0.5), ("true && false || false", False), ('"a" != "b"', True),
        ('"a" != "b" || 1 == 2', True), ("2 + 2 == 4", True), ("8 % 3", 2), ("2 ** 8", 256.0), ("2 ^ 8", 256.0),
        ("-(2-5)**3-2/(+4-3)+-2", 23.0), ('"hello" + " " + "world"', "hello world"),
        ("0 in -1..1 and 1 in 1..1", True), ("1 in [1.5] || 1 not in [1]", False), ("-1 not in [1]", True),
        ("'foo' + 'bar' not matches 'foobar'", False), ('"foobar" contains "bar"', True),
        ('"foobar" startsWith "foo"', True), ('"foobar" endsWith "bar"', True), ("(0..10)[5]", 5),
        ("len([1, 2, 3])", 3), ('len("hello, world")', 12), ("len('北京')", 2), ("len({a: 1, b: 2, c: 2})", 3),
        ("max([1, 2, 3])", 3), ("max(1, 2, 3)", 3), ("min([1, 2, 3])", 1), ("min(1, 2, 3)", 1),
        ("{foo: 0, bar: 1}", {"foo": 0, "bar": 1}), ("(true ? 0+1 : 2+3) + (false ? -1 : -2)", -1),
        ("filter(1..9, {# > 7})", [8, 9]), ("map(1..3, {# * #})", [1, 4, 9]), ("all(1..3, {# > 0})", True),
        ("count(1..30, {# % 3 == 0})", 10), ("count([true, true, false])", 2), ('"a" < "b"', True),
        ("ArrayOfInt[1]", 2), ("ArrayOfInt[-1]", 5), ("ArrayOfInt[1:4]", [2, 3, 4]), ("ArrayOfInt[-4:-1]", [2, 3, 4]),
        ("ArrayOfInt[:3]", [1, 2, 3]), ("ArrayOfInt[3:]", [4, 5]), ("ArrayOfInt[:] == ArrayOfInt", True),
        ("4 in 5..1", False), ("4..0", []), ('0 == nil || "str" == nil || true == nil', False),
        ("map(filter(ArrayOfInt, # >= 3), # + 1)", [4, 5, 6]), ("1 /* one */ + 2 // two", 3),
        ("len(filter(1..99, # % 7 == 0))", 14), ("findLast(1..9, # % 2 == 0)", 8),
        ("findLastIndex(1..9, # % 2 == 0)", 7), ("filter(1..9, # % 2 == 0)[-1]", 8),
        ("last(filter(1..9, # % 2 == 0))", 8), ("map(filter(1..9, # % 2 == 0), # * 2)", [4, 8, 12, 16]),
        ("first(map(filter(1..9, # % 2 == 0), # * 2))", 4), ("len(filter(map(1..9, # * 2), # % 2 == 0))", 9),
        ("2^3 == 8", True), ("4/2 == 2", True), (".5 in 0..1", False), (".5 in ArrayOfInt", False),
        ("bitnot(10)", -11), ("bitxor(15, 32)", 47), ("bitand(90, 34)", 2), ("bitnand(35, 9)", 34),
        ("bitor(10, 5)", 15), ("bitshr(7, 2)", 1), ("bitshl(7, 2)", 28), ("bitushr(-100, 5)", 576460752303423484),
        ('"hello"[1:3]', "el"), ("[1, 2, 3]?.[0]", 1), ("[[1, 2], 3, 4]?.[0]?.[1]", 2), ("[nil, 3, 4]?.[0]?.[1]", None),
        ("1 > 2 < 3", False), ("1 < 2 < 3", True), ("1 < 2 < 3 > 4", False), ("1 < 2 < 3 > 2", True),
        ("1 < 2 < 3 == true", True),
    ],
)
def test_expr_lang_gives_what_its_own_tests_expect(code: str, want: Any) -> None:
    assert run(code, {"ArrayOfInt": IntList([1, 2, 3, 4, 5])}) == want


# expr_test.go TestExpr has these too; they are expr-lang syntax the local runner refuses instead of evaluating.
@pytest.mark.parametrize(
    "code",
    ["let x = 1; x + 2", "if 1 > 2 { 333 * 2 + 1 } else { 444 }", "1; 2; 3", "map(1..3, let x = #; x)",
     "now()", "duration('1h')", "b'abc'", "$env.x", "groupBy([1], #)", "sprig.now()",
     "sprig.uuidv4()", "sprig.env('HOME')"],
)
def test_constructs_not_evaluated_locally_are_refused_before_running(code: str) -> None:
    with pytest.raises(Unsupported):
        compile_expr(code)


# argo-workflows v4.1.2 util/template/replace_test.go TestReplace "Expression" and TestReplaceStringWithExpression.
@pytest.mark.parametrize(
    ("expression", "variables", "want"),
    [
        ("foo", {"foo": "bar"}, "bar"),
        ("sprig.dig('status', nil, workflow)", {"workflow.status": "Succeeded"}, "Succeeded"),
        ('workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"', {"workflow.status": "Succeeded"}, "SUCCESSFUL"),
        ('workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"', {"workflow.status": "Failed"}, "FAILED"),
        ('workflow.failures == "{\\"foo\\":\\"bar\\"}" ? "SUCCESSFUL" : "FAILED"',
         {"workflow.failures": '{"foo":"bar"}'}, "SUCCESSFUL"),
        (" sprig.trunc(5, inputs.parameters.message) ", {"inputs.parameters.message": "hello world"}, "hello"),
        (" sprig.trunc(-5, inputs.parameters.message) ", {"inputs.parameters.message": "hello world"}, "world"),
    ],
)
def test_template_expression_becomes_argos_text(expression: str, variables: dict[str, Any], want: str) -> None:
    assert replace_expression(expression, variables) == want


def test_missing_variable_fails_a_final_substitution_and_waits_otherwise() -> None:
    # replace_test.go TestReplace "Unresolved": Disallowed -> "failed to evaluate expression: foo is missing",
    # Allowed and AllowedRetries -> the tag is written back as it was.
    with pytest.raises(LangError, match="foo is missing"):
        replace_expression("foo", {})
    assert replace_expression("foo", {}, strict=None) is None
    assert replace_expression("sprig.int(retries)", {}, strict=None) is None


def test_nil_coalescing_falls_back_only_for_an_absent_value() -> None:
    # replace_test.go Test_ReplaceStrict_NilCoalescing and TestReplaceStrictAnyNilValues
    present, missing = {"item.name": "a", "item.optionalKey": "value"}, {"item.name": "b"}
    for code in ("item.optionalKey ?? 'fallback'", "item['optionalKey'] ?? 'fallback'",
                 "item?.optionalKey ?? 'fallback'"):
        assert replace_expression(code, present, ["item"]) == "value"
        assert replace_expression(code, missing, ["item"]) == "fallback"
    skipped = {"tasks.producer.outputs.parameters.msg": None, "tasks.other.outputs.parameters.msg": "real"}
    assert replace_expression("tasks.producer.outputs.parameters.msg ?? 'fallback'", skipped, ["tasks"]) == "fallback"
    assert replace_expression("tasks.other.outputs.parameters.msg ?? 'fallback'", skipped, ["tasks"]) == "real"
    empty = {"tasks.producer.outputs.parameters.msg": ""}
    assert replace_expression("tasks.producer.outputs.parameters.msg ?? 'fallback'", empty, ["tasks"]) == ""
    with pytest.raises(LangError):
        replace_expression("tasks.producer.outputs.parameters.msg", skipped, ["tasks"])


@pytest.mark.parametrize(
    ("code", "want"),
    # expression_template_test.go Test_getIdentifiers
    [("item.requiredKey", ["item", "item.requiredKey"]), ("item.optionalKey ?? 'fallback'", ["item"]),
     ("item['optionalKey'] ?? ''", ["item"]), ("item?.optionalKey", ["item"]), ("item.a?.b", ["item"]),
     ("item.requiredKey + (item.optionalKey ?? 'x')", ["item", "item.requiredKey"]),
     ("tasks.a.outputs.result ?? 'default'", ["tasks"])],
)
def test_required_names_are_listed_as_argo_lists_them(code: str, want: list[str]) -> None:
    assert sorted(compile_expr(code).identifiers()) == sorted(want)


def test_parameters_are_strings_until_as_int_converts_them() -> None:
    env = argo_env({"inputs.parameters.x": "41", "retries": "3"})
    assert run("asInt(inputs.parameters.x) + 1", env) == 42
    assert run("asFloat(inputs.parameters.x) / 2", env) == 20.5
    with pytest.raises(ExprRuntimeError, match="invalid operation: string \\+ int"):
        run("inputs.parameters.x + 1", env)
    # A top-level string is typed when compiling (conf/env.go): comparing it with a number does not compile.
    with pytest.raises(ExprCompileError, match="mismatched types string and int"):
        run("retries == 1", env)
    assert run("inputs.parameters.x == 41", env) is False  # below the first level the type is unknown


# argo-workflows v4.1.2 util/expr/argoexpr/eval_test.go TestEvalBool
@pytest.mark.parametrize(
    ("text", "env", "want"),
    [(" FOO == 1 ", {"FOO": 2}, False), (" FOO == 1 ", {"FOO": 1}, True), ("split == 1", {"split": 1}, True),
     ("join == 1", {"join": 1}, True)],
)
def test_eval_bool_as_argoexpr(text: str, env: dict[str, Any], want: bool) -> None:
    assert eval_bool(text, env) is want


def test_eval_bool_errors_as_argoexpr() -> None:
    with pytest.raises(ExprSyntaxError):
        eval_bool("invalid expression", {})
    with pytest.raises(ExprCompileError, match="unknown name null"):
        eval_bool('steps["prepare"].outputs != null', {"steps": {"prepare": {"outputs": "msg"}}})
    with pytest.raises(ExprRuntimeError, match="to bool"):
        eval_bool("1 + 1", {})


def test_expand_drops_a_parent_key_that_has_children() -> None:
    # argo-workflows v4.1.2 util/expand/expand_test.go TestExpand
    assert expand({"a.b": 1, "a.c.d": 2, "a": 3, "ab": 4, "abb": 5}) == {"a": {"b": 1, "c": {"d": 2}}, "ab": 4,
                                                                        "abb": 5}


@pytest.mark.parametrize(
    ("value", "text"),
    # util/template/expression_template.go expressionReplaceCore: strings as they are, the rest as json.Marshal
    # writes them (encoding/json: sorted keys, <>& escaped, floats without exponent below 1e21)
    [("a<b", "a<b"), (3, "3"), (1.0, "1"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"),
     (True, "true"), ([1, "x", None], '[1,"x",null]'), ({"b": 1, "a": "<"}, '{"a":"\\u003c","b":1}')],
)
def test_results_are_written_as_argo_writes_them(value: Any, text: str) -> None:
    assert template_text(value) == text


@pytest.mark.parametrize(
    ("code", "want"),
    # expr-lang v1.17.8 optimizer/fold.go folds `x && true` to `x`; optimizer/in_array.go looks a value up in a
    # constant list of strings as a map key; vm/runtime/helpers Equal compares numbers across types.
    [("x.y && true", "a"), ("x.y && false", False), ("nil in ['', 'b']", True), ("1 == 1.0", True),
     ("x.y == 1", False), ("[1, 2] == [1, 2.0]", True), ("9223372036854775807 + 1", -9223372036854775808),
     ("7 / 2", 3.5), ("-7 % 3", -1), ("x.z ?? 'd'", "d"), ("x?.z?.w", None), ("'é'[0:1] == 'x'", None)],
)
def test_optimizer_and_runtime_details_match_go(code: str, want: Any) -> None:
    env = argo_env({"x.y": "a"})
    if code.startswith("'é'"):
        with pytest.raises(Unsupported):
            run(code, env)
        return
    assert run(code, env) == want


def test_go_panics_are_errors() -> None:
    with pytest.raises(ExprCompileError, match="integer divide by zero"):  # optimizer/fold.go, when compiling
        run("1 % 0")
    for code, message in [("x.n % 0", "integer divide by zero"), ("[1][x.n + 1]", "index out of range"),
                          ("!x.y", "not bool"), ("x.n in ['a']", "not assignable")]:
        with pytest.raises(ExprRuntimeError, match=message):
            run(code, {"x": {"y": "a", "n": 1}})


def test_untyped_calls_are_not_checked_when_compiling() -> None:
    # expr-lang v1.17.8 checker/checker.go callNode returns before visiting the arguments of a call whose callee's
    # type is unknown (every sprig.NAME): their errors, and unknown names in them (nil), appear only when running
    env = argo_env({"p.s": "hello"})
    with pytest.raises(ExprRuntimeError, match="cannot fetch l from <nil>"):
        run("sprig.toString(q.l)", env)
    assert run("sprig.toString(q)", env) == "<nil>"  # sprig strval(nil) is fmt.Sprintf("%v", nil)
    with pytest.raises(ExprCompileError, match="unknown name q"):
        run("upper(q)", env)


def test_bytes_of_a_string_keep_their_go_type() -> None:
    # vm/runtime/runtime.go Fetch gives a uint8 for a string index; Negate keeps the operand's type
    assert run("-p.n[0]", argo_env({"p.n": "2"})) == 206
    assert run("p.n[0] + 1", argo_env({"p.n": "2"})) == 51


def test_nospace_reads_bytes_as_goutils_does() -> None:
    # Masterminds/goutils DeleteWhiteSpace (sprig's nospace) takes each byte as a rune
    env = argo_env({})
    assert run("sprig.nospace(' a\tb ')", env) == "ab"
    assert run("sprig.nospace('é à')", env) == "Ã©Ã"
