"""Requests checked against the bundle's data contract, and turned into the rows the model scores.

`RequestContract` reads a V1 body (`{"instances": [{feature: value}]}`) or an Open Inference Protocol V2 body
(one input per feature) and returns one tuple of floats per row, exactly as `ContractEncoder` encodes it (a
number; a category's index in the contract's list, or the `other` code; NaN for a missing value). A client's
mistake raises RequestError, which names the field, the rule and the value and carries a 4xx status.

Plain Python only (no numpy, pandas or scikit-learn): the server imports this module.
tests/steps/_serving/test_contract.py checks the codes against ContractEncoder and the bins against
steps._model.profile.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite, isnan
from typing import Any, cast

from steps._core.categories import key as category_key
from steps._core.categories import lookup as category_lookup
from steps._core.categories import shown as shown_categories
from steps._core.documents import ContractRecord

MISSING_LABEL = "missing"  # as steps._model.profile
OTHER_LABEL = "other"
NAN = float("nan")
# Open Inference Protocol tensor types a feature accepts (BYTES travel as JSON strings).
_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOATS = ("FP16", "FP32", "FP64")
# A category travels as text (BYTES), or as the integer or boolean the data has it as: it is looked up by its key.
DATATYPES = {"numeric": _FLOATS + _INTS, "integer": _INTS + _FLOATS, "categorical": ("BYTES", "BOOL", *_INTS)}


class RequestError(ValueError):
    """A client's mistake: `status` (4xx), the `rule` broken, the `field` (feature or body part) and a message."""

    def __init__(self, message: str, rule: str, field: str | None = None, status: int = 422):
        super().__init__(message)
        self.message, self.rule, self.field, self.status = message, rule, field, status

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "rule": self.rule}
        if self.field is not None:
            out["field"] = self.field
        return out


