"""Image nodes: LoadImage, SaveImage, PreviewImage (workflow-formats.md §8), ImageStitch and
FluxKontextImageScale (ComfyUI's schemas)."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, COMBO, IMAGE, INT, MASK, STRING


class LoadImage(Node):
    """An image from input/ as IMAGE (all frames of the first frame's size) and MASK = 1 - alpha."""

    schema = NodeSchema(
        "LoadImage",
        display_name="Load Image",
        category="image",
        inputs=(Input("image", COMBO, choices_from="input", image_upload=True),),
        outputs=(Output("IMAGE", IMAGE), Output("MASK", MASK)),
    )

    execute = implemented_by("comfyless.nodes.impl.images:load_image")


class SaveImage(Node):
    """Save each image as output/<prefix>_<counter:05>_.png with the workflow in PNG chunks."""

    schema = NodeSchema(
        "SaveImage",
        display_name="Save Image",
        category="image",
        inputs=(
            Input("images", IMAGE),
            Input("filename_prefix", STRING, default="ComfyUI", save_to="output",
                  tooltip="relative to output/; may hold %batch_num%, %year%, %width%, ..."),
        ),
        # Since 2026-06 SaveImage also passes its images on.
        outputs=(Output("images", IMAGE),),
        output_node=True,
    )

    execute = implemented_by("comfyless.nodes.impl.images:save_image")


class PreviewImage(Node):
    """Save each image into temp/ (ComfyUI_temp_xxxxx_<counter>_.png) for viewing."""

    schema = NodeSchema(
        "PreviewImage",
        display_name="Preview Image",
        category="image",
        inputs=(Input("images", IMAGE),),
        outputs=(),
        output_node=True,
    )

    execute = implemented_by("comfyless.nodes.impl.images:preview_image")


# Choices of ImageStitch; the colours themselves are in nodes/impl/images.py (SPACING_COLORS).
STITCH_DIRECTIONS = ("right", "down", "left", "up")
STITCH_COLORS = ("white", "black", "red", "green", "blue")


class ImageStitch(Node):
    """Put image2 beside image1 (right/down/left/up), optionally resized and with a gap."""

    schema = NodeSchema(
        "ImageStitch",
        display_name="Image Stitch",
        category="image/transform",
        description="Stitches image2 to image1 in the specified direction.\n"
                    "If image2 is not provided, returns image1 unchanged.\n"
                    "Optional spacing can be added between images.",
        inputs=(
            Input("image1", IMAGE),
            Input("direction", COMBO, choices=STITCH_DIRECTIONS, default="right"),
            Input("match_image_size", BOOLEAN, default=True),
            Input("spacing_width", INT, default=0, min=0, max=1024, step=2),
            Input("spacing_color", COMBO, choices=STITCH_COLORS, default="white"),
            Input("image2", IMAGE, optional=True),
        ),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by("comfyless.nodes.impl.images:image_stitch")


class FluxKontextImageScale(Node):
    """Centre-crop and resize to the Kontext size (of 17) whose aspect is closest."""

    schema = NodeSchema(
        "FluxKontextImageScale",
        category="advanced/conditioning/flux",
        description="This node resizes the image to one that is more optimal for flux kontext.",
        inputs=(Input("image", IMAGE),),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by("comfyless.nodes.impl.images:flux_kontext_image_scale")


NODES = [LoadImage, SaveImage, PreviewImage, ImageStitch, FluxKontextImageScale]
