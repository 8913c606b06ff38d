"""A template's inputs and the workflow's globals as Argo v4.1.2 builds them: ProcessArgs and SubstituteParams
(workflow/common/util.go:137-330), the global parameters (operator.go setGlobalParameters) and parameters from
ConfigMaps, which the controller reads only when labelled `workflows.argoproj.io/configmap-type: Parameter`
(workflow/common/configmap.go).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from typing import Any

from workflows.local.engine.substitute import PLACEHOLDER_ABSENT, SubstitutionError, replace_obj, replace_string

CONFIGMAP_TYPE = "workflows.argoproj.io/configmap-type"
_PARAM_FIELDS = ("name", "default", "value", "valueFrom", "globalName", "enum", "description")
_VALUE_FROM_FIELDS = ("path", "jsonPath", "jqFilter", "event", "parameter", "supplied", "configMapKeyRef",
                      "default", "expression")
_STRFTIME = "aAbBcCdDeFgGhHIjklmMnprRsStTuUVwWxXyYzZ"


class InputError(ValueError):
    """A template's inputs cannot be built (Argo: CodeBadRequest); the node is Error."""


class ConfigMapNotFound(InputError):
    """The ConfigMap (as the controller sees them) or its key does not exist (Argo: CodeNotFound)."""


def any_string(value: Any) -> str:
    """AnyString: how a YAML/JSON scalar reads as a parameter value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        from workflows.local.lang.gotypes import json_float

        return json_float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def go_parameters_json(params: list[dict[str, Any]]) -> str:
    """json.Marshal of []wfv1.Parameter: fields in Go's order, empty ones left out."""
    out = []
    for param in params:
        item: dict[str, Any] = {}
        for name in _PARAM_FIELDS:
            value = param.get(name)
            if value is None or value == "" or value == []:
                continue
            if name in ("default", "value", "description"):
                value = any_string(value)
            elif name == "valueFrom" and isinstance(value, dict):
                value = {k: value[k] for k in _VALUE_FROM_FIELDS if value.get(k) not in (None, "")}
            elif name == "enum":
                value = [any_string(v) for v in value]
            item[name] = value
        out.append(item)
    from workflows.local.lang.gotypes import to_json

    return "[" + ",".join(_ordered_json(item, to_json) for item in out) + "]"


