"""ProcessArgs and parameters from ConfigMaps, with the controller's label rules."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.local.engine.inputs import InputError, config_map_value, process_args

LABEL = "workflows.argoproj.io/configmap-type"


def _cm(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "cm", "labels": labels}, "data": {"k": "v"}}


def test_a_parameter_configmap_is_read() -> None:
    assert config_map_value({"cm": _cm({LABEL: "Parameter"})}, "cm", "k") == "v"


@pytest.mark.parametrize("labels", [{}, {LABEL: "Other"}], ids=["unlabelled", "other-type"])
def test_a_configmap_without_the_parameter_label_is_not_read(labels: dict[str, str]) -> None:
    with pytest.raises(InputError):
        config_map_value({"cm": _cm(labels)}, "cm", "k")


def test_arguments_replace_defaults_and_inputs_are_substituted() -> None:
    tmpl = {"name": "t", "inputs": {"parameters": [{"name": "a", "default": "1"}, {"name": "b", "default": "2"}]},
            "container": {"command": ["echo", "{{inputs.parameters.a}}{{inputs.parameters.b}}{{workflow.name}}"]}}
    out = process_args(tmpl, {"parameters": [{"name": "b", "value": "3"}]}, {"workflow.name": "w"}, {}, {})
    assert out["container"]["command"] == ["echo", "13w"]


def test_an_input_without_a_value_is_an_error() -> None:
    tmpl = {"name": "t", "inputs": {"parameters": [{"name": "a"}]}, "container": {"command": ["true"]}}
    with pytest.raises(InputError, match="inputs.parameters.a was not supplied"):
        process_args(tmpl, {}, {}, {}, {})