class ContractError(ValueError):
    """The bundle's contract or profile cannot be used: the message names the feature and the problem."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str
    min: float | None
    max: float | None
    nullable: bool
    categories: tuple[str | int, ...]
    unknown: str
    codes: dict[str, float] = field(default_factory=dict)
    other: float | None = None  # the `other` code, when unknown categories map to it
    datatypes: frozenset[str] = frozenset()  # the V2 tensor types it accepts
    # ... of which those whose values need no check beyond the encoder's (an integer feature checks that every
    # value is whole; a numeric one does not, so an INT tensor for it is checked here)
    trusted: frozenset[str] = frozenset()
    v2_datatype: str = "FP64"  # what the model metadata names: FP64, INT64, or for a category BYTES or INT64


def parse_features(contract: ContractRecord) -> tuple[FeatureSpec, ...]:
    """The contract as recorded in bundle.json (steps._model.contract.contract_to_dict), checked: bundle.json is
    read from disk, so its type is a claim until here. Raises ContractError."""
    if not isinstance(contract, Mapping) or not isinstance(contract.get("features"), list) or not contract["features"]:
        raise ContractError("bundle.json contract: must hold a non-empty 'features' list")
    specs = []
    for i, raw in enumerate(contract["features"]):
        where = f"bundle.json contract.features[{i}]"
        if not isinstance(raw, Mapping) or type(raw.get("name")) is not str:
            raise ContractError(f"{where}: must be an object with a string 'name'")
        kind = raw.get("type")
        if kind is None or kind not in DATATYPES:
            raise ContractError(f"{where} ({raw['name']}): type must be numeric, integer or categorical, got {kind!r}")
        bounds: list[float | None] = []
        for key, value in (("min", raw.get("min")), ("max", raw.get("max"))):
            if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
                raise ContractError(f"{where} ({raw['name']}): {key} must be a finite number, got {value!r}")
            bounds.append(None if value is None else float(value))
        categories = tuple(raw.get("categories") or ())
        unknown = raw.get("unknown", "reject")
        if kind == "categorical" and (not categories or not all(type(c) in (str, int) for c in categories)):
            raise ContractError(f"{where} ({raw['name']}): categories must be a non-empty list of strings or "
                                "whole numbers")
        if unknown not in ("other", "reject"):
            raise ContractError(f"{where} ({raw['name']}): unknown must be other or reject, got {unknown!r}")
        try:
            codes = {k: float(j) for k, j in category_lookup(categories).items()}
        except ValueError as err:
            raise ContractError(f"{where} ({raw['name']}): {err}") from err
        other = float(len(categories)) if kind == "categorical" and unknown == "other" else None
        specs.append(FeatureSpec(raw["name"], kind, bounds[0], bounds[1], bool(raw.get("nullable", False)),
                                 categories, unknown, codes, other, frozenset(DATATYPES[kind]),
                                 frozenset(_FLOATS if kind == "numeric" else DATATYPES[kind]),
                                 _v2_datatype(kind, categories)))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ContractError(f"bundle.json contract: feature names repeat: {names}")
    return tuple(specs)


class RequestContract:
    """Checks and encodes request bodies; maps encoded rows onto the reference profile's bins."""

    def __init__(self, contract: ContractRecord, profile: Mapping[str, Any] | None = None, max_rows: int = 1000):
        self.features = parse_features(contract)
        self.names = [f.name for f in self.features]
        self.index = {f.name: j for j, f in enumerate(self.features)}
        target = contract.get("target")
        # Rows replayed from a dataset may carry the label: it is not a feature, so it is left out, not refused.
        self.ignored = {target} if isinstance(target, str) and target not in self.index else set()
        self.max_rows = max_rows
        self._encoders = [_encoder(f) for f in self.features]
        self.bin_labels, self._bins = _bins(self.features, profile or {})

    # ---- V1 ------------------------------------------------------------------------------------------------

    def rows_from_v1(self, body: Any) -> list[tuple[float, ...]]:
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object with 'instances'", "body", None, 400)
        instances = body.get("instances")
        if not isinstance(instances, list):
            raise RequestError("instances: required, a list of objects {feature: value}", "required", "instances")
        self._check_count(len(instances), "instances")
        encoders, names, n = self._encoders, self.names, len(self._encoders)
        rows = []
        for r, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise RequestError(f"instances[{r}]: must be an object {{feature: value}}, got "
                                   f"{_kind(instance)}", "type", f"instances[{r}]")
            if len(instance) != n or any(name not in instance for name in names):
                self._check_keys(instance, r)
            rows.append(tuple([encode(instance.get(name), r, False)
                               for name, encode in zip(names, encoders, strict=True)]))
        return rows

    def _check_keys(self, instance: dict[str, Any], r: int) -> None:
        for key in instance:
            if key not in self.index and key not in self.ignored:
                raise RequestError(f"instances[{r}].{key[:60]}: not a feature of the contract (features: "
                                   f"{', '.join(self.names)})", "unknown_field", key[:60])
        for f in self.features:
            if f.name not in instance and not f.nullable:
                raise RequestError(f"instances[{r}].{f.name}: missing; the contract requires it (not nullable)",
                                   "required", f.name)

    # ---- V2 (Open Inference Protocol) ---------------------------------------------------------------------

    def rows_from_v2(self, body: Any) -> list[tuple[float, ...]]:
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object with 'inputs'", "body", None, 400)
        inputs = body.get("inputs")
        if type(inputs) is not list or not inputs:
            raise RequestError("inputs: required, a list of tensors, one per feature", "required", "inputs")
        features, encoders, index = self.features, self._encoders, self.index
        columns: list[list[float] | None] = [None] * len(features)
        n_rows = -1
        for k, tensor in enumerate(inputs):
            if type(tensor) is not dict:
                raise RequestError(f"inputs[{k}]: must be an object {{name, datatype, shape, data}}", "type",
                                   f"inputs[{k}]")
            name = tensor.get("name")
            j = index.get(name) if type(name) is str else None
            if j is None:
                if type(name) is not str:
                    raise RequestError(f"inputs[{k}].name: required, a string", "required", f"inputs[{k}].name")
                if name in self.ignored:
                    continue
                raise RequestError(f"inputs[{k}].name: {_short(name)} is not a feature of the contract "
                                   f"(features: {', '.join(self.names)})", "unknown_field", name[:60])
            if columns[j] is not None:
                raise RequestError(f"inputs[{k}]: {name} appears twice", "duplicate", name)
            data = _tensor_data(tensor, features[j], k)
            if len(data) != n_rows:
                if n_rows >= 0:
                    raise RequestError(f"inputs[{k}] ({name}): {len(data)} rows, but the other inputs have "
                                       f"{n_rows}", "shape", name)
                n_rows = len(data)
                self._check_count(n_rows, "inputs[].shape[0]")
            encode = encoders[j]
            columns[j] = ([encode(data[0], 0, True)] if n_rows == 1
                          else [encode(v, i, True) for i, v in enumerate(data)])
        if n_rows < 0:
            raise RequestError("inputs: no feature inputs", "required", "inputs")
        for j, column in enumerate(columns):
            if column is None:
                if not features[j].nullable:
                    raise RequestError(f"inputs: {features[j].name} is missing; the contract requires it "
                                       "(not nullable)", "required", features[j].name)
                columns[j] = [NAN] * n_rows
        filled = cast(list[list[float]], columns)  # every None was replaced just above
        if n_rows == 1:
            return [tuple([column[0] for column in filled])]
        return list(zip(*filled, strict=True))

    def _check_count(self, n: int, where: str) -> None:
        if n == 0:
            raise RequestError(f"{where}: no rows; send at least one", "rows", where)
        if n > self.max_rows:
            raise RequestError(f"{where}: {n} rows, more than the server's limit of {self.max_rows} per request",
                               "max_rows", where, 413)

    # ---- metadata and bins ---------------------------------------------------------------------------------

    def v2_inputs(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "datatype": f.v2_datatype, "shape": [-1]} for f in self.features]

    def bin_positions(self, row: Sequence[float]) -> list[int]:
        """Per feature, the position of the row's value in `bin_labels[j]`."""
        return [position(value) for position, value in zip(self._bins, row, strict=True)]

    def count_bins(self, rows: Sequence[Sequence[float]], counts: Any, offsets: Sequence[int]) -> None:
        """Add 1 per row and feature to `counts[offsets[j] + position]` (a shared-memory counter array)."""
        bins = self._bins
        for row in rows:
            for j, value in enumerate(row):
                counts[offsets[j] + bins[j](value)] += 1


