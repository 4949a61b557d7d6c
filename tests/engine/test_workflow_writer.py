"""One API-JSON writer, one link type, /object_info from the schemas, older layouts declared
on the schema (issue 10 §2-§4)."""

from __future__ import annotations

import json

import pytest

from comfyless import api as graph_api
from comfyless.api import Graph, Link
from comfyless.cli import main as comfyless
from comfyless.engine import workflow
from comfyless.engine.load import convert_to_api_json, load_workflow
from comfyless.engine.object_info import node_info, object_info
from comfyless.nodes import REGISTRY
from comfyless.typesys import BOOLEAN, COMBO, FLOAT, INT, STRING, Input, Node, NodeSchema, Output
from comfyless.typesys.errors import SchemaError
from comfyless.typesys.schema import NodeRegistry
from tests.engine.test_ui_convert import Ui
from tests.testnodes import test_registry


def _ui_with_lists_links_and_titles() -> dict:
    """TestNumber -> TestAdd (list constant in `a`) -> TestIntSink; one node titled ""."""
    ui = Ui()
    number = ui.node("TestNumber", [7, "fixed"], outputs=("INT",), title="")
    add = ui.node("TestAdd", [[1, 2], 0], inputs=(("b", "INT", "widget"),), outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),), title="the sink")
    ui.link(number, 0, add, "b")
    ui.link(add, 0, sink, "value")
    return ui.doc()


def test_graph_to_api_and_convert_write_the_same_json(tmp_path, capsys, monkeypatch):
    registry = test_registry()
    monkeypatch.setattr("comfyless.nodes.REGISTRY", registry)  # what `comfyless convert` uses
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(_ui_with_lists_links_and_titles()))

    converted = convert_to_api_json(path, registry)
    assert comfyless(["convert", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    from_graph = Graph.load(path, registry).to_api()

    assert converted == printed == from_graph
    assert converted["2"]["inputs"] == {"a": {"__value__": [1, 2]}, "b": ["1", 0]}
    assert converted["3"]["inputs"] == {"value": ["2", 0]}
    assert converted["1"]["_meta"] == {"title": ""}  # an empty title is kept, as read
    assert converted["3"]["_meta"] == {"title": "the sink"}
    # the JSON reads back to the same workflow (list constant stays a constant, not a link)
    again = load_workflow(converted, registry)
    assert again["2"].inputs == {"a": [1, 2], "b": Link("1", 0)}


def test_graph_built_in_code_round_trips_through_the_one_writer(tmp_path):
    registry = test_registry()
    g = Graph(registry)
    number = g.node("TestNumber", seed=3)
    add = g.node("TestAdd", a=(4, 5), b=number.out(0))  # a tuple constant is a list too
    g.node("TestIntSink", value=add, _title="sink")
    assert number.out(0) == Link("1", 0) and type(number.out(0)) is Link
    api = g.to_api()
    assert api == workflow.to_api_json(g.nodes)
    assert api["2"]["inputs"] == {"a": {"__value__": [4, 5]}, "b": ["1", 0]}
    assert api["3"] == {"class_type": "TestIntSink", "inputs": {"value": ["2", 0]},
                        "_meta": {"title": "sink"}}
    saved = g.save(tmp_path / "g.json")
    assert convert_to_api_json(saved, registry) == api


def test_one_link_type():
    assert graph_api.Link is workflow.Link
    assert not hasattr(graph_api, "OutputRef")


# -- /object_info --------------------------------------------------------------------------------
def test_object_info_save_image_unchanged():
    entry = object_info(REGISTRY)["SaveImage"]
    assert entry["input"]["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    assert entry["input"]["required"]["images"] == ["IMAGE", {}]
    assert entry["input"]["required"]["filename_prefix"][1]["default"] == "ComfyUI"
    assert entry["input_order"] == {"required": ["images", "filename_prefix"], "optional": []}
    assert (entry["output"], entry["output_name"], entry["output_node"]) == \
        (["IMAGE"], ["images"], True)
    assert entry["name"] == "SaveImage" and entry["display_name"] == "Save Image"


def test_hidden_inputs_come_from_the_schema():
    info = object_info(REGISTRY)
    for class_type, entry in info.items():
        schema = REGISTRY[class_type].schema
        if schema.output_node:  # ComfyUI's rule, now the schema's default
            assert entry["input"]["hidden"] == {"prompt": "PROMPT",
                                                "extra_pnginfo": "EXTRA_PNGINFO"}, class_type
        else:
            assert "hidden" not in entry["input"], class_type

    class Declared(Node):
        schema = NodeSchema("Declared", inputs=(Input("x", INT, default=1),),
                            output_node=True, hidden=("unique_id", "prompt"))

    class NoneAtAll(Node):
        schema = NodeSchema("NoneAtAll", output_node=True, hidden=())

    assert node_info(Declared)["input"]["hidden"] == {"unique_id": "UNIQUE_ID",
                                                      "prompt": "PROMPT"}
    assert "hidden" not in node_info(NoneAtAll)["input"]


def test_object_info_lists_files_from_base_dir(tmp_path):
    from comfyless.engine.paths import BasePaths

    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "a.safetensors").write_bytes(b"x")
    paths = BasePaths.resolve(tmp_path)
    entry = object_info(REGISTRY, paths)["CheckpointLoaderSimple"]
    assert entry["input"]["required"]["ckpt_name"][1]["options"] == ["a.safetensors"]
    assert object_info(REGISTRY)["CheckpointLoaderSimple"]["input"]["required"][
        "ckpt_name"][1]["options"] == []


# -- older widget layouts, declared on the schema ------------------------------------------------
class _Grown(Node):
    """A node whose `scale` and `upper` inputs came in a later version."""

    schema = NodeSchema(
        "TestGrown",
        inputs=(Input("value", INT, default=1, min=0, max=10),
                Input("style", COMBO, default="plain", choices=("plain", "hex")),
                Input("scale", FLOAT, default=2.5, min=0.0, max=10.0),
                Input("upper", BOOLEAN, default=True)),
        outputs=(Output("STRING", STRING),),
        output_node=True,
        older_widget_layouts=(("scale", "upper"),),
    )

    @staticmethod
    def execute(ctx, value, style, scale, upper):
        return (f"{value}{style}{scale}{upper}",)


def _grown_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register(_Grown)
    return registry


def test_older_widget_layout_from_the_schema_fills_defaults():
    registry = _grown_registry()
    ui = Ui()
    ui.node("TestGrown", [4, "hex"], outputs=("STRING",))  # saved by the older version
    assert load_workflow(json.dumps(ui.doc()), registry)["1"].inputs == \
        {"value": 4, "style": "hex", "scale": 2.5, "upper": True}
    api = {"1": {"class_type": "TestGrown", "inputs": {"value": 4, "style": "hex"}}}
    assert load_workflow(api, registry)["1"].inputs == \
        {"value": 4, "style": "hex", "scale": 2.5, "upper": True}
    # missing an input every version had: no older version, left for validation to report
    api = {"1": {"class_type": "TestGrown", "inputs": {"style": "hex"}}}
    assert load_workflow(api, registry)["1"].inputs == {"style": "hex"}


def test_older_widget_layout_must_name_real_inputs():
    with pytest.raises(SchemaError, match="older_widget_layouts names unknown inputs"):
        NodeSchema("Bad", inputs=(Input("a", INT, default=0),),
                   older_widget_layouts=(("a", "b"),))