def _ordered_json(item: Mapping[str, Any], to_json: Any) -> str:
    parts = []
    for key, value in item.items():
        text = _ordered_json(value, to_json) if isinstance(value, dict) else to_json(value)
        parts.append(to_json(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


def config_map_value(config_maps: Mapping[str, Mapping[str, Any]], name: str, key: str) -> str:
    """GetConfigMapValue over the ConfigMaps the controller's informer holds (those with the label key)."""
    cm = config_maps.get(name)
    labels = ((cm or {}).get("metadata") or {}).get("labels") or {}
    if cm is None or CONFIGMAP_TYPE not in labels:
        raise ConfigMapNotFound(f"ConfigMap '{name}' does not exist. Please make sure it has the label "
                                f"{CONFIGMAP_TYPE}: Parameter to be detectable by the controller")
    if labels.get(CONFIGMAP_TYPE) != "Parameter":
        raise InputError(f"ConfigMap '{name}' needs to have the label {CONFIGMAP_TYPE}: Parameter to load parameters")
    data = cm.get("data") or {}
    if key not in data:
        raise ConfigMapNotFound(f"ConfigMap '{name}' does not have the key '{key}'")
    return str(data[key])


def global_parameters(meta: Mapping[str, Any], spec: Mapping[str, Any], config_maps: Mapping[str, Any],
                      uid: str, created: float) -> dict[str, str]:
    """setGlobalParameters: workflow.name, .uid, .parameters.*, .labels.*, .creationTimestamp.*..."""
    name = meta.get("name", "")
    g: dict[str, str] = {
        "workflow.name": name, "workflow.namespace": meta.get("namespace", "default"),
        "workflow.mainEntrypoint": spec.get("entrypoint", ""),
        "workflow.serviceAccountName": spec.get("serviceAccountName", ""), "workflow.uid": uid,
        "workflow.creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
    }
    scheduled = (meta.get("annotations") or {}).get("workflows.argoproj.io/scheduled-time")
    if scheduled is not None:  # a CronWorkflow's run (operator.go:684-689)
        g["workflow.scheduledTime"] = str(scheduled)
    if spec.get("priority") is not None:
        g["workflow.priority"] = str(spec["priority"])
    for char in _STRFTIME:
        g[f"workflow.creationTimestamp.{char}"] = time.strftime("%" + char, time.gmtime(created))
    g["workflow.creationTimestamp.s"] = str(int(created))
    g["workflow.creationTimestamp.RFC3339"] = g["workflow.creationTimestamp"]
    params = (spec.get("arguments") or {}).get("parameters") or []
    g["workflow.parameters"] = g["workflow.parameters.json"] = go_parameters_json(params)
    for param in params:
        value_from = param.get("valueFrom") or {}
        if param.get("value") is not None:
            g[f"workflow.parameters.{param['name']}"] = any_string(param["value"])
        elif value_from.get("configMapKeyRef"):
            ref = value_from["configMapKeyRef"]
            try:
                g[f"workflow.parameters.{param['name']}"] = config_map_value(config_maps, ref.get("name", ""),
                                                                               ref.get("key", ""))
            except InputError as err:
                if value_from.get("default") is None:
                    raise InputError(f"failed to set global parameter {param['name']} from configmap with name "
                                     f"{ref.get('name')} and key {ref.get('key')}: {err}") from err
                g[f"workflow.parameters.{param['name']}"] = any_string(value_from["default"])
        else:
            raise InputError(f"either value or valueFrom must be specified in order to set global parameter "
                             f"{param['name']}")
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    g["workflow.annotations"] = g["workflow.annotations.json"] = json.dumps(dict(sorted(annotations.items())),
                                                                            separators=(",", ":"))
    g["workflow.labels"] = g["workflow.labels.json"] = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    for k, v in annotations.items():
        g[f"workflow.annotations.{k}"] = str(v)
    for k, v in labels.items():
        g[f"workflow.labels.{k}"] = str(v)
    md = spec.get("workflowMetadata") or {}
    for k, v in (md.get("labels") or {}).items():
        g[f"workflow.labels.{k}"] = str(v)
    for k, v in (md.get("annotations") or {}).items():
        g[f"workflow.annotations.{k}"] = str(v)
    return g


def _argument(args: Mapping[str, Any], kind: str, name: str) -> dict[str, Any] | None:
    for item in args.get(kind) or []:
        if item.get("name") == name:
            return dict(item)
    return None


def process_args(tmpl: Mapping[str, Any], args: Mapping[str, Any], globals_: Mapping[str, str],
                 locals_: Mapping[str, str], config_maps: Mapping[str, Any], validate_only: bool = False
                 ) -> dict[str, Any]:
    """ProcessArgs: each input parameter's default, the argument of the same name, a ConfigMap value; input
    artifacts from arguments; then SubstituteParams."""
    new = copy.deepcopy(dict(tmpl))
    inputs = new.get("inputs") or {}
    for param in inputs.get("parameters") or []:
        if param.get("value") is None and param.get("default") is not None:
            param["value"] = param["default"]
        arg = _argument(args, "parameters", param["name"])
        if arg is not None and arg.get("value") == PLACEHOLDER_ABSENT:
            if param.get("value") is None and param.get("valueFrom") is None:
                raise InputError(f"inputs.parameters.{param['name']}: argument references an absent optional "
                                 f"(skipped/omitted node output with no default)")
        elif arg is not None:
            if arg.get("value") is not None:
                param["value"] = arg["value"]
                param.pop("valueFrom", None)
            else:
                param["valueFrom"] = arg.get("valueFrom")
                param.pop("value", None)
        _config_map_input(param, globals_, config_maps)
        if param.get("value") is not None:
            param["value"] = any_string(param["value"])
    for i, art in enumerate(inputs.get("artifacts") or []):
        arg = _argument(args, "artifacts", art["name"])
        if not art.get("optional") and not _has_location(art):
            if arg is None:
                raise InputError(f"inputs.artifacts.{art['name']} was not supplied")
            if not (arg.get("from") and arg.get("fromExpression")) and not _has_location(arg) and not validate_only:
                raise InputError(f"inputs.artifacts.{art['name']} missing location information")
        if arg is not None:
            arg["path"] = art.get("path")
            for key in ("mode", "recurseMode"):
                if key in art:
                    arg[key] = art[key]
                else:
                    arg.pop(key, None)
            inputs["artifacts"][i] = arg
    return substitute_params(new, globals_, locals_)


def _has_location(art: Mapping[str, Any]) -> bool:
    return any(art.get(k) for k in ("s3", "git", "http", "artifactory", "hdfs", "raw", "oss", "gcs", "azure",
                                     "plugin", "_key"))


def _config_map_input(param: dict[str, Any], globals_: Mapping[str, str], config_maps: Mapping[str, Any]) -> None:
    value_from = param.get("valueFrom") or {}
    ref = value_from.get("configMapKeyRef")
    if ref:
        name = replace_string(ref.get("name", ""), dict(globals_), None)
        key = replace_string(ref.get("key", ""), dict(globals_), None)
        try:
            param["value"] = config_map_value(config_maps, name, key)
        except InputError as err:
            if value_from.get("default") is None or not isinstance(err, ConfigMapNotFound):
                raise InputError(f"unable to retrieve inputs.parameters.{param['name']} from ConfigMap: {err}") from err
            param["value"] = value_from["default"]
    elif param.get("value") is None:
        raise InputError(f"inputs.parameters.{param['name']} was not supplied")


def substitute_params(tmpl: dict[str, Any], globals_: Mapping[str, str], locals_: Mapping[str, str]
                      ) -> dict[str, Any]:
    """SubstituteParams: globals and locals first, then the inputs (whose values may use the globals)."""
    replace_map: dict[str, Any] = {**globals_, **locals_}
    first = replace_obj(tmpl, replace_map, None)
    inputs = first.get("inputs") or {}
    for param in inputs.get("parameters") or []:
        if param.get("value") is None and param.get("valueFrom") is None:
            raise InputError(f"inputs.parameters.{param['name']} had no value")
        if param.get("value") is not None:
            replace_map[f"inputs.parameters.{param['name']}"] = any_string(param["value"])
    replace_map["inputs.parameters"] = go_parameters_json(inputs.get("parameters") or [])
    for art in inputs.get("artifacts") or []:
        if art.get("path"):
            replace_map[f"inputs.artifacts.{art['name']}.path"] = art["path"]
    outputs = first.get("outputs") or {}
    for art in outputs.get("artifacts") or []:
        if art.get("path"):
            replace_map[f"outputs.artifacts.{art['name']}.path"] = art["path"]
    for param in outputs.get("parameters") or []:
        if (param.get("valueFrom") or {}).get("path"):
            replace_map[f"outputs.parameters.{param['name']}.path"] = param["valueFrom"]["path"]
    try:
        return dict(replace_obj(first, replace_map, None))
    except SubstitutionError:
        raise
