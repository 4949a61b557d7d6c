"""UI (litegraph) workflow -> API workflow: every rule of workflow-formats.md §3-§7."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfyless.engine.load import ApiNode, Link, load_workflow, load_workflow_full, to_api_json
from comfyless.typesys import (
    CLIP,
    CONDITIONING,
    IMAGE,
    INT,
    LATENT,
    STRING,
    VAE,
    Input,
    Node,
    NodeSchema,
    Output,
)
from comfyless.typesys.errors import InvalidWorkflow
from tests.testnodes import test_registry

DATA = Path(__file__).parent / "data"


# -- a small UI-workflow builder -----------------------------------------------------------------
class Ui:
    """Builds litegraph JSON: nodes with typed slots, links as 6-tuples (0.4) or objects (1.0)."""

    def __init__(self, version: float = 0.4) -> None:
        self.version = version
        self.nodes: list[dict] = []
        self.links: list[Any] = []
        self.subgraphs: list[dict] = []
        self.inputs: list[dict] = []  # subgraph IO (when used as a definition)
        self.outputs: list[dict] = []

    def node(self, type_: str, widgets: list | None = None, inputs: tuple = (),
             outputs: tuple = (), *, mode: int = 0, title: str | None = None,
             node_id: int | None = None) -> dict:
        """inputs: (name, type) sockets or (name, type, "widget") converted widget inputs."""
        node = {"id": node_id if node_id is not None else len(self.nodes) + 1, "type": type_,
                "mode": mode, "pos": [0, 0], "size": [100, 50], "flags": {}, "order": 0,
                "inputs": [{"name": i[0], "type": i[1], "link": None,
                            **({"widget": {"name": i[0]}} if len(i) > 2 else {})}
                           for i in inputs],
                "outputs": [{"name": o, "type": o, "links": []} for o in outputs],
                "properties": {"Node name for S&R": type_}, "widgets_values": widgets or []}
        if title is not None:
            node["title"] = title
        self.nodes.append(node)
        return node

    def link(self, src: dict | int, slot: int, dst: dict | int, name: str | int) -> int:
        """Link src output `slot` to dst input `name` (or pseudo ids -10 / -20 with a slot)."""
        link_id = len(self.links) + 1
        src_id = src if isinstance(src, int) else src["id"]
        if isinstance(dst, int):
            dst_id, target_slot = dst, name
        else:
            dst_id = dst["id"]
            target_slot = next(i for i, s in enumerate(dst["inputs"]) if s["name"] == name)
            dst["inputs"][target_slot]["link"] = link_id
        link_type = "*"
        if not isinstance(src, int):
            src["outputs"][slot]["links"].append(link_id)
            link_type = src["outputs"][slot]["type"]
        if self.version >= 1 or self.subgraph_mode:
            self.links.append({"id": link_id, "origin_id": src_id, "origin_slot": slot,
                               "target_id": dst_id, "target_slot": target_slot,
                               "type": link_type})
        else:
            self.links.append([link_id, src_id, slot, dst_id, target_slot, link_type])
        return link_id

    subgraph_mode = False

    def subgraph(self, uid: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]
                 ) -> Ui:
        sub = Ui()
        sub.subgraph_mode = True
        sub.uid = uid
        sub.inputs = [{"id": f"in{i}", "name": n, "type": t, "linkIds": []}
                      for i, (n, t) in enumerate(inputs)]
        sub.outputs = [{"id": f"out{i}", "name": n, "type": t, "linkIds": []}
                       for i, (n, t) in enumerate(outputs)]
        self.subgraphs.append(sub)
        return sub

    def definition(self) -> dict:
        return {"id": self.uid, "version": 1, "revision": 0, "name": self.uid,
                "state": {}, "nodes": self.nodes, "links": self.links, "groups": [],
                "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
                "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
                "inputs": self.inputs, "outputs": self.outputs, "widgets": [],
                **({"definitions": {"subgraphs": [s.definition() for s in self.subgraphs]}}
                   if self.subgraphs else {})}

    def doc(self) -> dict:
        doc: dict[str, Any] = {"nodes": self.nodes, "links": self.links, "groups": [],
                               "config": {}, "extra": {}, "version": self.version}
        if self.version >= 1:
            doc["state"] = {"lastNodeId": len(self.nodes), "lastLinkId": len(self.links)}
        else:
            doc["last_node_id"] = len(self.nodes)
            doc["last_link_id"] = len(self.links)
        if self.subgraphs:
            doc["definitions"] = {"subgraphs": [s.definition() for s in self.subgraphs]}
        return doc


def _api(doc: dict, registry=None) -> dict:
    return to_api_json(load_workflow(json.dumps(doc), registry or test_registry()))


def _inputs(doc: dict, node_id: str, registry=None) -> dict:
    return _api(doc, registry)[node_id]["inputs"]


def _number_sink(ui: Ui, seed: int = 7, **kw) -> tuple[dict, dict]:
    num = ui.node("TestNumber", [seed, "fixed"], outputs=("INT",), **kw)
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    return num, sink


# -- the spec's worked example ------------------------------------------------------------------
def _stub(class_type: str, display: str, inputs: tuple, outputs: tuple) -> type[Node]:
    class Stub(Node):
        schema = NodeSchema(class_type, display_name=display, inputs=inputs, outputs=outputs)

        @staticmethod
        def execute(ctx, **kw):
            raise NotImplementedError("schema stand-in for loader tests")

    return Stub


SPEC_STUBS = [  # inputs as in workflow-formats.md §8, registered only where the real node is absent
    _stub("CLIPTextEncode", "CLIP Text Encode (Prompt)",
          (Input("text", STRING, multiline=True, default=""), Input("clip", CLIP)),
          (Output("CONDITIONING", CONDITIONING),)),
    _stub("EmptyLatentImage", "Empty Latent Image",
          (Input("width", INT, default=512, min=16, max=16384, step=8),
           Input("height", INT, default=512, min=16, max=16384, step=8),
           Input("batch_size", INT, default=1, min=1, max=4096)), (Output("LATENT", LATENT),)),
    _stub("VAEDecode", "VAE Decode", (Input("samples", LATENT), Input("vae", VAE)),
          (Output("IMAGE", IMAGE),)),
]


@pytest.fixture
def spec_registry():
    registry = test_registry()
    for stub in SPEC_STUBS:
        if stub.schema.class_type not in registry:
            registry.register(stub)
    return registry


def test_spec_worked_example(spec_registry):
    ui = json.loads((DATA / "spec_example_ui.json").read_text())
    expected = json.loads((DATA / "spec_example_api.json").read_text())
    assert _api(ui, spec_registry) == expected


def test_spec_example_keeps_ui_json(spec_registry):
    api, ui = load_workflow_full(DATA / "spec_example_ui.json", spec_registry)
    assert ui["nodes"][0]["type"] == "CheckpointLoaderSimple"
    assert api["3"].inputs["model"] == Link("4", 0)
    assert isinstance(api["3"], ApiNode) and api["3"].title == "KSampler"


# -- widgets_values -------------------------------------------------------------------------------
def test_control_after_generate_values_skipped():
    ui = Ui()
    node = ui.node("TestUiWidgets", ["b", "randomize", "", 5, "increment", 2.5, "hi"],
                   outputs=("STRING",))
    sink = ui.node("TestSink", [], inputs=(("value", "STRING"),))
    ui.link(node, 0, sink, "value")
    assert _inputs(ui.doc(), "1") == {"pick": "b", "count": 5, "scale": 2.5, "note": "hi"}


def test_seed_named_int_has_control_value():
    ui = Ui()
    num, sink = _number_sink(ui, seed=42)
    ui.link(num, 0, sink, "value")
    assert _inputs(ui.doc(), "1") == {"seed": 42}


def test_display_state_of_a_node_without_widgets_is_skipped():
    """PreviewAny saves its preview text's state ([None, None, False]) although it has no
    widget inputs: nothing to map, and no error (the sink has no widgets either)."""
    ui = Ui()
    node = ui.node("TestUiWidgets", ["b", "randomize", "", 5, "increment", 2.5, "hi"],
                   outputs=("STRING",))
    sink = ui.node("TestSink", [None, None, False], inputs=(("value", "STRING"),))
    ui.link(node, 0, sink, "value")
    assert _inputs(ui.doc(), "2") == {"value": ["1", 0]}


def test_image_upload_extra_value():
    ui = Ui()
    ui.node("LoadImage", ["cat.png", "image"], outputs=("IMAGE", "MASK"))
    assert _inputs(ui.doc(), "1") == {"image": "cat.png"}


def test_null_holes_form():
    ui = Ui()
    ui.node("TestUiWidgets", ["b", "fixed", "", 5, "fixed", 2.5, "hi", None, None],
            outputs=("STRING",))
    assert _inputs(ui.doc(), "1") == {"pick": "b", "count": 5, "scale": 2.5, "note": "hi"}


def test_widgets_values_as_object():
    ui = Ui()
    ui.node("TestAdd", {"a": 3, "b": 4}, outputs=("INT",))
    assert _inputs(ui.doc(), "1") == {"a": 3, "b": 4}


@pytest.mark.parametrize("values", [[1], [1, 2, 3], [1, 2, 3, None], []])
def test_widget_count_mismatch_names_node(values):
    ui = Ui()
    ui.node("TestAdd", values, outputs=("INT",), node_id=12)
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(ui.doc(), test_registry())
    err = info.value
    assert err.node_id == "12" and err.path == "$.nodes[0].widgets_values"
    assert err.extra["class_type"] == "TestAdd"
    assert (err.extra["expected"], err.extra["found"]) == (2, len(values))
    assert "expected 2" in err.message and "TestAdd" in err.message


def test_converted_widget_link_wins():
    ui = Ui()
    num = ui.node("TestNumber", [9, "fixed"], outputs=("INT",))
    add = ui.node("TestAdd", [1, 2], inputs=(("a", "INT", "widget"),), outputs=("INT",))
    ui.link(num, 0, add, "a")
    assert _inputs(ui.doc(), "2") == {"a": ["1", 0], "b": 2}


def test_compressed_input_slots():
    # Only the linked widget input is serialised; target_slot indexes that compressed list.
    ui = Ui()
    num = ui.node("TestNumber", [9, "fixed"], outputs=("INT",))
    add = ui.node("TestAdd", [1, 2], inputs=(("b", "INT", "widget"),), outputs=("INT",))
    ui.link(num, 0, add, "b")
    assert ui.links[0][4] == 0
    assert _inputs(ui.doc(), "2") == {"a": 1, "b": ["1", 0]}


def test_titles_become_meta():
    ui = Ui()
    ui.node("TestAdd", [1, 2], outputs=("INT",), title="My adder")
    ui.node("LoadImage", ["x.png", "image"], outputs=("IMAGE", "MASK"))
    api = _api(ui.doc())
    assert api["1"]["_meta"] == {"title": "My adder"}
    assert api["2"]["_meta"] == {"title": "Load Image"}  # schema display name by default


# -- modes -----------------------------------------------------------------------------------------
def test_muted_node_dropped_with_its_links():
    ui = Ui()
    num, sink = _number_sink(ui, mode=2)
    ui.link(num, 0, sink, "value")
    api = _api(ui.doc())
    assert "1" not in api and api["2"]["inputs"] == {}


def test_muted_source_keeps_widget_value():
    ui = Ui()
    num = ui.node("TestNumber", [9, "fixed"], outputs=("INT",), mode=2)
    add = ui.node("TestAdd", [1, 2], inputs=(("a", "INT", "widget"),), outputs=("INT",))
    ui.link(num, 0, add, "a")
    assert _inputs(ui.doc(), "2") == {"a": 1, "b": 2}


def test_bypass_same_slot_passthrough():
    ui = Ui()
    src = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    mid = ui.node("TestAdd", [0, 0], inputs=(("a", "INT", "widget"),), outputs=("INT",), mode=4)
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(src, 0, mid, "a")
    ui.link(mid, 0, sink, "value")
    api = _api(ui.doc())
    assert "2" not in api and api["3"]["inputs"] == {"value": ["1", 0]}


def test_bypass_matches_by_type_recursively():
    # Two bypassed KSamplers in a row: LATENT output -> their latent_image input (slot 3).
    ui = Ui()
    src = ui.node("TestModelish", [], outputs=("MODEL", "LATENT", "CONDITIONING", "IMAGE"))
    sockets = (("model", "MODEL"), ("positive", "CONDITIONING"),
               ("negative", "CONDITIONING"), ("latent_image", "LATENT"))
    values = [1, "fixed", 20, 8.0, "euler", "normal", 1.0]
    k1 = ui.node("KSampler", values, inputs=sockets, outputs=("LATENT",), mode=4)
    k2 = ui.node("KSampler", values, inputs=sockets, outputs=("LATENT",), mode=4)
    sink = ui.node("TestLatentSink", [], inputs=(("samples", "LATENT"),))
    for k in (k1, k2):
        ui.link(src, 0, k, "model")
        ui.link(src, 2, k, "positive")
        ui.link(src, 2, k, "negative")
    ui.link(src, 1, k1, "latent_image")
    ui.link(k1, 0, k2, "latent_image")
    ui.link(k2, 0, sink, "samples")
    api = _api(ui.doc())
    assert sorted(api) == ["1", "4"]
    assert api["4"]["inputs"] == {"samples": ["1", 1]}


def test_bypass_without_matching_input_leaves_unconnected():
    ui = Ui()
    num = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    fmt = ui.node("TestFormat", ["plain", 1.0, False], inputs=(("value", "INT"),),
                  outputs=("STRING",), mode=4)
    sink = ui.node("TestSink", [], inputs=(("value", "STRING"),))
    ui.link(num, 0, fmt, "value")
    ui.link(fmt, 0, sink, "value")
    api = _api(ui.doc())
    assert "2" not in api and api["3"]["inputs"] == {}


# -- virtual nodes --------------------------------------------------------------------------------
def test_reroute_chain():
    ui = Ui()
    num = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    previous, slot = num, 0
    for _ in range(3):
        reroute = ui.node("Reroute", [], inputs=(("", "*"),), outputs=("INT",))
        ui.link(previous, slot, reroute, "")
        previous = reroute
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(previous, 0, sink, "value")
    api = _api(ui.doc())
    assert sorted(api) == ["1", "5"] and api["5"]["inputs"] == {"value": ["1", 0]}


def test_long_reroute_chain_is_not_recursive():
    ui = Ui()
    num = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    previous = num
    for _ in range(3000):
        reroute = ui.node("Reroute", [], inputs=(("", "*"),), outputs=("*",))
        ui.link(previous, 0, reroute, "")
        previous = reroute
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(previous, 0, sink, "value")
    assert _api(ui.doc())[str(sink["id"])]["inputs"] == {"value": ["1", 0]}


def test_reroute_loop_is_an_error():
    ui = Ui()
    r1 = ui.node("Reroute", [], inputs=(("", "*"),), outputs=("*",))
    r2 = ui.node("Reroute", [], inputs=(("", "*"),), outputs=("*",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(r1, 0, r2, "")
    ui.link(r2, 0, r1, "")
    ui.link(r2, 0, sink, "value")
    with pytest.raises(InvalidWorkflow, match="loop"):
        load_workflow(ui.doc(), test_registry())


def test_primitive_node_value_pushed_as_constant():
    ui = Ui()
    prim = ui.node("PrimitiveNode", [17, "fixed"], outputs=("INT",))
    add = ui.node("TestAdd", [1, 2], inputs=(("a", "INT", "widget"), ("b", "INT", "widget")),
                  outputs=("INT",))
    ui.link(prim, 0, add, "a")
    ui.link(prim, 0, add, "b")
    api = _api(ui.doc())
    assert sorted(api) == ["2"] and api["2"]["inputs"] == {"a": 17, "b": 17}


def test_primitive_through_reroute():
    ui = Ui()
    prim = ui.node("PrimitiveNode", ["hex"], outputs=("COMBO",))
    reroute = ui.node("Reroute", [], inputs=(("", "*"),), outputs=("*",))
    fmt = ui.node("TestFormat", ["plain", 1.0, False], inputs=(("style", "COMBO", "widget"),),
                  outputs=("STRING",))
    ui.link(prim, 0, reroute, "")
    ui.link(reroute, 0, fmt, "style")
    assert _inputs(ui.doc(), "3")["style"] == "hex"


def test_notes_and_groups_ignored():
    ui = Ui()
    ui.node("Note", ["remember"])
    ui.node("MarkdownNote", ["# hi"])
    ui.node("TestAdd", [1, 2], outputs=("INT",))
    doc = ui.doc()
    doc["groups"] = [{"id": 1, "title": "G", "bounding": [0, 0, 10, 10]}]
    assert list(_api(doc)) == ["3"]


def test_unknown_node_kept_with_links_only():
    ui = Ui()
    num = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    odd = ui.node("FancyUpscaler", [1, "x", True], inputs=(("value", "INT"),),
                  outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(num, 0, odd, "value")
    ui.link(odd, 0, sink, "value")
    api = _api(ui.doc())
    assert api["2"] == {"class_type": "FancyUpscaler", "inputs": {"value": ["1", 0]},
                        "_meta": {"title": "FancyUpscaler"}}
    assert api["3"]["inputs"] == {"value": ["2", 0]}


def test_unknown_node_reported_by_validator(tmp_path):
    from comfyless.engine.paths import BasePaths
    from comfyless.engine.validate import validate

    ui = Ui()
    num = ui.node("TestNumber", [3, "fixed"], outputs=("INT",))
    sink = ui.node("TestIntSnk", [], inputs=(("value", "INT"),))
    ui.link(num, 0, sink, "value")
    registry = test_registry()
    errors = validate(load_workflow(ui.doc(), registry), registry, BasePaths.resolve(tmp_path))
    unknown = [e for e in errors if e.code == "missing_node_type"]
    assert unknown and unknown[0].node_id == "2"
    assert "TestIntSink" in unknown[0].extra["suggestions"]


# -- litegraph 1.0 ---------------------------------------------------------------------------------
def test_version_1_link_objects():
    ui = Ui(version=1)
    num = ui.node("TestNumber", [4, "fixed"], outputs=("INT",))
    add = ui.node("TestAdd", [1, 2], inputs=(("a", "INT", "widget"),), outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(num, 0, add, "a")
    ui.link(add, 0, sink, "value")
    doc = ui.doc()
    assert isinstance(doc["links"][0], dict) and "last_node_id" not in doc
    assert _api(doc) == {
        "1": {"class_type": "TestNumber", "inputs": {"seed": 4}, "_meta": {"title": "TestNumber"}},
        "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": 2},
              "_meta": {"title": "TestAdd"}},
        "3": {"class_type": "TestIntSink", "inputs": {"value": ["2", 0]},
              "_meta": {"title": "TestIntSink"}}}


def test_version_1_native_reroutes_and_floating_links_ignored():
    ui = Ui(version=1)
    num, sink = _number_sink(ui)
    ui.link(num, 0, sink, "value")
    doc = ui.doc()
    doc["links"][0]["parentId"] = 2
    doc["reroutes"] = [{"id": 1, "pos": [10, 10], "linkIds": [1]},
                       {"id": 2, "parentId": 1, "pos": [20, 20], "linkIds": [1]}]
    doc["floatingLinks"] = [{"id": 5, "origin_id": -1, "origin_slot": -1, "target_id": 2,
                             "target_slot": 0, "type": "INT", "parentId": 1}]
    assert _inputs(doc, "2") == {"value": ["1", 0]}


def test_list_widget_value_wrapped_in_api_json():
    ui = Ui()
    ui.node("TestSum", [], inputs=(("values", "INT"),), outputs=("INT",))
    ui.node("TestAdd", [[1, 2], 0], outputs=("INT",))
    api = load_workflow(json.dumps(ui.doc()), test_registry())
    assert api["2"].inputs["a"] == [1, 2]
    assert to_api_json(api)["2"]["inputs"]["a"] == {"__value__": [1, 2]}


# -- subgraphs -------------------------------------------------------------------------------------
def _adder_subgraph(ui: Ui, uid: str = "11111111-aaaa-4bbb-8ccc-000000000001") -> Ui:
    """Subgraph: in0 (INT 'a') and in1 (INT 'b') -> TestAdd -> out0."""
    sub = ui.subgraph(uid, [("a", "INT"), ("b", "INT")], [("sum", "INT")])
    add = sub.node("TestAdd", [100, 200], inputs=(("a", "INT", "widget"), ("b", "INT", "widget")),
                   outputs=("INT",), node_id=3)
    sub.link(-10, 0, add, "a")
    sub.link(-10, 1, add, "b")
    sub.link(add, 0, -20, 0)
    return sub


def test_subgraph_flattened_with_outer_inner_ids():
    ui = Ui()
    sub = _adder_subgraph(ui)
    num = ui.node("TestNumber", [5, "fixed"], outputs=("INT",))
    inst = ui.node(sub.uid, [0, 0], inputs=(("a", "INT", "widget"), ("b", "INT", "widget")),
                   outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(num, 0, inst, "a")
    ui.link(num, 0, inst, "b")
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert sorted(api) == ["1", "2:3", "3"]
    assert api["2:3"]["inputs"] == {"a": ["1", 0], "b": ["1", 0]}
    assert api["3"]["inputs"] == {"value": ["2:3", 0]}


def test_subgraph_unconnected_input_takes_instance_widget_value():
    ui = Ui()
    sub = _adder_subgraph(ui)
    num = ui.node("TestNumber", [5, "fixed"], outputs=("INT",))
    inst = ui.node(sub.uid, [0, 42], inputs=(("a", "INT", "widget"),), outputs=("INT",))
    ui.link(num, 0, inst, "a")
    api = _api(ui.doc())
    assert api["2:3"]["inputs"] == {"a": ["1", 0], "b": 42}


def test_nested_subgraph():
    ui = Ui()
    outer = ui.subgraph("22222222-aaaa-4bbb-8ccc-000000000002", [("x", "INT")], [("y", "INT")])
    inner_def = _adder_subgraph(outer)
    inner = outer.node(inner_def.uid, [0, 1], inputs=(("a", "INT", "widget"),),
                       outputs=("INT",), node_id=7)
    outer.link(-10, 0, inner, "a")
    outer.link(inner, 0, -20, 0)
    num = ui.node("TestNumber", [5, "fixed"], outputs=("INT",))
    inst = ui.node(outer.uid, [0], inputs=(("x", "INT", "widget"),), outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(num, 0, inst, "x")
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert sorted(api) == ["1", "2:7:3", "3"]
    assert api["2:7:3"]["inputs"] == {"a": ["1", 0], "b": 1}
    assert api["3"]["inputs"] == {"value": ["2:7:3", 0]}


def test_subgraph_instance_widgets_skip_control_values():
    # Instance widgets follow subgraph-input order; the seed widget brings its control value.
    ui = Ui()
    sub = ui.subgraph("44444444-aaaa-4bbb-8ccc-000000000004", [("seed", "INT"), ("b", "INT")],
                      [("sum", "INT")])
    num = sub.node("TestNumber", [0, "fixed"], inputs=(("seed", "INT", "widget"),),
                   outputs=("INT",), node_id=1)
    add = sub.node("TestAdd", [0, 0], inputs=(("a", "INT"), ("b", "INT", "widget")),
                   outputs=("INT",), node_id=2)
    sub.link(-10, 0, num, "seed")
    sub.link(-10, 1, add, "b")
    sub.link(num, 0, add, "a")
    sub.link(add, 0, -20, 0)
    inst = ui.node(sub.uid, [11, "randomize", 22], outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert api["1:1"]["inputs"] == {"seed": 11}
    assert api["1:2"]["inputs"] == {"a": ["1:1", 0], "b": 22}
    assert api["2"]["inputs"] == {"value": ["1:2", 0]}


def test_subgraph_instance_widgets_without_control_values():
    # As the published templates save them (e.g. templates-image_to_real): one value per
    # widget-fed subgraph input, none for the promoted seed's control widget.
    ui = Ui()
    sub = ui.subgraph("55555555-aaaa-4bbb-8ccc-000000000005", [("seed", "INT"), ("b", "INT")],
                      [("sum", "INT")])
    num = sub.node("TestNumber", [0, "fixed"], inputs=(("seed", "INT", "widget"),),
                   outputs=("INT",), node_id=1)
    add = sub.node("TestAdd", [0, 0], inputs=(("a", "INT"), ("b", "INT", "widget")),
                   outputs=("INT",), node_id=2)
    sub.link(-10, 0, num, "seed")
    sub.link(-10, 1, add, "b")
    sub.link(num, 0, add, "a")
    sub.link(add, 0, -20, 0)
    inst = ui.node(sub.uid, [11, 22], outputs=("INT",))
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert api["1:1"]["inputs"] == {"seed": 11}
    assert api["1:2"]["inputs"] == {"a": ["1:1", 0], "b": 22}


def test_bypassed_subgraph_instance_passes_through():
    ui = Ui()
    sub = _adder_subgraph(ui)
    num = ui.node("TestNumber", [5, "fixed"], outputs=("INT",))
    inst = ui.node(sub.uid, [0, 0], inputs=(("a", "INT", "widget"),), outputs=("INT",), mode=4)
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(num, 0, inst, "a")
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert sorted(api) == ["1", "3"] and api["3"]["inputs"] == {"value": ["1", 0]}


def test_subgraph_input_fed_by_primitive_and_muted_inner_node():
    ui = Ui()
    sub = _adder_subgraph(ui)
    sub.node("TestRandom", [1], outputs=("INT",), mode=2, node_id=9)
    prim = ui.node("PrimitiveNode", [8, "fixed"], outputs=("INT",))
    inst = ui.node(sub.uid, [0, 3], inputs=(("a", "INT", "widget"),), outputs=("INT",))
    ui.link(prim, 0, inst, "a")
    api = _api(ui.doc())
    assert api == {"2:3": {"class_type": "TestAdd", "inputs": {"a": 8, "b": 3},
                           "_meta": {"title": "TestAdd"}}}


def test_muted_subgraph_instance_dropped():
    ui = Ui()
    sub = _adder_subgraph(ui)
    inst = ui.node(sub.uid, [1, 2], outputs=("INT",), mode=2)
    sink = ui.node("TestIntSink", [], inputs=(("value", "INT"),))
    ui.link(inst, 0, sink, "value")
    api = _api(ui.doc())
    assert sorted(api) == ["2"] and api["2"]["inputs"] == {}


def test_self_containing_subgraph_is_an_error():
    ui = Ui()
    uid = "33333333-aaaa-4bbb-8ccc-000000000003"
    sub = ui.subgraph(uid, [], [])
    sub.node(uid, [], node_id=1)
    ui.node(uid, [])
    with pytest.raises(InvalidWorkflow, match="nested"):
        load_workflow(ui.doc(), test_registry())


# -- legacy output layout --------------------------------------------------------------------------
def test_legacy_output_layout_remapped():
    # TestLegacyOut saved with its legacy outputs (MODEL, LATENT, INT): slot 2 (steps) -> 1.
    ui = Ui()
    node = ui.node("TestLegacyOut", [1], outputs=("MODEL", "LATENT", "INT"))
    node["outputs"][0]["name"] = "model"
    sink = ui.node("TestLatentInt", [], inputs=(("samples", "LATENT"), ("steps", "INT")))
    ui.link(node, 1, sink, "samples")
    ui.link(node, 2, sink, "steps")
    assert _inputs(ui.doc(), "2") == {"samples": ["1", 0], "steps": ["1", 1]}


def test_current_output_layout_untouched():
    ui = Ui()
    node = ui.node("TestLegacyOut", [1], outputs=("LATENT", "INT"))
    sink = ui.node("TestLatentInt", [], inputs=(("samples", "LATENT"), ("steps", "INT")))
    ui.link(node, 0, sink, "samples")
    ui.link(node, 1, sink, "steps")
    assert _inputs(ui.doc(), "2") == {"samples": ["1", 0], "steps": ["1", 1]}


def test_legacy_output_that_no_longer_exists_is_an_error():
    ui = Ui()
    node = ui.node("TestLegacyOut", [1], outputs=("MODEL", "LATENT", "INT"))
    sink = ui.node("TestLatentInt", [], inputs=(("anything", "*"),))
    ui.link(node, 0, sink, "anything")
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(ui.doc(), test_registry())
    assert info.value.node_id == "1" and "old output" in info.value.message


# -- malformed UI files ----------------------------------------------------------------------------
def _good_doc() -> dict:
    ui = Ui()
    num, sink = _number_sink(ui)
    ui.link(num, 0, sink, "value")
    return ui.doc()


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["nodes"][1].__setitem__("type", 5), "$.nodes[1].type"),
    (lambda d: d["nodes"][0].__setitem__("mode", "muted"), "$.nodes[0].mode"),
    (lambda d: d["nodes"][1]["inputs"][0].__setitem__("link", "one"), "$.nodes[1].inputs[0].link"),
    (lambda d: d["links"].__setitem__(0, [1, 1, 0]), "$.links[0]"),
    (lambda d: d.__setitem__("nodes", {"a": 1}), "$.nodes"),
    (lambda d: d["nodes"][1].__setitem__("id", 1), "$.nodes[1].id"),
    (lambda d: d.__setitem__("definitions", {"subgraphs": [{"nodes": []}]}),
     "$.definitions.subgraphs[0]"),
])
def test_malformed_ui_paths(mutate, path):
    doc = _good_doc()
    mutate(doc)
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(doc, test_registry())
    assert info.value.path == path
    assert info.value.code == "invalid_workflow"


def test_shape_error_names_the_node():
    doc = _good_doc()
    doc["nodes"][1]["mode"] = "muted"
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(json.dumps(doc), test_registry())
    assert info.value.node_id == "2" and "TestIntSink" in info.value.message


def test_ui_data_files_all_convert(spec_registry):
    files = sorted(DATA.glob("*_ui.json"))
    assert len(files) >= 2
    for path in files:
        api = load_workflow(path, spec_registry)
        assert api, path.name


def test_kitchen_sink_file_matches_expected(spec_registry):
    doc = json.loads((DATA / "kitchen_sink_ui.json").read_text())
    expected = json.loads((DATA / "kitchen_sink_api.json").read_text())
    assert _api(copy.deepcopy(doc), spec_registry) == expected


def test_nested_v1_file_matches_expected():
    doc = json.loads((DATA / "nested_v1_ui.json").read_text())
    expected = json.loads((DATA / "nested_v1_api.json").read_text())
    assert _api(doc) == expected


def test_nested_v1_file_runs_end_to_end(tmp_path):
    from comfyless.engine.cache import OutputCache
    from comfyless.engine.context import RunContext
    from comfyless.engine.execute import run_workflow

    registry = test_registry()
    workflow = load_workflow(DATA / "nested_v1_ui.json", registry)
    result = run_workflow(workflow, RunContext.create(tmp_path), registry, cache=OutputCache())
    assert result.ui == {"6": {"value": [42]}, "7": {"text": ["0X2A"]}}


# -- TrainLoraNode: both eras in UI files -----------------------------------------------------
TRAINER_SOCKETS = (("model", "MODEL"), ("latents", "LATENT"), ("positive", "CONDITIONING"))
CURRENT_TRAINER = [1, 1, 16, 0.0005, 8, "AdamW", "MSE", 0, "randomize", "bf16", "bf16", False,
                   "LoRA", True, 1, False, "[None]", False, False]  # train-nodes.md §10


def _trainer_doc(values: list, outputs: tuple) -> tuple[Ui, dict]:
    ui = Ui()
    src = ui.node("TestModelish", [], outputs=("MODEL", "LATENT", "CONDITIONING", "IMAGE"))
    train = ui.node("TrainLoraNode", values, inputs=TRAINER_SOCKETS, outputs=outputs)
    for slot, name in enumerate(("model", "latents", "positive")):
        ui.link(src, slot, train, name)
    return ui, train


@pytest.fixture
def trainer_registry():
    registry = test_registry()
    if "TrainLoraNode" not in registry:
        pytest.skip("TrainLoraNode not registered yet")
    return registry


def test_current_trainer_widgets(trainer_registry):
    ui, _ = _trainer_doc(CURRENT_TRAINER, ("LORA_MODEL", "LOSS_MAP", "INT"))
    inputs = _inputs(ui.doc(), "2", trainer_registry)
    assert inputs["seed"] == 0 and inputs["training_dtype"] == "bf16"
    assert inputs["existing_lora"] == "[None]" and inputs["bypass_mode"] is False
    assert inputs["model"] == ["1", 0] and len(inputs) == 21


@pytest.mark.parametrize("with_algorithm", [True, False])
def test_v1_trainer_widgets_and_outputs(trainer_registry, with_algorithm):
    # V1: no quantized_backward/checkpoint_depth/offloading/bucket_mode/bypass_mode, outputs
    # (model, lora, loss, steps); `algorithm` arrived mid-V1.
    values = [2, 1, 30, 0.001, 4, "SGD", "L1", 5, "fixed", "fp32", "fp32",
              *(["LoHa"] if with_algorithm else []), False, "[None]"]
    ui, train = _trainer_doc(values, ("MODEL", "LORA_MODEL", "LOSS_MAP", "INT"))
    save = ui.node("SaveLoRA", ["loras/x", 0], inputs=(("lora", "LORA_MODEL"),
                                                      ("steps", "INT", "widget")))
    graph = ui.node("LossGraphNode", ["loss"], inputs=(("loss", "LOSS_MAP"),))
    ui.link(train, 1, save, "lora")
    ui.link(train, 3, save, "steps")
    ui.link(train, 2, graph, "loss")
    api = _api(ui.doc(), trainer_registry)
    inputs = api["2"]["inputs"]
    assert (inputs["batch_size"], inputs["steps"], inputs["optimizer"]) == (2, 30, "SGD")
    assert (inputs["seed"], inputs["lora_dtype"], inputs["gradient_checkpointing"]) == \
        (5, "fp32", False)
    assert inputs["algorithm"] == ("LoHa" if with_algorithm else "LoRA")
    assert (inputs["quantized_backward"], inputs["offloading"], inputs["bucket_mode"],
            inputs["bypass_mode"], inputs["checkpoint_depth"]) == (False, False, False, False, 1)
    assert api["3"]["inputs"] == {"prefix": "loras/x", "lora": ["2", 0], "steps": ["2", 2]}
    assert api["4"]["inputs"] == {"filename_prefix": "loss", "loss": ["2", 1]}
