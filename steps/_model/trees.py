"""The compiled predictor: a HistGradientBoosting model as plain data (`model.trees.json`), turned back into
Python code at load time, so serving needs neither scikit-learn nor numpy and pays no per-call overhead.

At train time `export_trees` (steps._model.trees_export) reads the fitted trees (and the estimator's own
categorical re-encoding) into plain lists. At serve time `load` checks every value's type and the trees' shape
(steps._model.trees_format), then generates one Python function (a nested conditional expression per tree) and
compiles it once. Only numbers that passed those checks, written with `repr`, reach the generated source:
nothing in the file can inject code.

Input rows are what `steps._model.features.ContractEncoder` produces: one float per contract feature, in contract
order (a category's index in the contract's list, the `other` code, or NaN for a missing value). `predict(rows)`
answers by task: binary P(positive) per row; multiclass the k class probabilities per row (a list, in class code
order 0..k-1); regression the predicted value per row. The gate checks them against the skops estimator on the
holdout (steps._model.parity).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from steps._model.trees_export import export_trees
from steps._model.trees_format import (
    FORMAT,
    FORMAT_VERSION,
    MAX_CATEGORY_CODE,
    MAX_DEPTH,
    MAX_NODES,
    TREES_FILE,
    ExportError,
    TreesError,
    check,
    outputs,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_CATEGORY_CODE", "MAX_DEPTH", "MAX_NODES", "TREES_FILE",
           "CompiledPredictor", "ExportError", "TreesError", "check", "compile_trees", "export_trees", "generate",
           "load", "save"]


def save(doc: dict[str, Any], path: Path) -> None:
    """Write a trees document compactly. Floats are repr-exact and never Infinity (thresholds say "inf"), so
    any JSON parser reads it."""
    Path(path).write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))


# --- generating and compiling -------------------------------------------------------------------------------


def generate(doc: dict[str, Any]) -> str:
    """Python source of `predict(rows)` for a checked document (in version 2's shape, as `check` returns it).
    Every literal is an int or a float written by repr (or 1e999 for infinity); variable names are `v<column>`
    for the inputs and `s<output>` for the raw scores."""
    inputs = doc["inputs"]
    n_columns = len(doc["features"])
    k = outputs(doc)
    lines = [
        "def predict(rows):",
        "    out = []",
        "    append = out.append",
        f"    for ({', '.join(f'v{c}' for c in range(n_columns))},) in rows:",
    ]
    # The baseline first, then the trees in scikit-learn's order: the same additions, so the same sums.
    lines.extend(f"        s{c} = {_float(b)}" for c, b in enumerate(doc["baseline"]))
    for t, tree in enumerate(doc["trees"]):
        lines.append(f"        s{t % k} += {_tree_expression(tree, inputs)}")
    lines.extend(_link_lines(doc["link"], k))
    lines.append("    return out")
    return "\n".join(lines) + "\n"


def _link_lines(link: str, k: int) -> list[str]:
    """The raw scores to the prediction, computed as scikit-learn's link does."""
    if link == "logit":
        # The logistic function as scipy's expit computes it; exp(s) alone where exp(-s) would overflow.
        return ["        append(1.0 / (1.0 + exp(-s0)) if s0 > -700.0 else exp(s0))"]
    if link == "identity":
        return ["        append(s0)"]
    if link == "log":
        return ["        append(exp(s0))"]
    # softmax, as sklearn.utils.extmath.softmax: shift by the largest score, exponentiate, divide by the sum
    # (added in class order, as numpy sums the columns of scikit-learn's column-major scores).
    scores = [f"s{c}" for c in range(k)]
    return [
        f"        m = max({', '.join(scores)})",
        *(f"        e{c} = exp(s{c} - m)" for c in range(k)),
        f"        t = {' + '.join(f'e{c}' for c in range(k))}",
        f"        append([{', '.join(f'e{c} / t' for c in range(k))}])",
    ]


def _tree_expression(tree: dict[str, list[Any]], inputs: list[dict[str, Any]]) -> str:
    def node(i: int) -> str:
        if tree["leaf"][i]:
            return _float(tree["value"][i])
        item = inputs[tree["feature"][i]]
        var = f"v{item['column']}"
        missing_left = tree["missing_left"][i]
        codes = item.get("codes")
        if codes is None:
            threshold = _float(tree["threshold"][i])
            # NaN fails every comparison: `not v > t` sends it left, `v <= t` right, as missing_left says.
            cond = f"not {var} > {threshold}" if missing_left else f"{var} <= {threshold}"
        else:
            # Contract codes: left if the estimator's code for it is in the left set; a code it never saw
            # (or NaN, or anything else) takes the missing direction, as scikit-learn routes unknowns.
            left = set(tree["left_codes"][i])
            if missing_left:
                cond = f"{var} not in {_code_set(c for k, c in enumerate(codes) if k not in left)}"
            else:
                cond = f"{var} in {_code_set(c for k, c in enumerate(codes) if k in left)}"
        return f"({node(tree['left'][i])} if {cond} else {node(tree['right'][i])})"

    return node(0)


def _float(value: Any) -> str:
    if value == "inf":
        return "1e999"
    if value == "-inf":
        return "-1e999"
    return repr(float(value))


def _code_set(codes: Any) -> str:
    members = sorted(set(codes))
    # A set display of constants compiles to a frozenset constant; `()` is the empty one.
    return "{" + ", ".join(str(int(c)) for c in members) + "}" if members else "()"


class CompiledPredictor:
    """Predicts from contract-encoded rows with the generated function: `predict(rows)` answers binary
    [P(positive), ...], multiclass [[p_0, ..., p_k-1], ...] (class code order), regression [value, ...]."""

    kind = "compiled"

    def __init__(self, doc: dict[str, Any], source: str, function: Callable[[Sequence[Sequence[float]]], list[Any]],
                 compile_seconds: float):
        self.features: list[str] = list(doc["features"])
        self.task: str = doc["task"]
        self.classes: int | None = doc["classes"]  # how many; None for regression
        self.link: str = doc["link"]
        self.format_version: int = doc["format_version"]
        self.trees = len(doc["trees"])
        self.nodes = sum(len(t["leaf"]) for t in doc["trees"])
        self.source = source
        self.compile_seconds = compile_seconds
        self.predict = function

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"predictor": self.kind, "task": self.task}
        if self.classes is not None:
            described["classes"] = self.classes
        return {**described, "link": self.link, "trees": self.trees, "nodes": self.nodes,
                "compile_seconds": round(self.compile_seconds, 3)}


