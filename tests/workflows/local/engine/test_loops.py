"""Loop expansion and node names as Argo's processItem and expandSequence give them."""

from __future__ import annotations

import pytest

from workflows.local.engine.loops import LoopError, expand, expand_sequence, items_of


def test_with_items_of_maps_name_nodes_by_sorted_pairs() -> None:
    step = {"name": "t", "template": "x", "withItems": [{"tag": "9.1", "image": "debian"}],
            "arguments": {"parameters": [{"name": "i", "value": "{{item.image}}:{{item.tag}}"}]}}
    [one] = expand(step, items_of(step) or [], {})
    assert one["name"] == "t(0:image:debian,tag:9.1)"
    assert one["arguments"]["parameters"][0]["value"] == "debian:9.1"


def test_with_param_keeps_number_text() -> None:
    step = {"name": "t", "template": "x", "withParam": "[1.50, true, \"a(b)\"]"}
    assert [s["name"] for s in expand(step, items_of(step) or [], {})] == ["t(0:1.50)", "t(1:true)", "t(2:ab)"]


def test_with_param_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(LoopError, match="could not be parsed as a JSON list"):
        items_of({"name": "t", "withParam": "{\"a\": 1}"})


@pytest.mark.parametrize(("seq", "values"), [({"count": "3"}, ["0", "1", "2"]), ({"start": "3", "end": "1"},
                                             ["3", "2", "1"]), ({"count": "0"}, []),
                                             ({"start": "1", "end": "2", "format": "w-%02d"}, ["w-01", "w-02"])])
def test_with_sequence(seq: dict[str, str], values: list[str]) -> None:
    assert [v.strip('"') for v in expand_sequence(seq)] == values
