"""Image nodes: LoadImage, SaveImage, PreviewImage (workflow-formats.md §8)."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, IMAGE, MASK, STRING


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


NODES = [LoadImage, SaveImage, PreviewImage]