def compile_trees(doc: Any, where: str = TREES_FILE) -> CompiledPredictor:
    """Check the document and compile its predictor. Raises TreesError."""
    doc = check(doc, where)
    started = time.perf_counter()
    source = generate(doc)
    try:
        code = compile(source, f"<{where}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        raise TreesError(f"{where}: the generated predictor does not compile: {type(err).__name__}: {err}") from err
    # No builtins but `max`: the generated code needs no other, and a namespace without them reaches nothing else.
    namespace: dict[str, Any] = {"__builtins__": {}, "exp": math.exp, "max": max}
    exec(code, namespace)  # noqa: S102 - our own generated source, from checked numbers only
    return CompiledPredictor(doc, source, namespace["predict"], time.perf_counter() - started)


def load(path: Path, features: Sequence[str] | None = None, task: str | None = None,
         classes: int | None = None) -> CompiledPredictor:
    """Read, check and compile a trees file. The bundle's contract, where given, must match it: `features` (the
    names, in order), `task` (a file without one is binary) and `classes` (how many the contract lists; for
    classifiers). Raises TreesError."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as err:
        raise TreesError(f"{path}: missing") from err
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise TreesError(f"{path}: not valid JSON: {err}") from err
    predictor = compile_trees(doc, str(path))
    if features is not None and list(features) != predictor.features:
        raise TreesError(f"{path}: its features {predictor.features} differ from the bundle's contract "
                         f"{list(features)}")
    if task is not None and task != predictor.task:
        raise TreesError(f"{path}: task: the trees predict {predictor.task}, the bundle's contract says {task}")
    if classes is not None and predictor.classes is not None and classes != predictor.classes:
        raise TreesError(f"{path}: classes: the trees predict {predictor.classes} classes, the bundle's contract "
                         f"lists {classes}")
    return predictor
