"""The trees file (`model.trees.json`) as data: its constants, its errors, and the check of every key, type,
index and shape that steps._model.trees relies on before it generates code from a document.

Version 2 (written since issue 14) records the task: `task` (binary | multiclass | regression), `classes` (2,
the k classes of a multiclass model, or null for regression), `link` (logit | softmax | identity | log) and one
`baseline` per output (k for multiclass, else 1). `trees` lists scikit-learn's trees iteration by iteration:
tree t adds to output t % outputs. Version 1 (binary only: a scalar baseline, no task) still loads, as binary.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

TREES_FILE = "model.trees.json"
FORMAT = "argo-mlops/hgb-trees"
FORMAT_VERSION = 2
# Python's parser allows 200 nested parentheses; each tree level adds one. Deeper trees are refused (the
# bundle then serves through skops).
MAX_DEPTH = 150
# A guard against a file that would take minutes and gigabytes to compile.
MAX_NODES = 2_000_000
MAX_CATEGORY_CODE = 255  # HGB's categorical bitsets hold 256 codes
# More classes would make one generated line per class and tree; no contract we serve comes near.
MAX_CLASSES = 1000
TREE_KEYS = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value", "left_codes")
# The link each task may use: how the summed raw scores become the prediction.
TASK_LINKS = {"binary": ("logit",), "multiclass": ("softmax",), "regression": ("identity", "log")}
_FLOAT_MAX = int(sys.float_info.max)
_V1_KEYS = {"format", "format_version", "link", "baseline", "features", "inputs", "trees"}
_V2_KEYS = _V1_KEYS | {"task", "classes"}


class ExportError(ValueError):
    """The fitted model cannot be exported as trees; the message says why (the bundle then has no trees file)."""


class TreesError(ValueError):
    """A trees file is malformed: the message names the file, the place and the rule."""


def outputs(doc: dict[str, Any]) -> int:
    """Raw scores per row of a checked document: one per class for multiclass, else one."""
    return int(doc["classes"]) if doc["task"] == "multiclass" else 1


def check(doc: Any, where: str) -> dict[str, Any]:
    """Every key, type, index and shape the generator relies on; returns the document in version 2's shape (a
    version 1 file becomes binary with a one-element baseline). Raises TreesError naming the place."""

    def fail(place: str, rule: str, value: Any = ...) -> TreesError:
        shown = "" if value is ... else f" (got {_short(value)})"
        return TreesError(f"{where}: {place}: {rule}{shown}")

    if not isinstance(doc, dict) or "format_version" not in doc:
        raise fail("top level", f"must be an object with exactly the keys {sorted(_V2_KEYS)}",
                   sorted(doc) if isinstance(doc, dict) else doc)
    version = doc["format_version"]
    if doc.get("format") != FORMAT or type(version) is not int or version not in (1, 2):
        raise fail("format", f"must be {FORMAT!r} version 1 or 2", (doc.get("format"), version))
    keys = _V1_KEYS if version == 1 else _V2_KEYS
    if set(doc) != keys:
        raise fail("top level", f"must be an object with exactly the keys {sorted(keys)}", sorted(doc))
    if version == 2:
        _check_head(doc, fail)
    checked: dict[str, Any] = doc if version == 2 else {**doc, "task": "binary", "classes": 2,
                                                        "baseline": [doc["baseline"]]}
    doc = checked
    if doc["link"] not in TASK_LINKS[doc["task"]]:
        raise fail("link", f"a {doc['task']} model's link must be one of {list(TASK_LINKS[doc['task']])}",
                   doc["link"])
    n_outputs = outputs(doc)
    baseline = doc["baseline"]
    if not isinstance(baseline, list) or len(baseline) != n_outputs or not all(_is_finite(b) for b in baseline):
        raise fail("baseline", f"must be {n_outputs} finite number(s)" if version == 2 else "must be a finite number",
                   baseline if version == 2 else baseline[0])
    features = doc["features"]
    if not isinstance(features, list) or not features or not all(type(f) is str for f in features):
        raise fail("features", "must be a non-empty list of feature names", features)
    inputs = doc["inputs"]
    _check_inputs(inputs, len(features), fail)
    trees = doc["trees"]
    if not isinstance(trees, list) or not trees or len(trees) % n_outputs:
        raise fail("trees", f"must be a non-empty list of whole iterations ({n_outputs} trees each)",
                   f"{len(trees)} trees" if isinstance(trees, list) else trees)
    total = 0
    for t, tree in enumerate(trees):
        total += _check_tree(tree, inputs, lambda place, rule, value=..., t=t: fail(f"trees[{t}].{place}", rule,
                                                                                   value))
        if total > MAX_NODES:
            raise fail("trees", f"more than {MAX_NODES} nodes in all")
    return checked


def _check_head(doc: dict[str, Any], fail: Callable[..., TreesError]) -> None:
    """Version 2's task and classes."""
    task, classes = doc["task"], doc["classes"]
    if task not in TASK_LINKS:
        raise fail("task", f"must be one of {list(TASK_LINKS)}", task)
    if task == "binary" and (type(classes) is not int or classes != 2):
        raise fail("classes", "a binary model has 2 classes", classes)
    if task == "multiclass" and (type(classes) is not int or not 3 <= classes <= MAX_CLASSES):
        raise fail("classes", f"a multiclass model has 3 to {MAX_CLASSES} classes", classes)
    if task == "regression" and classes is not None:
        raise fail("classes", "a regression model has none (null)", classes)


def _check_inputs(inputs: Any, n_features: int, fail: Callable[..., TreesError]) -> None:
    if not isinstance(inputs, list) or len(inputs) != n_features:
        raise fail("inputs", f"must list one input per feature ({n_features})", inputs)
    columns = set()
    for j, item in enumerate(inputs):
        if not isinstance(item, dict) or not set(item) <= {"column", "codes"} or "column" not in item:
            raise fail(f"inputs[{j}]", "must be an object with 'column' and optional 'codes'", item)
        column = item["column"]
        if type(column) is not int or not 0 <= column < n_features or column in columns:
            raise fail(f"inputs[{j}].column", "must be a distinct feature index", column)
        columns.add(column)
        codes = item.get("codes")
        if codes is not None and (
            not isinstance(codes, list) or len(codes) > MAX_CATEGORY_CODE + 1
            or not all(type(c) is int and c >= 0 for c in codes) or len(set(codes)) != len(codes)
        ):
            raise fail(f"inputs[{j}].codes", "must be distinct non-negative integers (at most 256)", codes)


def _check_tree(tree: Any, inputs: list[dict[str, Any]], fail: Callable[..., TreesError]) -> int:
    if not isinstance(tree, dict) or set(tree) != set(TREE_KEYS):
        raise fail("keys", f"must be exactly {list(TREE_KEYS)}", sorted(tree) if isinstance(tree, dict) else tree)
    n = len(tree["leaf"]) if isinstance(tree["leaf"], list) else -1
    for key in TREE_KEYS:
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
