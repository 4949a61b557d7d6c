"""Conformance suite every registered node gets for free (shipped and test nodes)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from comfyless.engine.object_info import object_info
from comfyless.nodes import REGISTRY
from comfyless.typesys.check import check_value
from comfyless.typesys.schema import NO_DEFAULT, Implementation
from tests.testnodes import test_registry

ROOT = Path(__file__).resolve().parents[2]
ALL = test_registry()


@pytest.mark.parametrize("class_type", list(ALL))
def test_execute_signature_matches_inputs(class_type):
    node = ALL[class_type]
    execute = inspect.getattr_static(node, "execute")
    assert isinstance(execute, staticmethod | Implementation), \
        f"{class_type}.execute must be a staticmethod or implemented_by(...)"
    # For implemented_by this imports the implementation and reads its function's signature.
    params = list(inspect.signature(node.execute).parameters.values())
    assert params and params[0].name == "ctx"
    by_name = {p.name: p for p in params[1:] if p.kind is not p.VAR_KEYWORD}
    # Inputs arrive as keywords, so only the names must match (Python wants defaults last).
    # A name that is no identifier (a DynamicCombo's sub-input such as `format.bit_depth`)
    # can only arrive through **kwargs.
    named = [i.name for i in node.schema.inputs if i.name.isidentifier()]
    assert sorted(by_name) == sorted(named)
    if len(named) < len(node.schema.inputs):
        assert any(p.kind is p.VAR_KEYWORD for p in params), \
            f"{class_type}: inputs that are not identifiers need **kwargs in execute"
    for inp in node.schema.inputs:
        if inp.optional and inp.name.isidentifier():  # absent optional inputs are not passed
            assert by_name[inp.name].default is not inspect.Parameter.empty, \
                f"{class_type}: optional input {inp.name!r} needs a default in execute"


@pytest.mark.parametrize("class_type", list(ALL))
def test_defaults_pass_their_own_checks(class_type):
    for inp in ALL[class_type].schema.inputs:
        if inp.default is NO_DEFAULT or inp.choices_from is not None:
            continue
        converted, err = check_value(inp, inp.default)
        assert err is None, f"{class_type}.{inp.name}: {err}"
        assert converted == inp.default


@pytest.mark.parametrize("class_type", list(REGISTRY))
def test_shipped_node_documented(class_type):
    node = REGISTRY[class_type]
    assert (node.__doc__ or "").strip(), f"{class_type} needs a one-line docstring"
    assert node.schema.class_type == class_type


def test_object_info_is_json():
    info = object_info(REGISTRY)
    json.dumps(info)
    for class_type, entry in info.items():
        declared = [i.name for i in REGISTRY[class_type].schema.inputs]
        order = entry["input_order"]["required"] + entry["input_order"]["optional"]
        assert sorted(order) == sorted(declared)
        assert len(entry["output"]) == len(entry["output_name"]) == len(entry["output_is_list"])


def test_registry_import_is_torch_free():
    code = ("import sys, comfyless.nodes, comfyless.engine.validate, comfyless.cli; "
            "bad = [m for m in ('torch', 'networkx', 'numpy', 'PIL', 'safetensors') "
            "if m in sys.modules]; print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
