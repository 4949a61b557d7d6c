"""Type compatibility table (ComfyUI's validate_node_input rules) and constant checks."""

from __future__ import annotations

import pytest

from comfyless.typesys import FLOAT, INT, STRING, Input
from comfyless.typesys.check import check_value, compatible, convert_value
from comfyless.typesys.types import BOOLEAN, COMBO, MODEL


@pytest.mark.parametrize("received, expected, ok", [
    ("LATENT", "LATENT", True),
    ("IMAGE", "LATENT", False),
    ("*", "LATENT", True),
    ("MODEL", "*", True),
    ("IMAGE,MASK", "MASK", True),
    ("MASK", "IMAGE,MASK", True),
    ("IMAGE, MASK", "LATENT,MASK", True),
    ("IMAGE,MASK", "LATENT", False),
    ("IMAGE,*", "LATENT", True),
    ("INT", "FLOAT", False),
    ("COMFY_MATCHTYPE_V3", "LATENT", True),
    ("MODEL", "COMFY_MATCHTYPE_V3", True),
])
def test_compatible_table(received, expected, ok):
    assert compatible(received, expected) is ok


@pytest.mark.parametrize("inp, value, expected", [
    (Input("x", INT), "7", 7),
    (Input("x", INT), 7.0, 7),
    (Input("x", INT), True, 1),
    (Input("x", FLOAT), "0.5", 0.5),
    (Input("x", FLOAT), 2, 2.0),
    (Input("x", STRING), 3, "3"),
    (Input("x", BOOLEAN), "false", False),
    (Input("x", BOOLEAN), "True", True),
    (Input("x", BOOLEAN), 0, False),
])
def test_convert_value(inp, value, expected):
    result = convert_value(inp, value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("inp, value", [
    (Input("x", INT), 7.5),
    (Input("x", INT), "seven"),
    (Input("x", INT), None),
    (Input("x", FLOAT), "nan"),
    (Input("x", FLOAT), [1.0]),
    (Input("x", BOOLEAN), "maybe"),
    (Input("x", MODEL), "a model"),
])
def test_convert_value_refuses(inp, value):
    with pytest.raises(ValueError):
        convert_value(inp, value)


def test_check_value_first_error_only():
    inp = Input("steps", INT, min=1, max=10)
    assert check_value(inp, 5) == (5, None)
    _, err = check_value(inp, 0, node_id="3")
    assert (err.code, err.node_id, err.input_name) == ("value_smaller_than_min", "3", "steps")
    _, err = check_value(inp, 11)
    assert err.code == "value_bigger_than_max"
    _, err = check_value(inp, "x")
    assert err.code == "invalid_input_type"


def test_check_value_choices_and_override():
    inp = Input("style", COMBO, choices=("a", "b"), default="a")
    assert check_value(inp, "b")[1] is None
    assert check_value(inp, "c")[1].code == "value_not_in_list"
    assert check_value(inp, "c", choices=("c",))[1] is None
