"""The compiled predictor: a HistGradientBoosting model as plain data (`model.trees.json`), turned back into
Python code at load time, so serving needs neither scikit-learn nor numpy and pays no per-call overhead.

At train time `export_trees` reads the fitted trees (and the estimator's own categorical re-encoding) into
plain lists. At serve time `load` checks every value's type and the trees' shape, then generates one Python
function (a nested conditional expression per tree) and compiles it once. Only numbers that passed those
checks, written with `repr`, reach the generated source: nothing in the file can inject code.

Input rows are what `steps._model.features.ContractEncoder` produces: one float per contract feature, in contract
order (a category's index in the contract's list, the `other` code, or NaN for a missing value). The gate
checks the scores against the skops estimator on the holdout (steps._model.parity).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TREES_FILE = "model.trees.json"
FORMAT = "argo-mlops/hgb-trees"
FORMAT_VERSION = 1
# Python's parser allows 200 nested parentheses; each tree level adds one. Deeper trees are refused (the
# bundle then serves through skops).
MAX_DEPTH = 150
# A guard against a file that would take minutes and gigabytes to compile.
MAX_NODES = 2_000_000
MAX_CATEGORY_CODE = 255  # HGB's categorical bitsets hold 256 codes
_FLOAT_MAX = int(sys.float_info.max)
_TREE_KEYS = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value", "left_codes")


class ExportError(ValueError):
    """The fitted model cannot be exported as trees; the message says why (the bundle then has no trees file)."""


class TreesError(ValueError):
    """A trees file is malformed: the message names the file, the place and the rule."""


# --- export (train time: needs scikit-learn) ---------------------------------------------------------------


def export_trees(pipeline: Any) -> dict[str, Any]:
    """The fitted Pipeline (ContractEncoder, HistGradientBoostingClassifier) as plain data. Raises ExportError."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from steps._model.features import ContractEncoder

    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise ExportError("only a Pipeline of the contract encoder and one estimator can be exported")
    encoder, model = steps[0][1], steps[1][1]
    if not isinstance(encoder, ContractEncoder) or not isinstance(model, HistGradientBoostingClassifier):
        raise ExportError(f"{type(model).__name__}: only HistGradientBoostingClassifier exports as trees")
    classes = [int(c) for c in model.classes_]
    if model.n_trees_per_iteration_ != 1 or classes != [0, 1]:
        raise ExportError(f"only a binary classifier with classes [0, 1] exports (classes {classes})")
    if type(model._loss).__name__ != "HalfBinomialLoss":
        raise ExportError(f"loss {type(model._loss).__name__}: only the binary log loss (logit link) exports")

    names = list(encoder.feature_names_)
    inputs = _export_inputs(model, len(names))
    trees = [_export_tree(p[0], inputs) for p in model._predictors]
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "link": "logit",
        "baseline": float(model._baseline_prediction.ravel()[0]),
        "features": names,
        "inputs": inputs,
        "trees": trees,
    }
    try:
        check(doc, "export")
    except TreesError as err:
        raise ExportError(str(err)) from err
    return doc


def save(doc: dict[str, Any], path: Path) -> None:
    """Write a trees document compactly. Floats are repr-exact and never Infinity (thresholds say "inf"), so
    any JSON parser reads it."""
    Path(path).write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))


def _export_inputs(model: Any, n_features: int) -> list[dict[str, Any]]:
    """Tree input j -> the contract column it reads, and for a categorical input the contract code of each
    of the estimator's own category codes (its internal OrdinalEncoder puts categorical columns first)."""
    mask = model.is_categorical_
    if mask is None:
        return [{"column": j} for j in range(n_features)]
    if len(mask) != n_features:
        raise ExportError(f"the estimator has {len(mask)} inputs, the contract encoder {n_features}")
    pre = model._preprocessor
    encoder = pre.named_transformers_["encoder"]
    categorical = [int(i) for i, flag in enumerate(mask) if flag]
    numeric = [int(i) for i, flag in enumerate(mask) if not flag]
    expected = {"encoder": slice(0, len(categorical)), "numerical": slice(len(categorical), n_features)}
    for name, where in expected.items():
        got = pre.output_indices_.get(name)
        if got is not None and (got.start, got.stop) != (where.start, where.stop) and got.stop > got.start:
            raise ExportError(f"the estimator's preprocessor puts {name!r} at {got}, expected {where}")
    inputs: list[dict[str, Any]] = []
    for column, categories in zip(categorical, encoder.categories_, strict=True):
        codes = []
        for value in categories:
            value = float(value)
            if math.isnan(value):  # missing values sort last; the trees route them by missing_left
                continue
            if not value.is_integer() or value < 0:
                raise ExportError(f"column {column}: category code {value!r} is not a contract code")
            codes.append(int(value))
        inputs.append({"column": column, "codes": codes})
    inputs.extend({"column": column} for column in numeric)
    return inputs


