"""Validation: one test per error code (code, node id, input name), all errors at once."""

from __future__ import annotations

import os

import pytest

from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow, invalid, validate
from comfyless.typesys.errors import WorkflowInvalid


@pytest.fixture
def paths(tmp_path):
    base = tmp_path / "base"
    (base / "models" / "checkpoints" / "sub").mkdir(parents=True)
    (base / "models" / "checkpoints" / "a.safetensors").write_text("A")
    (base / "models" / "checkpoints" / "sub" / "b.safetensors").write_text("B")
    return BasePaths.resolve(base)


def _codes(errors):
    return [(e.code, e.node_id, e.input_name) for e in errors]


def _chain(builder, seed=1):
    num = builder.add("TestNumber", seed=seed)
    fmt = builder.add("TestFormat", value=num.out(0), style="plain", scale=1.0, upper=False)
    builder.add("TestSink", value=fmt.out(0))
    return builder.build()


def test_valid_workflow_has_no_errors(builder, registry, paths):
    assert validate(_chain(builder), registry, paths) == []


def test_unknown_class_type_names_nearest(builder, registry, paths):
    builder.add("TestNumbr", seed=1)
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    errors = validate(builder.build(), registry, paths)
    assert _codes(errors) == [("missing_node_type", "1", None)]
    assert "TestNumber" in errors[0].extra["suggestions"]
    assert errors[0].extra["class_type"] == "TestNumbr"


def test_missing_required_input(builder, registry, paths):
    builder.add("TestSink")
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("required_input_missing", "1", "value")]


def test_missing_optional_input_is_fine(builder, registry, paths):
    add = builder.add("TestAdd", a=1)
    builder.add("TestIntSink", value=add.out(0))
    assert validate(builder.build(), registry, paths) == []


def test_link_to_missing_node(builder, registry, paths):
    from tests.conftest import Link

    builder.add("TestIntSink", value=Link("99", 0))
    errors = validate(builder.build(), registry, paths)
    assert _codes(errors) == [("bad_linked_input", "1", "value")]
    assert errors[0].extra["linked_node"] == ["99", 0]


def test_link_to_missing_slot(builder, registry, paths):
    num = builder.add("TestNumber", seed=1)
    builder.add("TestIntSink", value=num.out(3))
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("bad_linked_input", "2", "value")]


def test_type_mismatch(builder, registry, paths):
    m = builder.add("TestModelish")
    builder.add("TestLatentSink", samples=m.out(3))  # IMAGE into LATENT
    errors = validate(builder.build(), registry, paths)
    assert _codes(errors) == [("return_type_mismatch", "2", "samples")]
    assert errors[0].extra["received_type"] == "IMAGE"
    assert errors[0].extra["expected_type"] == "LATENT"
    assert errors[0].extra["linked_node"] == ["1", 3]


def test_message_format_is_pinned(builder, registry, paths):
    m = builder.add("TestModelish")
    builder.add("TestLatentSink", samples=m.out(3))
    (err,) = validate(builder.build(), registry, paths)
    assert str(err) == ("node 2 (TestLatentSink) input 'samples': expected LATENT, got IMAGE "
                        "from node 1 output 3")


@pytest.mark.parametrize("value, code", [
    ("abc", "invalid_input_type"),
    (-1, "value_smaller_than_min"),
    (2**64, "value_bigger_than_max"),
])
def test_bad_constant(builder, registry, paths, value, code):
    num = builder.add("TestNumber", seed=value)
    builder.add("TestIntSink", value=num.out(0))
    assert _codes(validate(builder.build(), registry, paths)) == [(code, "1", "seed")]


def test_constant_on_socket_only_input(builder, registry, paths):
    builder.add("TestLatentSink", samples={"samples": 1})
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("invalid_input_type", "1", "samples")]


def test_value_not_in_choices(builder, registry, paths):
    num = builder.add("TestNumber", seed=1)
    fmt = builder.add("TestFormat", value=num.out(0), style="roman", scale=1.0, upper=False)
    builder.add("TestSink", value=fmt.out(0))
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("value_not_in_list", "2", "style")]


def test_constants_are_converted(builder, registry, paths):
    num = builder.add("TestNumber", seed="7")
    fmt = builder.add("TestFormat", value=num.out(0), style="plain", scale=2, upper="false")
    builder.add("TestSink", value=fmt.out(0))
    checked = check_workflow(builder.build(), registry, paths)
    assert checked.errors == []
    assert checked.nodes["1"].constants == {"seed": 7}
    assert checked.nodes["2"].constants == {"style": "plain", "scale": 2.0, "upper": False}


@pytest.mark.parametrize("name", ["a.safetensors", "sub/b.safetensors"])
def test_file_choice_found(builder, registry, paths, name):
    builder.add("TestFile", ckpt_name=name)
    assert validate(builder.build(), registry, paths) == []


def test_file_choice_missing(builder, registry, paths):
    builder.add("TestFile", ckpt_name="nope.safetensors")
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("value_not_in_list", "1", "ckpt_name")]


