"""`{{...}}` and `{{=...}}` substitution as Argo v4.1.2 does it (util/template): on the JSON text of a template,
step, task or argument list, with fasttemplate's tag scanning, simple tags looked up by their trimmed text and
expression tags evaluated by expr-lang (workflows/local/lang).

    replace_obj(step, variables, strict=["steps", "tasks"])   # template.ReplaceStrictAny
    replace_obj(tmpl, variables, strict=None)                 # template.Replace(..., allowUnresolved=true)
    replace_obj(tmpl, variables, strict="all")                # template.Replace(..., allowUnresolved=false)

A value of None in `variables` is an absent optional (a skipped node's output without a default): a simple tag that
resolves to it is a terminal error. `MissingVariable` is the error Argo requeues on (a strict tag not resolved yet).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from workflows.local.lang.errors import LangError
from workflows.local.lang.exprlang import replace_expression
from workflows.local.lang.sprig import go_quote

Strict = Literal["all"] | Sequence[str] | None
PLACEHOLDER_ABSENT = "__argo__internal__absent-optional-argument__"


class SubstitutionError(LangError):
    """Substitution failed the way Argo fails a node (the message says why)."""


class MissingVariable(SubstitutionError):
    """A tag with a strict prefix is not resolvable yet: Argo requeues and tries again on a later pass."""


def to_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def replace_obj(obj: Any, variables: Mapping[str, Any], strict: Strict) -> Any:
    """The object after substitution of its JSON text (template.Replace / ReplaceStrictAny)."""
    text = replace_text(to_json(obj), variables, strict)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SubstitutionError("cannot finish template replacement because the result was invalid JSON") from err


def replace_string(text: str, variables: Mapping[str, Any], strict: Strict) -> str:
    """A string field substituted as Argo does it: marshalled to JSON, replaced, unmarshalled."""
    result = replace_obj(text, variables, strict)
    return str(result)


def _strict_regex(strict: Strict) -> re.Pattern[str] | None:
    if strict is None:
        return None
    if strict == "all":
        return re.compile(".*")
    if not strict:
        return None
    return re.compile("^((" + "|".join(re.escape(p) for p in strict) + r"))(\.|$)")


def replace_text(text: str, variables: Mapping[str, Any], strict: Strict) -> str:
    """fasttemplate.ExecuteFunc with Argo's tag function over a JSON document."""
    regex = _strict_regex(strict)
    allow_unresolved_artifacts = strict != "all"
    out: list[str] = []
    rest = text
    while True:
        start = rest.find("{{")
        if start < 0:
            out.append(rest)
            break
        out.append(rest[:start])
        rest = rest[start + 2:]
        end = rest.find("}}")
        if end < 0:
            raise SubstitutionError(f"cannot find end tag='}}}}' in the template starting from {rest[:40]!r}")
        tag, rest = rest[:end], rest[end + 2:]
        if tag.startswith("="):
            out.append(_expression(tag[1:], variables, regex, strict))
        else:
            out.append(_simple(tag, variables, regex, allow_unresolved_artifacts))
    return "".join(out)


def _escaped(value: str) -> str:
    return go_quote(value)[1:-1]


def _simple(tag: str, variables: Mapping[str, Any], regex: re.Pattern[str] | None, allow_artifacts: bool) -> str:
    key = tag.strip()
    if key not in variables:
        index = tag.rfind("{{")
        if index > 0:
            nested = tag[index + 2:]
            if nested in variables:
                value = variables[nested]
                if value is None:
                    raise SubstitutionError(
                        f"unable to substitute nested tag {{{{{tag}}}}}: {nested!r} is an absent optional")
                if isinstance(value, str):
                    return "{{" + tag[:index] + _escaped(value)
        if regex is not None and regex.match(key) and (not allow_artifacts or ".outputs.artifacts." not in key):
            raise MissingVariable(f"failed to resolve {{{{{tag}}}}}")
        return "{{" + tag + "}}"
    value = variables[key]
    if value is None:
        raise SubstitutionError(
            f"unable to substitute {{{{{tag}}}}}: output is an absent optional (skipped/omitted node with no default)")
    if not isinstance(value, str):
        raise SubstitutionError(f"failed to resolve {{{{{tag}}}}} to string")
    return _escaped(value)


def _expression(expression: str, variables: Mapping[str, Any], regex: re.Pattern[str] | None, strict: Strict) -> str:
    try:
        text = json.loads('"' + expression + '"')
    except json.JSONDecodeError as err:
        if strict is not None and strict == "all":
            raise SubstitutionError(f"failed to unmarshall JSON expression: {err}") from err
        return "{{=" + expression + "}}"
    mode: Any = "all" if strict == "all" else (None if regex is None else list(strict or []))
    try:
        result = replace_expression(text, variables, mode)
    except LangError as err:
        if "is missing" in str(err):
            raise MissingVariable(str(err)) from err
        raise
    if result is None:
        return "{{=" + expression + "}}"
    return json.dumps(result, ensure_ascii=False)[1:-1]


def has_unresolved(obj: Any) -> bool:
    return "{{" in to_json(obj)