def _export_tree(predictor: Any, inputs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
    tree: dict[str, list[Any]] = {key: [] for key in _TREE_KEYS}
    for node in nodes:
        leaf = bool(node["is_leaf"])
        tree["leaf"].append(leaf)
        tree["value"].append(float(node["value"]) if leaf else 0.0)
        tree["feature"].append(0 if leaf else int(node["feature_idx"]))
        tree["left"].append(0 if leaf else int(node["left"]))
        tree["right"].append(0 if leaf else int(node["right"]))
        tree["missing_left"].append(False if leaf else bool(node["missing_go_to_left"]))
        threshold = float(node["num_threshold"])
        tree["threshold"].append(0.0 if leaf or node["is_categorical"] else _threshold_out(threshold))
        if not leaf and node["is_categorical"]:
            words = bitsets[int(node["bitset_idx"])]
            tree["left_codes"].append(
                [k for k in range(MAX_CATEGORY_CODE + 1) if (int(words[k >> 5]) >> (k & 31)) & 1]
            )
        else:
            tree["left_codes"].append(None)
    return tree


def _threshold_out(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


# --- checking (serve time: plain Python) -------------------------------------------------------------------


def check(doc: Any, where: str) -> None:
    """Every key, type, index and shape the generator relies on. Raises TreesError naming the place."""

    def fail(place: str, rule: str, value: Any = ...) -> TreesError:
        shown = "" if value is ... else f" (got {_short(value)})"
        return TreesError(f"{where}: {place}: {rule}{shown}")

    keys = {"format", "format_version", "link", "baseline", "features", "inputs", "trees"}
    if not isinstance(doc, dict) or set(doc) != keys:
        raise fail("top level", f"must be an object with exactly the keys {sorted(keys)}",
                   sorted(doc) if isinstance(doc, dict) else doc)
    if doc["format"] != FORMAT or doc["format_version"] != FORMAT_VERSION:
        raise fail("format", f"must be {FORMAT!r} version {FORMAT_VERSION}", (doc["format"], doc["format_version"]))
    if doc["link"] != "logit":
        raise fail("link", "must be 'logit'", doc["link"])
    if not _is_finite(doc["baseline"]):
        raise fail("baseline", "must be a finite number", doc["baseline"])
    features = doc["features"]
    if not isinstance(features, list) or not features or not all(type(f) is str for f in features):
        raise fail("features", "must be a non-empty list of feature names", features)
    inputs = doc["inputs"]
    if not isinstance(inputs, list) or len(inputs) != len(features):
        raise fail("inputs", f"must list one input per feature ({len(features)})", inputs)
    columns = set()
    for j, item in enumerate(inputs):
        if not isinstance(item, dict) or not set(item) <= {"column", "codes"} or "column" not in item:
            raise fail(f"inputs[{j}]", "must be an object with 'column' and optional 'codes'", item)
        column = item["column"]
        if type(column) is not int or not 0 <= column < len(features) or column in columns:
            raise fail(f"inputs[{j}].column", "must be a distinct feature index", column)
        columns.add(column)
        codes = item.get("codes")
        if codes is not None and (
            not isinstance(codes, list) or len(codes) > MAX_CATEGORY_CODE + 1
            or not all(type(c) is int and c >= 0 for c in codes) or len(set(codes)) != len(codes)
        ):
            raise fail(f"inputs[{j}].codes", "must be distinct non-negative integers (at most 256)", codes)
    trees = doc["trees"]
    if not isinstance(trees, list) or not trees:
        raise fail("trees", "must be a non-empty list", trees)
    total = 0
    for t, tree in enumerate(trees):
        total += _check_tree(tree, inputs, lambda place, rule, value=..., t=t: fail(f"trees[{t}].{place}", rule,
                                                                                   value))
        if total > MAX_NODES:
            raise fail("trees", f"more than {MAX_NODES} nodes in all")


def _check_tree(tree: Any, inputs: list[dict[str, Any]], fail: Callable[..., TreesError]) -> int:
    if not isinstance(tree, dict) or set(tree) != set(_TREE_KEYS):
        raise fail("keys", f"must be exactly {list(_TREE_KEYS)}", sorted(tree) if isinstance(tree, dict) else tree)
    n = len(tree["leaf"]) if isinstance(tree["leaf"], list) else -1
    for key in _TREE_KEYS:
        if not isinstance(tree[key], list) or len(tree[key]) != n or n < 1:
            raise fail(key, f"must be a list as long as 'leaf' ({n}), at least one node")
    seen = [False] * n
    depth = [0] * n
    for i in range(n):
        leaf = tree["leaf"][i]
        if type(leaf) is not bool:
            raise fail(f"leaf[{i}]", "must be true or false", leaf)
        if leaf:
            if not _is_finite(tree["value"][i]):
                raise fail(f"value[{i}]", "a leaf's value must be a finite number", tree["value"][i])
            continue
        feature, left, right = tree["feature"][i], tree["left"][i], tree["right"][i]
        if type(feature) is not int or not 0 <= feature < len(inputs):
            raise fail(f"feature[{i}]", f"must be an input index below {len(inputs)}", feature)
        # Children after their parent, each referenced once: a tree, never a cycle or a shared subtree
        # (which would blow up the generated code).
        for child, side in ((left, "left"), (right, "right")):
            if type(child) is not int or not i < child < n or seen[child]:
                raise fail(f"{side}[{i}]", f"must be a node after {i} that no other node points to", child)
            seen[child] = True
            depth[child] = depth[i] + 1
            if depth[child] > MAX_DEPTH:
                raise fail(f"{side}[{i}]", f"the tree is deeper than {MAX_DEPTH} levels")
        if type(tree["missing_left"][i]) is not bool:
            raise fail(f"missing_left[{i}]", "must be true or false", tree["missing_left"][i])
        codes = tree["left_codes"][i]
        categorical = inputs[feature].get("codes") is not None
        if codes is None:
            if categorical:
                raise fail(f"left_codes[{i}]", "a split on a categorical input needs its left codes")
            threshold = tree["threshold"][i]
            if not (_is_finite(threshold) or threshold in ("inf", "-inf")):
                raise fail(f"threshold[{i}]", "must be a finite number, 'inf' or '-inf'", threshold)
        else:
            if not categorical:
                raise fail(f"left_codes[{i}]", "only a split on a categorical input has left codes", codes)
            if not isinstance(codes, list) or not all(
                type(c) is int and 0 <= c <= MAX_CATEGORY_CODE for c in codes
            ):
                raise fail(f"left_codes[{i}]", "must be a list of integers 0-255", codes)
    if any(seen[i] != (i > 0) for i in range(n)) or seen[0]:
        raise fail("left/right", "every node but the root must be some node's child")
    return n


def _is_finite(value: Any) -> bool:
    # JSON integers have no bound; the generated code writes every number as a float.
    return (type(value) is float and math.isfinite(value)) or (type(value) is int and abs(value) <= _FLOAT_MAX)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- generating and compiling -------------------------------------------------------------------------------


def generate(doc: dict[str, Any]) -> str:
    """Python source of `predict(rows) -> scores` for a checked document. Every literal is an int or a float
    written by repr (or 1e999 for infinity); variable names are `v<column>`."""
    inputs = doc["inputs"]
    n_columns = len(doc["features"])
    lines = [
        "def predict(rows):",
        "    out = []",
        "    append = out.append",
        f"    for ({', '.join(f'v{c}' for c in range(n_columns))},) in rows:",
        f"        s = {_float(doc['baseline'])}",
    ]
    for tree in doc["trees"]:
        lines.append(f"        s += {_tree_expression(tree, inputs)}")
    # The logistic function as scipy's expit computes it; exp(s) alone where exp(-s) would overflow.
    lines.append("        append(1.0 / (1.0 + exp(-s)) if s > -700.0 else exp(s))")
    lines.append("    return out")
    return "\n".join(lines) + "\n"


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
    """Scores contract-encoded rows with the generated function. `predict(rows) -> [score, ...]`."""

    kind = "compiled"

    def __init__(self, doc: dict[str, Any], source: str, function: Callable[[Sequence[Sequence[float]]], list[float]],
                 compile_seconds: float):
        self.features: list[str] = list(doc["features"])
        self.trees = len(doc["trees"])
        self.nodes = sum(len(t["leaf"]) for t in doc["trees"])
        self.source = source
        self.compile_seconds = compile_seconds
        self.predict = function

    def describe(self) -> dict[str, Any]:
        return {"predictor": self.kind, "trees": self.trees, "nodes": self.nodes,
                "compile_seconds": round(self.compile_seconds, 3)}


def compile_trees(doc: Any, where: str = TREES_FILE) -> CompiledPredictor:
    """Check the document and compile its predictor. Raises TreesError."""
    check(doc, where)
    started = time.perf_counter()
    source = generate(doc)
    try:
        code = compile(source, f"<{where}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        raise TreesError(f"{where}: the generated predictor does not compile: {type(err).__name__}: {err}") from err
    # No builtins: the generated code needs none, and a namespace without them can reach nothing else.
    namespace: dict[str, Any] = {"__builtins__": {}, "exp": math.exp}
    exec(code, namespace)  # noqa: S102 - our own generated source, from checked numbers only
    return CompiledPredictor(doc, source, namespace["predict"], time.perf_counter() - started)


def load(path: Path, features: Sequence[str] | None = None) -> CompiledPredictor:
    """Read, check and compile a trees file. `features`: the bundle contract's names, which must match.
    Raises TreesError."""
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
    return predictor