# --- encoders: one closure per feature ------------------------------------------------------------------------


def _encoder(f: FeatureSpec) -> Callable[[Any, int, bool], float]:
    """value, row, v2 -> the encoded float; RequestError names `instances[row].name` or `inputs[name].data[row]`."""
    lo, hi, nullable, name = f.min, f.max, f.nullable, f.name

    def at(row: int, v2: bool) -> str:
        return f"inputs[{name}].data[{row}]" if v2 else f"instances[{row}].{name}"

    def missing(row: int, v2: bool, what: str) -> float:
        if nullable:
            return NAN
        raise RequestError(f"{at(row, v2)}: {what}, but {name} is not nullable in the contract", "nullable", name)

    if f.type == "categorical":
        codes, other, allowed = f.codes, f.other, shown_categories(f.categories)

        def categorical(value: Any, row: int, v2: bool) -> float:
            kind = type(value)
            if kind is str:  # most requests: a text category is its own key
                code = codes.get(value)
            elif kind is int or kind is bool or (kind is float and not isnan(value)):
                code = codes.get(category_key(value))  # type: ignore[arg-type]  # these kinds always have a key
            elif value is None or kind is float:
                return missing(row, v2, "missing value")
            else:
                raise RequestError(f"{at(row, v2)}: must be one of the categories {allowed}; got {_kind(value)}",
                                   "type", name)
            if code is not None:
                return code
            if other is not None:
                return other
            raise RequestError(f"{at(row, v2)}: unknown category {_short(value)} (allowed: {allowed})", "category",
                               name)

        return categorical

    whole = f.type == "integer"

    def number(value: Any, row: int, v2: bool) -> float:
        kind = type(value)
        x: float
        if kind is float:
            x = value
            if isnan(x):
                return missing(row, v2, "NaN")
            if not isfinite(x):
                raise RequestError(f"{at(row, v2)}: {value!r} is not a finite number", "finite", name)
        elif kind is int:
            try:
                x = float(value)
            except OverflowError:
                raise RequestError(f"{at(row, v2)}: {_short(value)} is out of range", "max" if value > 0 else "min",
                                   name) from None
        elif value is None:
            return missing(row, v2, "missing value")
        else:
            raise RequestError(f"{at(row, v2)}: must be a number, got {_kind(value)}", "type", name)
        if whole and not x.is_integer():
            raise RequestError(f"{at(row, v2)}: {value!r} is not a whole number ({name} is an integer)", "integer",
                               name)
        if lo is not None and x < lo:
            raise RequestError(f"{at(row, v2)}: {value!r} is below the contract's minimum {_num(lo)}", "min", name)
        if hi is not None and x > hi:
            raise RequestError(f"{at(row, v2)}: {value!r} is above the contract's maximum {_num(hi)}", "max", name)
        return x

    return number


