"""Validation reports every mistake at once: nodes behind an unknown output node are checked
too; ComfyUI's error codes for a node without class_type and a malformed link; nearest
choices for a misspelt combo value (issue 9 §5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import validate
from tests.testnodes import test_registry

SHIPPED = Path(__file__).resolve().parents[2] / "comfyless" / "workflows"


@pytest.fixture
def registry():
    return test_registry()


@pytest.fixture
def paths(tmp_path):
    return BasePaths.resolve(tmp_path)


def _codes(errors):
    return [(e.code, e.node_id, e.input_name) for e in errors]


def test_nodes_behind_an_unknown_output_are_checked(registry, paths):
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": -1}},
           "2": {"class_type": "TestFormat", "inputs": {"value": ["1", 0], "style": "hexx",
                                                        "scale": 99.0, "upper": False}},
           "3": {"class_type": "TestSinkk", "inputs": {"value": ["2", 0]}}}
    codes = _codes(validate(load_workflow(api, registry), registry, paths))
    assert ("missing_node_type", "3", None) in codes
    assert ("value_smaller_than_min", "1", "seed") in codes
    assert ("value_not_in_list", "2", "style") in codes
    assert ("value_bigger_than_max", "2", "scale") in codes


def test_real_trainer_errors_reported_beside_unknown_lorasave(paths):
    """The workflow from the issue: an unknown `LoraSave` and three bad combos on the trainer."""
    from comfyless.nodes import REGISTRY

    api = json.loads((SHIPPED / "lora-train-api.json").read_text())
    api = {k: v for k, v in api.items() if k in {"1", "2", "3", "4", "5", "6"}}
    api["6"]["class_type"] = "LoraSave"
    api["5"]["inputs"].update(optimizer="adamw", loss_function="mse", training_dtype="float32")
    errors = validate(load_workflow(api, REGISTRY), REGISTRY, paths)
    codes = _codes(errors)
    assert ("missing_node_type", "6", None) in codes
    for name in ("optimizer", "loss_function", "training_dtype"):
        assert ("value_not_in_list", "5", name) in codes
    messages = {e.input_name: e.message for e in errors if e.node_id == "5"}
    assert "nearest: AdamW" in messages["optimizer"]
    assert "nearest: MSE" in messages["loss_function"]


def test_no_output_node_checks_every_node(registry, paths):
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": -1}}}
    codes = _codes(validate(load_workflow(api, registry), registry, paths))
    assert ("prompt_no_outputs", None, None) in codes
    assert ("value_smaller_than_min", "1", "seed") in codes


def test_dangling_node_of_a_runnable_workflow_still_ignored(registry, paths):
    # As ComfyUI: when the workflow can run, a node that feeds no output never runs.
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": 1}},
           "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0]}},
           "3": {"class_type": "TestNumber", "inputs": {"seed": -1}}}
    assert validate(load_workflow(api, registry), registry, paths) == []


@pytest.mark.parametrize("node", [{"inputs": {"seed": 1}}, {"inputs": {}, "_meta": {"title": "x"}}])
def test_node_without_class_type_is_missing_node_type(node, registry, paths):
    api = {"1": node, "2": {"class_type": "TestNumber", "inputs": {"seed": -1}}}
    errors = validate(load_workflow(json.dumps(api), registry), registry, paths)
    codes = _codes(errors)
    assert ("missing_node_type", "1", None) in codes
    assert ("value_smaller_than_min", "2", "seed") in codes  # reported in the same pass
    missing = next(e for e in errors if e.node_id == "1")
    assert "no class_type" in missing.message
    assert missing.to_dict()["extra_info"]["class_type"] is None


def test_malformed_link_is_bad_linked_input(registry, paths):
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": 1}},
           "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0, 0]}}}
    errors = validate(load_workflow(api, registry), registry, paths)
    assert _codes(errors) == [("bad_linked_input", "2", "value")]
    assert errors[0].to_dict()["extra_info"]["received_value"] == ["1", 0, 0]


def test_combo_message_names_nearest_choice(registry, paths):
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": 1}},
           "2": {"class_type": "TestFormat", "inputs": {"value": ["1", 0], "style": "plane",
                                                        "scale": 1.0, "upper": False}},
           "3": {"class_type": "TestSink", "inputs": {"value": ["2", 0]}}}
    errors = validate(load_workflow(api, registry), registry, paths)
    assert _codes(errors) == [("value_not_in_list", "2", "style")]
    assert "nearest: plain" in errors[0].message
