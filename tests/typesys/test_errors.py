"""Errors serialise to ComfyUI's JSON shapes."""

from __future__ import annotations

from comfyless.typesys.errors import (
    MissingInput,
    NoOutputs,
    TypeMismatch,
    ValueOutOfRange,
    WorkflowInvalid,
)


def test_error_to_dict():
    err = TypeMismatch("m", node_id="7", input_name="latents", received_type="IMAGE",
                       expected_type="LATENT", linked_node=["3", 0])
    assert err.to_dict() == {
        "type": "return_type_mismatch", "message": "m", "details": "latents",
        "extra_info": {"node_id": "7", "input_name": "latents", "received_type": "IMAGE",
                       "expected_type": "LATENT", "linked_node": ["3", 0]}}


def test_range_code_per_side():
    assert ValueOutOfRange("m", too_big=True).code == "value_bigger_than_max"
    assert ValueOutOfRange("m", too_big=False).code == "value_smaller_than_min"


def test_aggregate_shape():
    exc = WorkflowInvalid([MissingInput("m", node_id="3", input_name="model")],
                          {"3": "KSampler"})
    exc.dependent_outputs = {"3": ["9"]}
    body = exc.to_dict()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"] == {"3": {
        "errors": [{"type": "required_input_missing", "message": "m", "details": "model",
                    "extra_info": {"node_id": "3", "input_name": "model"}}],
        "dependent_outputs": ["9"], "class_type": "KSampler"}}


def test_prompt_level_error_stands_alone():
    body = WorkflowInvalid([NoOutputs("none")]).to_dict()
    assert body["error"]["type"] == "prompt_no_outputs"
    assert body["node_errors"] == {}


def test_details_list_output_nodes_own_errors():
    exc = WorkflowInvalid([MissingInput("m3", node_id="3", input_name="model"),
                           MissingInput("m9", node_id="9", input_name="images")])
    exc.dependent_outputs = {"3": ["9"], "9": ["9"]}
    assert exc.to_dict()["error"]["details"] == "m9: images"