def _tensor_data(tensor: dict[str, Any], f: FeatureSpec, k: int) -> list[Any]:
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    data = tensor.get("data")
    # The common case in one test: this runs once per input of every request.
    if (type(data) is list and type(shape) is list and len(shape) == 1 and shape[0] == len(data)
            and type(datatype) is str and datatype in f.trusted):
        return data
    return _tensor_data_checked(tensor, f, k)


def _tensor_data_checked(tensor: dict[str, Any], f: FeatureSpec, k: int) -> list[Any]:
    def at() -> str:
        return f"inputs[{k}] ({f.name})"

    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in f.datatypes:
        raise RequestError(f"{at()}.datatype: {_short(datatype)} does not fit a {f.type} feature "
                           f"(use {f.v2_datatype})", "datatype", f.name)
    shape = tensor.get("shape")
    if not (type(shape) is list and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
            and type(shape[0]) is int and shape[0] >= 0):
        raise RequestError(f"{at()}.shape: must be [n] or [n, 1] (one value per row), got {_short(shape)}",
                           "shape", f.name)
    data = tensor.get("data")
    if type(data) is not list:
        raise RequestError(f"{at()}.data: required, a list of values", "required", f.name)
    if data and type(data[0]) is list:  # nested as the shape, [[v], [v], ...]
        if not all(type(d) is list and len(d) == 1 for d in data):
            raise RequestError(f"{at()}.data: nested data must hold one value per row", "shape", f.name)
        data = [d[0] for d in data]
    if len(data) != shape[0]:
        raise RequestError(f"{at()}: shape {shape} says {shape[0]} values, data holds {len(data)}", "shape", f.name)
    if datatype in _INTS:
        for i, v in enumerate(data):
            if type(v) is float and not isnan(v) and not v.is_integer():
                raise RequestError(f"{at()}.data[{i}]: {v!r} is not an integer ({datatype})", "datatype", f.name)
    return data


# --- profile bins ---------------------------------------------------------------------------------------------


