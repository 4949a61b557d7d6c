"""Subgraph instances in UI workflows: their promoted widget values and their input slots.

Frontend facts these fixtures reproduce (Comfy-Org/ComfyUI_frontend, SubgraphNode.ts):
- an instance has one widget per subgraph input whose first link (linkIds order) reaches a
  widget slot inside; `serialize()` writes one value per such input, in input order, and no
  control_after_generate value (`seed`'s "randomize" lives only on the inner KSampler);
- older files carry a control value after each promoted widget with a value control; they are
  read so only when the array is longer than the promoted-input count;
- a promoted widget without a saved value has the value of the inner widget it promotes, and
  that value reaches every target of the subgraph input (ExecutableNodeDTO.resolveInput:
  an unlinked instance input resolves to the instance's widget value);
- saved instance slots are bound to subgraph inputs by name and type, then name; a subgraph
  input made from a '*' Reroute has the empty name "".
The two published templates that showed these bugs are checked at the end.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import comfyui_workflow_templates_json as templates_pkg
import pytest

from comfyless.engine.load import Link, load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.nodes import REGISTRY

TEMPLATES = Path(templates_pkg.__file__).parent / "templates"
SG = "3a756f48-801b-48eb-80dd-279f32d09b12"
OUTER, INNER = "b7908082-f5ff-497d-8e80-e4b0ffde0419", "e3abecd3-2aa7-408a-83bb-90f14e706169"


def _link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int,
          kind: str) -> dict:
    return {"id": link_id, "origin_id": origin, "origin_slot": origin_slot,
            "target_id": target, "target_slot": target_slot, "type": kind}


def _io(name: str, kind: str, link_ids: list[int]) -> dict:
    return {"id": f"io-{name or 'blank'}-{kind}", "name": name, "type": kind,
            "linkIds": link_ids}


def _definition(uid: str, nodes: list, links: list, inputs: list, outputs: list) -> dict:
    return {"id": uid, "version": 1, "revision": 0, "name": uid, "state": {}, "nodes": nodes,
            "links": links, "groups": [], "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
            "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]}, "inputs": inputs,
            "outputs": outputs, "widgets": []}


def _node(node_id: int, kind: str, widgets: list | None, inputs: list, outputs: list) -> dict:
    return {"id": node_id, "type": kind, "pos": [0, 0], "size": [100, 50], "flags": {},
            "order": 0, "mode": 0, "inputs": inputs, "outputs": outputs,
            "properties": {"Node name for S&R": kind}, "widgets_values": widgets}


def _in(name: str, kind: str, link: int | None, widget: bool = False) -> dict:
    return {"name": name, "type": kind, "link": link, **({"widget": {"name": name}} if widget
                                                         else {})}


def _out(name: str, kind: str, links: list[int] | None) -> dict:
    return {"name": name, "type": kind, "links": links}


# -- 1. promoted widgets: a seed among them (image_qwen_image_edit_2509_relight) ---------------
def _relight_like(instance_values: list | None) -> dict:
    """UNETLoader -> LoraLoaderModelOnly -> KSampler inside a subgraph whose inputs promote
    lora_name, strength_model, seed and weight_dtype (in that order, as in the template);
    the seed also feeds a PreviewAny (a socket without a widget)."""
    nodes = [
        _node(37, "UNETLoader", ["qwen_image_edit_2509_fp8_e4m3fn.safetensors", "default"],
              [_in("weight_dtype", "COMBO", 258, widget=True)], [_out("MODEL", "MODEL", [1])]),
        _node(118, "LoraLoaderModelOnly", ["Relight.safetensors", 1],
              [_in("model", "MODEL", 1), _in("lora_name", "COMBO", 255, widget=True),
               _in("strength_model", "FLOAT", 256, widget=True)],
              [_out("MODEL", "MODEL", [2])]),
        _node(3, "KSampler", [1118877715456453, "randomize", 4, 1, "euler", "simple", 1],
              [_in("model", "MODEL", 2), _in("seed", "INT", 257, widget=True)],
              [_out("LATENT", "LATENT", [])]),
        _node(5, "PreviewAny", [None, None, None], [_in("source", "*", 259)],
              [_out("STRING", "STRING", None)]),
    ]
    links = [_link(1, 37, 0, 118, 0, "MODEL"), _link(2, 118, 0, 3, 0, "MODEL"),
             _link(255, -10, 0, 118, 1, "COMBO"), _link(256, -10, 1, 118, 2, "FLOAT"),
             _link(257, -10, 2, 3, 1, "INT"), _link(259, -10, 2, 5, 0, "*"),
             _link(258, -10, 3, 37, 0, "COMBO")]
    inputs = [_io("lora_name", "COMBO", [255]), _io("strength_model", "FLOAT", [256]),
              _io("seed", "INT", [257, 259]), _io("weight_dtype", "COMBO", [258])]
    instance = _node(10, SG, instance_values, [], [])
    return {"last_node_id": 10, "last_link_id": 0, "nodes": [instance], "links": [],
            "groups": [], "config": {}, "extra": {}, "version": 0.4,
            "definitions": {"subgraphs": [_definition(SG, nodes, links, inputs, [])]}}


def _inner(doc: dict) -> dict:
    api = load_workflow(json.dumps(doc), REGISTRY)
    return {key: api[key].inputs for key in ("10:37", "10:118", "10:3", "10:5")}


def test_instance_values_are_one_per_promoted_input_without_control_values():
    # the frontend saves no "randomize" after the seed: the values must not shift by one
    inputs = _inner(_relight_like(["Relight-v2.safetensors", 0.75, 42, "fp8_e4m3fn"]))
    assert inputs["10:37"]["weight_dtype"] == "fp8_e4m3fn"
    assert inputs["10:118"]["lora_name"] == "Relight-v2.safetensors"
    assert inputs["10:118"]["strength_model"] == 0.75
    assert inputs["10:3"]["seed"] == 42
    assert inputs["10:5"]["source"] == 42  # every target of the input gets the value


def test_longer_legacy_values_skip_the_control_value_of_the_seed():
    inputs = _inner(_relight_like(["Relight-v2.safetensors", 0.75, 42, "fixed", "fp8_e4m3fn"]))
    assert inputs["10:37"]["weight_dtype"] == "fp8_e4m3fn"
    assert inputs["10:3"]["seed"] == 42 and inputs["10:5"]["source"] == 42


@pytest.mark.parametrize("saved", [None, []])
def test_unsaved_promoted_value_is_the_inner_widget_value(saved):
    # newer files keep promoted values on the inner nodes (instance widgets_values empty)
    inputs = _inner(_relight_like(saved))
    assert inputs["10:37"]["weight_dtype"] == "default"
    assert inputs["10:118"]["lora_name"] == "Relight.safetensors"
    assert inputs["10:3"]["seed"] == 1118877715456453
    assert inputs["10:5"]["source"] == 1118877715456453  # the promoted KSampler seed's value


def test_linked_instance_input_wins_over_its_widget_value():
    doc = _relight_like(["Relight-v2.safetensors", 0.75, 42, "fp8_e4m3fn"])
    doc["nodes"].insert(0, _node(4, "PrimitiveInt", [7, "fixed"], [],
                                 [_out("INT", "INT", [9])]))
    doc["nodes"][1]["inputs"] = [_in("seed", "INT", 9, widget=True)]
    doc["links"] = [[9, 4, 0, 10, 0, "INT"]]
    inputs = _inner(doc)
    assert inputs["10:3"]["seed"] == Link("4", 0) and inputs["10:5"]["source"] == Link("4", 0)
    assert inputs["10:37"]["weight_dtype"] == "fp8_e4m3fn"  # the other values keep their place


# -- 2. a VAE through a blank-named '*' subgraph input and a Reroute into a nested instance ----
def _scene_angles_like(saved_outer_inputs: list | None = None) -> dict:
    """VAELoader -> outer instance 65 (input "" of type '*') -> Reroute 49 -> nested instance
    33 (input 'vae') -> VAEEncode 13 and VAEDecode 19 (one subgraph input, several targets),
    as in templates-1_click_multiple_scene_angles; the outer instance also promotes a prompt."""
    inner_nodes = [
        _node(13, "VAEEncode", [], [_in("pixels", "IMAGE", None), _in("vae", "VAE", 5)],
              [_out("LATENT", "LATENT", [17])]),
        _node(19, "VAEDecode", [], [_in("samples", "LATENT", 17), _in("vae", "VAE", 18)],
              [_out("IMAGE", "IMAGE", [33])]),
        _node(17, "PrimitiveStringMultiline", ["inner text"],
              [_in("value", "STRING", 35, widget=True)], [_out("STRING", "STRING", [])]),
    ]
    inner_links = [_link(5, -10, 0, 13, 1, "VAE"), _link(18, -10, 0, 19, 1, "VAE"),
                   _link(17, 13, 0, 19, 0, "LATENT"), _link(33, 19, 0, -20, 0, "IMAGE"),
                   _link(35, -10, 1, 17, 0, "STRING")]
    inner = _definition(INNER, inner_nodes, inner_links,
                        [_io("vae", "VAE", [5, 18]), _io("prompt", "STRING", [35])],
                        [_io("IMAGE", "IMAGE", [33])])
    outer_nodes = [
        _node(49, "Reroute", None, [_in("", "*", 99)], [_out("", "*", [103])]),
        _node(33, INNER, ["", ], [_in("vae", "VAE", 103), _in("prompt", "STRING", 147,
                                                                     widget=True)],
              [_out("IMAGE", "IMAGE", [39])]),
    ]
    outer_links = [_link(99, -10, 0, 49, 0, "*"), _link(103, 49, 0, 33, 0, "VAE"),
                   _link(147, -10, 1, 33, 1, "STRING"), _link(39, 33, 0, -20, 0, "IMAGE")]
    outer = _definition(OUTER, outer_nodes, outer_links,
                        [_io("", "*", [99]), _io("prompt", "STRING", [147])],
                        [_io("IMAGE", "IMAGE", [39])])
    outer_inputs = saved_outer_inputs if saved_outer_inputs is not None else [
        _in("", "*", 147), _in("prompt", "STRING", None, widget=True)]
    nodes = [
        _node(9, "VAELoader", ["qwen_image_vae.safetensors"], [], [_out("VAE", "VAE", [147])]),
        _node(65, OUTER, ["a prompt"], outer_inputs, [_out("IMAGE", "IMAGE", [151])]),
        _node(34, "SaveImage", ["ComfyUI"], [_in("images", "IMAGE", 151)], []),
    ]
    links = [[147, 9, 0, 65, 0, "*"], [151, 65, 0, 34, 0, "IMAGE"]]
    return {"last_node_id": 65, "last_link_id": 151, "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4,
            "definitions": {"subgraphs": [outer, inner]}}


def test_vae_reaches_every_inner_target_through_a_blank_named_input_and_reroute():
    api = load_workflow(json.dumps(_scene_angles_like()), REGISTRY)
    assert api["65:33:13"].inputs["vae"] == Link("9", 0)
    assert api["65:33:19"].inputs["vae"] == Link("9", 0)
    assert api["34"].inputs["images"] == Link("65:33:19", 0)
    # nested promotion: the outer instance's value reaches the innermost widget
    assert api["65:33:17"].inputs["value"] == "a prompt"


def test_saved_instance_slots_bind_by_name_and_type_not_position():
    # the frontend drops unconnected widget slots when saving: only "" is left, at position 0
    doc = _scene_angles_like()
    outer = doc["definitions"]["subgraphs"][0]
    outer["inputs"].reverse()  # "" is now subgraph input 1, prompt input 0
    for link in outer["links"]:
        if link["origin_id"] == -10:
            link["origin_slot"] = 1 - link["origin_slot"]
    doc["nodes"][1]["inputs"] = [_in("", "*", 147)]
    api = load_workflow(json.dumps(doc), REGISTRY)
    assert api["65:33:13"].inputs["vae"] == Link("9", 0)
    assert api["65:33:17"].inputs["value"] == "a prompt"


def test_nested_promoted_value_falls_back_to_the_nested_instance_value():
    doc = _scene_angles_like()
    doc["nodes"][1]["widgets_values"] = []
    doc["definitions"]["subgraphs"][0]["nodes"][1]["widgets_values"] = ["middle prompt"]
    api = load_workflow(json.dumps(doc), REGISTRY)
    assert api["65:33:17"].inputs["value"] == "middle prompt"


# -- 3. the published templates: only missing model/input files are left -------------------------
def _errors_besides_missing_files(name: str, tmp_path: Path) -> tuple[dict, list[str]]:
    api = load_workflow(TEMPLATES / name, REGISTRY)
    checked = check_workflow(copy.deepcopy(api), REGISTRY, BasePaths.resolve(tmp_path))

    def missing_file(err) -> bool:
        node = REGISTRY.get(checked.class_types.get(err.node_id, ""))
        return (err.code == "value_not_in_list" and err.input_name is not None
                and node is not None and node.schema.input(err.input_name).choices_from
                is not None)

    return api, [str(e) for e in checked.errors if not missing_file(e)]


def test_relight_template_validates_with_only_missing_files(tmp_path):
    api, errors = _errors_besides_missing_files("image_qwen_image_edit_2509_relight.json",
                                                tmp_path)
    assert errors == []
    assert api["10:37"].inputs["weight_dtype"] == "default"
    assert api["10:37"].inputs["unet_name"] == "qwen_image_edit_2509_fp8_e4m3fn.safetensors"
    assert api["10:3"].inputs["seed"] == 1118877715456453
    assert api["10:118"].inputs["lora_name"] == "Qwen-Image-Edit-2509-Relight.safetensors"


def test_scene_angles_template_validates_with_only_missing_files(tmp_path):
    api, errors = _errors_besides_missing_files(
        "templates-1_click_multiple_scene_angles-v1.0.json", tmp_path)
    assert errors == []
    assert api["65:33:13"].inputs["vae"] == Link("48:9", 0)
    assert api["65:33:19"].inputs["vae"] == Link("48:9", 0)
