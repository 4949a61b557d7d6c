"""Python API: build a graph in code, validate, run, export, load back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyless import Graph
from comfyless.engine.cache import OutputCache
from comfyless.typesys.errors import InvalidValue, UnknownNodeType, WorkflowInvalid


@pytest.fixture
def graph(registry):
    return Graph(registry)


def _chain(g):
    num = g.node("TestNumber", seed=5)
    fmt = g.node("TestFormat", value=num.out("INT"), style="hex")  # scale/upper: defaults
    sink = g.node("TestSink", value=fmt.out(0))
    return num, fmt, sink


def test_build_validate_run(graph, tmp_path):
    _num, fmt, sink = _chain(graph)
    assert fmt.inputs == {"value": graph.nodes["1"].out(0), "style": "hex", "scale": 1.0,
                          "upper": False}
    assert graph.validate(tmp_path) == []
    results = graph.run(tmp_path, cache=OutputCache())
    assert results == {sink.id: {"text": ["0x5"]}}
    assert graph.outputs(fmt) == (["0x5"],)


def test_to_api_shape(graph):
    _chain(graph)
    api = graph.to_api()
    assert api["2"] == {"class_type": "TestFormat",
                        "inputs": {"value": ["1", 0], "style": "hex", "scale": 1.0,
                                   "upper": False}}
    json.dumps(api)  # plain JSON


def test_handle_with_one_output_is_a_link(graph):
    num = graph.node("TestNumber", seed=1)
    sink = graph.node("TestIntSink", value=num)
    assert sink.inputs["value"] == num.out(0)


def test_typos_caught_when_added(graph):
    with pytest.raises(UnknownNodeType) as info:
        graph.node("TestNumbr")
    assert "TestNumber" in info.value.extra["suggestions"]
    with pytest.raises(InvalidValue) as info:
        graph.node("TestNumber", sed=1)
    assert info.value.input_name == "sed"
    with pytest.raises(InvalidValue):
        graph.node("TestModelish").out("NOPE")


def test_validate_reports_errors(graph, tmp_path):
    num = graph.node("TestNumber", seed=-3)
    graph.node("TestIntSink", value=num.out(0))
    assert [(e.code, e.node_id) for e in graph.validate(tmp_path)] == [
        ("value_smaller_than_min", "1")]
    with pytest.raises(WorkflowInvalid):
        graph.run(tmp_path, cache=OutputCache())


def test_explicit_ids_and_titles(graph):
    num = graph.node("TestNumber", _id="seed", _title="Seed", seed=2)
    graph.node("TestIntSink", value=num.out(0))
    api = graph.to_api()
    assert api["seed"]["_meta"] == {"title": "Seed"}
    assert api["1"]["inputs"]["value"] == ["seed", 0]


def test_load_round_trip(graph, tmp_path, registry):
    _chain(graph)
    path = graph.save(tmp_path / "wf.json")
    again = Graph.load(path, registry)
    assert again.to_api() == graph.to_api()
    assert again.run(tmp_path, cache=OutputCache()) == {"3": {"text": ["0x5"]}}


def test_load_ui_format_file():
    data = Path(__file__).parent / "data"
    graph = Graph.load(data / "spec_example_ui.json")
    assert graph.to_api() == json.loads((data / "spec_example_api.json").read_text())
    assert graph.nodes["3"].out("LATENT") == graph.nodes["3"].out(0)
