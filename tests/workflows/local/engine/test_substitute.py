"""`{{...}}`/`{{=...}}` substitution as Argo does it on a template's JSON text."""

from __future__ import annotations

import pytest

from workflows.local.engine.substitute import MissingVariable, SubstitutionError, replace_obj, replace_string


def test_values_are_json_escaped_into_the_document() -> None:
    out = replace_obj({"args": ["echo {{inputs.parameters.x}}"]}, {"inputs.parameters.x": 'a "b"\nc'}, None)
    assert out == {"args": ['echo a "b"\nc']}


def test_unknown_tags_stay_verbatim_when_allowed() -> None:
    assert replace_string("{{workflow.nope}} {{ workflow.name }}", {"workflow.name": "w"}, None) == \
        "{{workflow.nope}} w"


def test_a_strict_reference_not_yet_resolvable_requeues() -> None:
    with pytest.raises(MissingVariable):
        replace_string("{{steps.a.outputs.result}}", {}, ["steps", "tasks"])


def test_an_absent_optional_is_a_terminal_error() -> None:
    with pytest.raises(SubstitutionError, match="absent optional"):
        replace_string("{{tasks.a.outputs.parameters.p}}", {"tasks.a.outputs.parameters.p": None}, None)


def test_substitution_is_one_pass() -> None:
    assert replace_string("{{a}}", {"a": "{{b}}", "b": "no"}, None) == "{{b}}"


@pytest.mark.parametrize(("expression", "text"), [("1/2", "0.5"), ("3.0", "3"), ("'x' + 'y'", "xy"),
                                                   ("[2, 3]", "[2,3]"), ("asInt(inputs.parameters.n) + 1", "8")])
def test_expressions_are_marshalled_as_argo_does(expression: str, text: str) -> None:
    assert replace_string("{{=" + expression + "}}", {"inputs.parameters.n": "7"}, None) == text
