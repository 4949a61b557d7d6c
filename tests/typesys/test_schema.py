"""Schema self-checks raise SchemaError; the registry refuses duplicates."""

from __future__ import annotations

import pytest

from comfyless.typesys import INT, Input, Node, NodeRegistry, NodeSchema, Output, SchemaError
from comfyless.typesys.types import COMBO


@pytest.mark.parametrize("kwargs", [
    {"inputs": (Input("a", INT), Input("a", INT))},
    {"outputs": (Output("o", INT), Output("o", INT))},
    {"inputs": (Input("a", INT, default=-1, min=0),)},
    {"inputs": (Input("a", INT, default=11, max=10),)},
    {"inputs": (Input("a", COMBO, default="z", choices=("x", "y")),)},
    {"inputs": (Input("a", COMBO),)},
])
def test_bad_schema_raises(kwargs):
    with pytest.raises(SchemaError):
        NodeSchema("Bad", **kwargs)


def test_good_schema_and_input_map():
    schema = NodeSchema("Good", inputs=(Input("a", INT, default=1, min=0, max=2),),
                        outputs=(Output("INT", INT),))
    assert schema.input("a").default == 1


def test_registry_duplicate_class_type():
    def make():
        class N(Node):
            schema = NodeSchema("Dup")
        return N

    registry = NodeRegistry([make()])
    with pytest.raises(SchemaError):
        registry.register(make())
    assert list(registry) == ["Dup"]


def test_ui_extra_values():
    assert Input("seed", INT, default=0).ui_extra_values == 1
    assert Input("steps", INT, default=0).ui_extra_values == 0
    assert Input("seed", INT, force_input=True).ui_extra_values == 0
