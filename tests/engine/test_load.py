"""Loading API-format workflows: shapes, envelopes, links, errors with paths, speed."""

from __future__ import annotations

import json
import time

import pytest

from comfyless.engine.legacy import remap_legacy_slot
from comfyless.engine.load import (
    ApiNode,
    Link,
    convert_to_api_json,
    load_workflow,
    load_workflow_full,
    to_api_json,
)
from comfyless.typesys.errors import InvalidWorkflow
from tests.testnodes import test_registry

API = {
    "1": {"class_type": "TestNumber", "inputs": {"seed": 5}, "_meta": {"title": "Seed"}},
    "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": 3}},
    "3": {"class_type": "TestIntSink", "inputs": {"value": ["2", 0]}},
}


@pytest.fixture(scope="module")
def reg():
    return test_registry()


def _expect_api(workflow) -> None:
    assert workflow == {
        "1": ApiNode("TestNumber", {"seed": 5}, "Seed"),
        "2": ApiNode("TestAdd", {"a": Link("1", 0), "b": 3}, None),
        "3": ApiNode("TestIntSink", {"value": Link("2", 0)}, None),
    }


@pytest.mark.parametrize("form", ["dict", "text", "bytes", "path", "str_path"])
def test_sources(form, tmp_path, reg):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(API))
    source = {"dict": API, "text": json.dumps(API), "bytes": json.dumps(API).encode(),
              "path": path, "str_path": str(path)}[form]
    _expect_api(load_workflow(source, reg))


def test_bom_is_accepted(reg):
    _expect_api(load_workflow(b"\xef\xbb\xbf" + json.dumps(API).encode(), reg))


def test_wrapped_prompt(reg):
    _expect_api(load_workflow({"prompt": API}, reg))


def test_prompt_envelope_keeps_ui_workflow(reg):
    ui = {"nodes": [], "links": [], "version": 0.4}
    envelope = {"prompt": API, "client_id": "abc", "prompt_id": None,
                "extra_data": {"extra_pnginfo": {"workflow": ui}},
                "partial_execution_targets": ["3"]}
    api, ui_json = load_workflow_full(json.dumps(envelope), reg)
    _expect_api(api)
    assert ui_json == ui


def test_bare_api_has_no_ui_json(reg):
    assert load_workflow_full(API, reg)[1] is None


def test_node_named_prompt_is_not_an_envelope(reg):
    api = load_workflow({"prompt": {"class_type": "TestNumber", "inputs": {"seed": 1}}}, reg)
    assert api == {"prompt": ApiNode("TestNumber", {"seed": 1}, None)}


def test_value_wrapper_unwrapped_and_restored(reg):
    wf = {"1": {"class_type": "TestSum", "inputs": {"values": {"__value__": [1, 2]}}}}
    api = load_workflow(wf, reg)
    assert api["1"].inputs["values"] == [1, 2]
    assert to_api_json(api) == wf


def test_integer_node_id_read_as_string(reg):
    wf = {"1": {"class_type": "TestIntSink", "inputs": {"value": [2, 0]}}}
    assert load_workflow(wf, reg)["1"].inputs["value"] == Link("2", 0)


def test_float_slot_accepted(reg):
    wf = {"1": {"class_type": "TestIntSink", "inputs": {"value": ["2", 0.0]}}}
    assert load_workflow(wf, reg)["1"].inputs["value"] == Link("2", 0)


def test_round_trip(reg):
    assert to_api_json(load_workflow(API, reg)) == API


def test_convert_to_api_json(tmp_path, reg):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"prompt": API}))
    assert convert_to_api_json(path, reg) == API


def test_missing_inputs_means_empty(reg):
    assert load_workflow({"1": {"class_type": "TestNumber"}}, reg)["1"].inputs == {}


def test_unknown_class_type_is_left_to_the_validator(reg):
    assert load_workflow({"1": {"class_type": "Nope", "inputs": {}}}, reg)["1"].class_type == "Nope"


# -- malformed -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("doc", "path"), [
    ([1, 2], "$"),
    ({"1": 5}, '$["1"]'),
    ({"1": {"class_type": 7}}, '$["1"].class_type'),
    ({"1": {"class_type": "TestAdd", "inputs": []}}, '$["1"].inputs'),
    ({"1": {"class_type": "TestAdd", "_meta": {"title": 3}}}, '$["1"]._meta.title'),
    ({"prompt": {"9": {"class_type": None}}}, '$.prompt["9"].class_type'),
])
def test_malformed_api_paths(doc, path, reg):
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(json.dumps(doc), reg)
    assert info.value.path == path
    assert info.value.to_dict()["type"] == "invalid_workflow"


