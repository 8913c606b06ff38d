"""The errors of Argo's expression languages, as the local runner tells them apart.

`Unsupported` is a refusal: the construct is valid for Argo but not evaluated here, so the engine refuses the
workflow before it starts instead of risking a result Argo would not give. The others are errors Argo raises too.
"""

from __future__ import annotations


class LangError(ValueError):
    """An expression Argo would not evaluate, or one evaluated to an error; the message quotes it."""


class Unsupported(LangError):
    """A construct Argo evaluates that is not evaluated locally (named in the message): refuse the workflow."""


class ExprSyntaxError(LangError):
    """expr-lang's parser refuses the text (Argo: `failed to evaluate expression`, at compile time)."""


class ExprCompileError(LangError):
    """expr-lang's type checker refuses the expression with this environment (an unknown name, mismatched types)."""


class ExprRuntimeError(LangError):
    """expr-lang's virtual machine stopped with an error (a panic in Go) while running the expression."""


class GovaluateError(LangError):
    """govaluate refuses or fails a `when` expression (parsing, planning or evaluating it)."""


class DependsError(LangError):
    """A `depends` expression that Argo's validation or controller refuses."""