@pytest.mark.parametrize("name", ["../a.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_path_escape_refused(builder, registry, paths, name):
    builder.add("TestFile", ckpt_name=name)  # not in the folder's listing, as in ComfyUI
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("value_not_in_list", "1", "ckpt_name")]


def test_symlink_into_model_folder_is_read(builder, registry, paths, tmp_path):
    # A shared model store linked into the folder is part of it (tests/engine/test_symlinks.py)
    outside = tmp_path / "store.safetensors"
    outside.write_text("S")
    os.symlink(outside, paths.folders("checkpoints")[0] / "link.safetensors")
    builder.add("TestFile", ckpt_name="link.safetensors")
    assert validate(builder.build(), registry, paths) == []


def test_dependency_cycle_names_members(builder, registry, paths):
    from tests.conftest import Link

    builder.add("TestAdd", a=Link("2", 0))
    builder.add("TestAdd", a=Link("1", 0))
    builder.add("TestIntSink", value=Link("2", 0))
    errors = validate(builder.build(), registry, paths)
    assert _codes(errors) == [("dependency_cycle", "1", None), ("dependency_cycle", "2", None)]
    cycle = errors[0].extra["cycle"]
    assert cycle[0] == cycle[-1] and set(cycle) == {"1", "2"}


def test_no_output_node(builder, registry, paths):
    builder.add("TestNumber", seed=1)
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("prompt_no_outputs", None, None)]


def test_custom_check_hook(builder, registry, paths):
    c = builder.add("TestChecked", low=5, high=1)
    builder.add("TestIntSink", value=c.out(0))
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("custom_validation_failed", "1", "low")]


def test_all_errors_collected_at_once(builder, registry, paths):
    num = builder.add("TestNumber", seed=-5)
    fmt = builder.add("TestFormat", value=num.out(0), style="roman", scale=99.0, upper=False)
    builder.add("TestSink", value=fmt.out(0))
    builder.add("TestSink")
    assert _codes(validate(builder.build(), registry, paths)) == [
        ("value_smaller_than_min", "1", "seed"),
        ("value_not_in_list", "2", "style"),
        ("value_bigger_than_max", "2", "scale"),
        ("required_input_missing", "4", "value"),
    ]


def test_nodes_not_feeding_an_output_are_not_checked(builder, registry, paths):
    _chain(builder)
    builder.add("TestNumber", seed=-1)  # dangling and invalid: never runs, not reported
    assert validate(builder.build(), registry, paths) == []


def test_targets_restrict_outputs(builder, registry, paths):
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    builder.add("TestSink")
    assert validate(builder.build(), registry, paths, targets=["2"]) == []


@pytest.mark.parametrize("expected_input, slot, resolved", [
    ("samples", 0, 0),   # current layout
    ("samples", 1, 0),   # legacy layout: slot 1 was the latent
    ("steps", 1, 1),     # current layout
    ("steps", 2, 1),     # legacy layout: slot 2 was steps
])
def test_legacy_output_layout_resolved_by_type(builder, registry, paths, expected_input, slot,
                                               resolved):
    src = builder.add("TestLegacyOut", value=1)
    builder.add("TestLatentInt", **{expected_input: src.out(slot)})
    checked = check_workflow(builder.build(), registry, paths)
    assert checked.errors == []
    assert checked.nodes["2"].links[expected_input] == ("1", resolved)


def test_legacy_output_layout_ambiguous(builder, registry, paths):
    src = builder.add("TestLegacyOut", value=1)
    builder.add("TestLatentInt", anything=src.out(1))  # "*" matches both layouts
    errors = validate(builder.build(), registry, paths)
    assert _codes(errors) == [("bad_linked_input", "2", "anything")]
    assert "ambiguous" in str(errors[0])


def test_report_serialises_to_comfyui_shape(builder, registry, paths):
    num = builder.add("TestNumber", seed=-1)
    builder.add("TestIntSink", value=num.out(0))
    checked = check_workflow(builder.build(), registry, paths)
    report = invalid(checked).to_dict()
    assert report["error"]["type"] == "prompt_outputs_failed_validation"
    entry = report["node_errors"]["1"]
    assert entry["class_type"] == "TestNumber"
    assert entry["dependent_outputs"] == ["2"]
    assert entry["errors"][0]["type"] == "value_smaller_than_min"
    assert entry["errors"][0]["extra_info"]["input_name"] == "seed"
    assert isinstance(invalid(checked), WorkflowInvalid)


def test_extra_model_paths_yaml_folders_are_choices(builder, registry, tmp_path):
    base = tmp_path / "b2"
    base.mkdir()
    elsewhere = tmp_path / "comfy" / "models" / "checkpoints"
    elsewhere.mkdir(parents=True)
    (elsewhere / "far.safetensors").write_text("F")
    (base / "extra_model_paths.yaml").write_text(
        f"comfyui:\n  base_path: {tmp_path / 'comfy'}\n  checkpoints: models/checkpoints\n")
    builder.add("TestFile", ckpt_name="far.safetensors")
    assert validate(builder.build(), registry, BasePaths.resolve(base)) == []


def test_base_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFYLESS_BASE_DIR", str(tmp_path / "env-base"))
    assert BasePaths.resolve().base == (tmp_path / "env-base").resolve()
    assert BasePaths.resolve(tmp_path / "flag").base == (tmp_path / "flag").resolve()
    monkeypatch.delenv("COMFYLESS_BASE_DIR")
    monkeypatch.chdir(tmp_path)
    assert BasePaths.resolve().base == (tmp_path / "comfyless-data").resolve()
