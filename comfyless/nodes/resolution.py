"""ResolutionSelector (ComfyUI's comfy_extras/nodes_resolution.py): width and height from an
aspect ratio and a megapixel count."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, FLOAT, INT

# Choice -> (width units, height units); the one table the choices and the computation use.
ASPECT_RATIOS = {
    "1:1 (Square)": (1, 1),
    "2:3 (Portrait Photo)": (2, 3),
    "3:2 (Photo)": (3, 2),
    "3:4 (Portrait Standard)": (3, 4),
    "4:3 (Standard)": (4, 3),
    "9:16 (Portrait Widescreen)": (9, 16),
    "16:9 (Widescreen)": (16, 9),
    "21:9 (Ultrawide)": (21, 9),
}


class ResolutionSelector(Node):
    """Width x height of about `megapixels` (x 1024^2 pixels) in an aspect ratio, each side
    rounded to a multiple of `multiple`."""

    schema = NodeSchema(
        "ResolutionSelector",
        display_name="Resolution Selector",
        category="utilities",
        description="Width and height for an aspect ratio and a target size in megapixels "
                    "(1 MP = 1024 x 1024 pixels), for Empty Latent Image and the like.",
        inputs=(
            Input("aspect_ratio", COMBO, choices=tuple(ASPECT_RATIOS), default="1:1 (Square)"),
            Input("megapixels", FLOAT, default=1.0, min=0.1, max=16.0, step=0.1),
            Input("multiple", INT, default=8, min=8, max=128, step=4,
                  tooltip="each side is rounded to the nearest multiple of this"),
        ),
        outputs=(Output("width", INT), Output("height", INT)),
        # The first version had no `multiple` (sides rounded to multiples of 8, its default).
        older_widget_layouts=(("multiple",),),
    )

    execute = implemented_by("comfyless.nodes.impl.resolution:resolution_selector")


NODES = [ResolutionSelector]