@pytest.mark.parametrize("bad", [[None, 0], ["1", True], ["1", 0, 1], ["1", 0.5], [1, 2, 3]])
def test_bad_link_is_left_to_the_validator(bad, reg):
    # A list that is not [id, slot] loads; validation reports it as ComfyUI's
    # bad_linked_input, naming the node and input, with every other error of the workflow.
    from comfyless.engine.validate import validate

    workflow = load_workflow({"4": {"class_type": "TestAdd", "inputs": {"a": bad}},
                              "5": {"class_type": "Nope", "inputs": {}}}, reg)
    errors = validate(workflow, reg)
    codes = [(e.code, e.node_id, e.input_name) for e in errors]
    assert ("bad_linked_input", "4", "a") in codes and ("missing_node_type", "5", None) in codes
    message = next(e.message for e in errors if e.code == "bad_linked_input")
    assert "node 4" in message and "'a'" in message and "__value__" in message
    assert to_api_json(workflow)["4"]["inputs"]["a"] == bad  # written back as read


def test_invalid_json_reports_line_and_column(reg):
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow('{"1": {"class_type": "TestAdd",\n  "inputs": {,}}}', reg)
    assert info.value.path == "$"
    assert "line 2" in info.value.message and "not valid JSON" in info.value.message


@pytest.mark.parametrize("text", ["", "{", "nul", '{"1": }', b"\xff\xfe"])
def test_not_json_is_invalid_workflow(text, reg):
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow(text.encode() if isinstance(text, str) else text, reg)
    assert info.value.path == "$" and "not valid JSON" in info.value.message


def test_nan_constant_accepted(reg):
    api = load_workflow(b'{"1": {"class_type": "TestFormat", "inputs": {"scale": NaN}}}', reg)
    assert api["1"].inputs["scale"] != api["1"].inputs["scale"]


def test_message_format_pinned(reg):
    with pytest.raises(InvalidWorkflow) as info:
        load_workflow({"1": {"class_type": 7}}, reg)
    assert str(info.value) == 'Expected `str`, got `int` (at $["1"].class_type)'


def test_missing_file_is_oserror(tmp_path, reg):
    with pytest.raises(OSError):
        load_workflow(tmp_path / "nope.json", reg)


# -- legacy slots (API format: resolved by the consumer's type) --------------------------------
def test_remap_legacy_slot(reg):
    schema = reg["TestLegacyOut"].schema  # now (latent, steps); legacy (model, latent, steps)
    assert remap_legacy_slot(schema, 0, "LATENT") == 0  # current layout
    assert remap_legacy_slot(schema, 1, "LATENT") == 0  # legacy latent
    assert remap_legacy_slot(schema, 2, "INT") == 1  # legacy steps
    assert remap_legacy_slot(schema, 1, "INT") == 1  # current steps
    assert remap_legacy_slot(schema, 0, "MODEL") is None  # legacy model output is gone
    assert remap_legacy_slot(schema, 1, "*") is None  # both layouts fit: ambiguous
    assert remap_legacy_slot(reg["TestAdd"].schema, 0, "INT") == 0
    assert remap_legacy_slot(reg["TestAdd"].schema, 1, "INT") is None


# -- speed -----------------------------------------------------------------------------------------
def _synthetic(n: int) -> bytes:
    api = {"1": {"class_type": "TestAdd", "inputs": {"a": 1, "b": 0}}}
    for i in range(2, n):
        api[str(i)] = {"class_type": "TestAdd",
                       "inputs": {"a": [str(i - 1), 0], "b": [str(i // 2), 0] if i % 2 else 3},
                       "_meta": {"title": f"add {i}"}}
    api[str(n)] = {"class_type": "TestIntSink", "inputs": {"value": [str(n - 1), 0]}}
    return json.dumps(api).encode()


def test_10k_nodes_load_fast(reg):
    # CPU time, not wall time: the test machine is shared, and contention is not our cost.
    data = _synthetic(10_000)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        workflow = load_workflow(data, reg)
        best = min(best, time.process_time() - start)
    assert len(workflow) == 10_000 and workflow["9999"].inputs["b"] == Link("4999", 0)
    assert best < 0.3, f"10k-node load took {best * 1000:.0f} ms"


def test_v1_trainer_api_gets_defaults_for_later_inputs(reg):
    if "TrainLoraNode" not in reg:
        pytest.skip("TrainLoraNode not registered yet")
    v1 = {"batch_size": 1, "grad_accumulation_steps": 1, "steps": 4, "learning_rate": 0.001,
          "rank": 4, "optimizer": "AdamW", "loss_function": "MSE", "seed": 3,
          "training_dtype": "fp32", "lora_dtype": "fp32", "gradient_checkpointing": False,
          "existing_lora": "[None]", "model": ["1", 0], "latents": ["2", 0],
          "positive": ["3", 0]}
    inputs = load_workflow({"9": {"class_type": "TrainLoraNode", "inputs": v1}}, reg)["9"].inputs
    assert inputs["algorithm"] == "LoRA" and inputs["bypass_mode"] is False
    assert inputs["checkpoint_depth"] == 1 and inputs["steps"] == 4
    # a node missing an input that no older version lacked is left for the validator
    del v1["steps"]
    inputs = load_workflow({"9": {"class_type": "TrainLoraNode", "inputs": v1}}, reg)["9"].inputs
    assert "steps" not in inputs and "algorithm" not in inputs
