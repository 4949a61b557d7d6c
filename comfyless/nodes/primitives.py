"""ComfyUI's primitive value nodes (real backend nodes, unlike the UI's PrimitiveNode)."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, FLOAT, INT, STRING

INT64_MAX = 2**63 - 1


def _primitive(class_type: str, io, widget: Input) -> type[Node]:
    """One primitive node: a single `value` widget passed straight through."""

    class Primitive(Node):
        schema = NodeSchema(
            class_type,
            display_name=class_type.replace("Primitive", ""),
            category="utils/primitive",
            inputs=(widget,),
            outputs=(Output(io.name, io),),
        )
        execute = implemented_by("comfyless.nodes.impl.primitives:passthrough")

    Primitive.__name__ = Primitive.__qualname__ = class_type
    Primitive.__doc__ = f"A constant {io.name} value, passed straight through."
    return Primitive


PrimitiveInt = _primitive(
    "PrimitiveInt", INT,
    Input("value", INT, default=0, min=-INT64_MAX - 1, max=INT64_MAX, control_after_generate=True),
)
PrimitiveFloat = _primitive(
    "PrimitiveFloat", FLOAT, Input("value", FLOAT, default=0.0, min=-1e308, max=1e308)
)
PrimitiveString = _primitive("PrimitiveString", STRING, Input("value", STRING, default=""))
PrimitiveStringMultiline = _primitive(
    "PrimitiveStringMultiline", STRING, Input("value", STRING, default="", multiline=True)
)
PrimitiveBoolean = _primitive("PrimitiveBoolean", BOOLEAN, Input("value", BOOLEAN, default=False))

NODES = [PrimitiveInt, PrimitiveFloat, PrimitiveString, PrimitiveStringMultiline, PrimitiveBoolean]
