"""Logic nodes (ComfyUI's comfy_extras/nodes_logic.py): ComfySwitchNode, a lazy switch."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, COMFY_MATCHTYPE_V3


class ComfySwitchNode(Node):
    """Pass on_true or on_false on, by `switch`; only the chosen input's branch is computed."""

    schema = NodeSchema(
        "ComfySwitchNode",
        display_name="Switch",
        category="logic",
        description="Outputs on_true when switch is on, else on_false. Both inputs are lazy: "
                    "the nodes feeding only the input not chosen do not run.",
        experimental=True,
        inputs=(
            Input("switch", BOOLEAN),
            # One match-type template: both inputs and the output carry the same type.
            Input("on_false", COMFY_MATCHTYPE_V3, lazy=True),
            Input("on_true", COMFY_MATCHTYPE_V3, lazy=True),
        ),
        outputs=(Output("output", COMFY_MATCHTYPE_V3),),
    )

    @staticmethod
    def check_lazy_status(switch, on_false=None, on_true=None) -> list[str]:
        """The chosen input while it is still uncomputed (None), else nothing."""
        chosen, value = ("on_true", on_true) if switch else ("on_false", on_false)
        return [chosen] if value is None else []

    execute = implemented_by("comfyless.nodes.impl.logic:switch")


NODES = [ComfySwitchNode]