def _bins(features: Sequence[FeatureSpec], profile: Mapping[str, Any]) -> tuple[list[list[str]],
                                                                                list[Callable[[float], int]]]:
    """Per feature: the bin labels (steps._model.profile.bin_labels, then `missing`) and a function from an encoded
    value to the position of its label."""
    described = profile.get("features") if isinstance(profile, Mapping) else None
    labels: list[list[str]] = []
    functions: list[Callable[[float], int]] = []
    for f in features:
        fp = described.get(f.name) if isinstance(described, Mapping) else None
        if f.type == "categorical":
            categories = list(fp["categories"]) if isinstance(fp, Mapping) and "categories" in fp else [
                *f.categories, OTHER_LABEL]
            if not categories or not all(type(c) in (str, int) for c in categories):
                raise ContractError(f"profile.json features.{f.name}.categories: must be a list of strings or "
                                    "whole numbers")
            names = [str(i) for i in range(len(categories) - 1)] + [OTHER_LABEL]
            # Contract code -> profile bin, by key; a category the profile lacks (or `other`) is its last bin.
            positions = {category_key(c): i for i, c in enumerate(categories[:-1])}
            table = [positions.get(category_key(c), len(categories) - 1) for c in f.categories] + [
                len(categories) - 1]
            functions.append(_categorical_bin(table, len(names)))
        else:
            edges = fp.get("edges") if isinstance(fp, Mapping) else None
            if edges is None:
                edges = [-math.inf, math.inf]
            if not isinstance(edges, list) or len(edges) < 2 or not all(
                    type(e) in (int, float) for e in edges):
                raise ContractError(f"profile.json features.{f.name}.edges: must be a list of numbers")
            names = [str(i) for i in range(len(edges) - 1)]
            functions.append(_numeric_bin([float(e) for e in edges[1:-1]], len(names)))
        labels.append([*names, MISSING_LABEL])
    return labels, functions


def _categorical_bin(table: list[int], missing: int) -> Callable[[float], int]:
    def position(value: float) -> int:
        return missing if isnan(value) else table[int(value)]

    return position


def _numeric_bin(inner: list[float], missing: int) -> Callable[[float], int]:
    # edges[i] < x <= edges[i+1]: bisect_left over the inner edges, as steps._model.profile's searchsorted(left).
    def position(value: float) -> int:
        return missing if isnan(value) else bisect_left(inner, value)

    return position


def _v2_datatype(kind: str, categories: Sequence[str | int]) -> str:
    if kind == "categorical":
        return "INT64" if all(type(c) is int for c in categories) else "BYTES"
    return "INT64" if kind == "integer" else "FP64"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {_short(value)}"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return f"{type(value).__name__} {_short(value)}"


def _short(value: Any, limit: int = 60) -> str:
    """A client's value as JSON-like text of at most `limit` characters. Never `repr` of the whole: a value can
    be nested thousands deep (repr raises RecursionError) or megabytes long; this walks only what it shows."""
    out: list[str] = []
    size = 0
    todo: list[Any] = [value]  # values to show, and the literal text between them (as _Text)
    while todo and size <= limit:
        item = todo.pop()
        kind = type(item)
        if kind is _Text:
            text = str(item)
        elif kind is str:
            text = repr(item[:limit])
        elif kind is list or kind is tuple:
            text = "["
            todo.append(_Text("]"))
            for i in range(min(len(item), limit) - 1, -1, -1):  # a list longer than the limit cannot all be shown
                todo.append(item[i])
                if i:
                    todo.append(_Text(", "))
        elif kind is dict:
            text = "{"
            todo.append(_Text("}"))
            pairs = [pair for _, pair in zip(range(limit), item.items(), strict=False)]
            for i in range(len(pairs) - 1, -1, -1):
                todo.append(pairs[i][1])
                todo.append(_Text(repr(str(pairs[i][0])[:limit]) + ": "))
                if i:
                    todo.append(_Text(", "))
        elif kind is int and item.bit_length() > 256:
            text = f"<an integer of {item.bit_length()} bits>"
        elif item is None or kind in (bool, int, float):
            text = repr(item)
        else:
            text = f"<{kind.__name__}>"
        out.append(text)
        size += len(text)
    shown = "".join(out)
    return shown if size <= limit and not todo else shown[:limit - 3] + "..."


class _Text(str):
    """Literal text in _short's work list (brackets, commas), told apart from a client's strings."""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)
