"""Image and mask nodes of ComfyUI's newer (V3) API: BatchImagesNode (nodes_post_processing),
ResizeImageMaskNode (nodes_post_processing), ImageScaleToMaxDimension (nodes_images),
LoadImageMask (nodes.py) and ComfyNumberConvert (nodes_number_convert). Code in
nodes/impl/image_batch.py.

Dynamic inputs on the wire (execution-semantics.md, V3 types):
- BatchImagesNode's Autogrow group `images`: sockets `images.image0` ... `images.image49`;
  the first two are required (ComfyUI's min=2), the others optional.
- ResizeImageMaskNode's DynamicCombo `resize_type`: the chosen option's sub-inputs travel as
  `resize_type.<name>`; in the UI's widgets_values they follow the option's name, so their
  count depends on the option (`ui_widgets` below maps them).
"""

from __future__ import annotations

from typing import Any

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import (
    BOOLEAN,
    COMBO,
    COMFY_MATCHTYPE_V3,
    FLOAT,
    IMAGE,
    INT,
    MASK,
    STRING,
    union,
)
from .latent import MAX_RESOLUTION

_IMPL = "comfyless.nodes.impl.image_batch"

# ComfyUI: Autogrow.TemplatePrefix(Image.Input("image"), prefix="image", min=2, max=50)
BATCH_PREFIX, BATCH_MIN, BATCH_MAX = "images.image", 2, 50


class BatchImagesNode(Node):
    """The images' batches one after another, each resized (bilinear, centre crop) to the
    first one's size; 3-channel images get an opaque alpha when another has 4."""

    schema = NodeSchema(
        "BatchImagesNode",
        display_name="Batch Images",
        category="image",
        inputs=tuple(Input(f"{BATCH_PREFIX}{i}", IMAGE, optional=i >= BATCH_MIN,
                           display_name=f"image{i}")
                     for i in range(BATCH_MAX)),
        outputs=(Output("IMAGE", IMAGE),),
    )
    execute = implemented_by(f"{_IMPL}:batch_images_node")


SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")

_SIZE = {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}
# The sub-inputs ResizeImageMaskNode's options bring (ComfyUI's DynamicCombo), in UI order.
# "match" is a socket (no widget value); "width"/"height" are shared by several options.
_SUB_INPUTS = {
    "width": Input("resize_type.width", INT, optional=True, display_name="width", **_SIZE),
    "height": Input("resize_type.height", INT, optional=True, display_name="height", **_SIZE),
    "crop": Input("resize_type.crop", COMBO, choices=CROP_METHODS, default="center",
                  optional=True, display_name="crop"),
    "multiplier": Input("resize_type.multiplier", FLOAT, default=1.0, min=0.01, max=8.0,
                        step=0.01, optional=True, display_name="multiplier"),
    "longer_size": Input("resize_type.longer_size", INT, optional=True,
                         display_name="longer_size", **_SIZE),
    "shorter_size": Input("resize_type.shorter_size", INT, optional=True,
                          display_name="shorter_size", **_SIZE),
    "megapixels": Input("resize_type.megapixels", FLOAT, default=1.0, min=0.01, max=16.0,
                        step=0.01, optional=True, display_name="megapixels"),
    "match": Input("resize_type.match", union(IMAGE, MASK), optional=True,
                   display_name="match"),
    "multiple": Input("resize_type.multiple", INT, default=8, min=1, max=MAX_RESOLUTION,
                      step=1, optional=True, display_name="multiple"),
}
# option -> its sub-inputs, in ComfyUI's order (the option list order is ComfyUI's too)
RESIZE_TYPES: dict[str, tuple[str, ...]] = {
    "scale dimensions": ("width", "height", "crop"),
    "scale by multiplier": ("multiplier",),
    "scale longer dimension": ("longer_size",),
    "scale shorter dimension": ("shorter_size",),
    "scale width": ("width",),
    "scale height": ("height",),
    "scale total pixels": ("megapixels",),
    "match size": ("match", "crop"),
    "scale to multiple": ("multiple",),
}


def resize_widget_values(values: list[Any]) -> dict[str, Any] | None:
    """ResizeImageMaskNode's widgets_values -> inputs: [resize_type, the option's widget
    values..., scale_method]; None if the option is unknown or the count does not fit."""
    if not values or values[0] not in RESIZE_TYPES:
        return None
    widgets = [name for name in RESIZE_TYPES[values[0]] if _SUB_INPUTS[name].is_widget]
    if len(values) != len(widgets) + 2:
        return None
    mapped = {"resize_type": values[0], "scale_method": values[-1]}
    mapped.update({_SUB_INPUTS[name].name: value
                   for name, value in zip(widgets, values[1:-1], strict=True)})
    return mapped


class ResizeImageMaskNode(Node):
    """An IMAGE or MASK resized one of nine ways (the `resize_type` option)."""

    schema = NodeSchema(
        "ResizeImageMaskNode",
        display_name="Resize Image/Mask",
        category="transform",
        description="Resize an image or mask using various scaling methods.",
        inputs=(
            Input("input", COMFY_MATCHTYPE_V3),
            Input("resize_type", COMBO, choices=tuple(RESIZE_TYPES), default="scale dimensions",
                  tooltip="Select how to resize: by exact dimensions, scale factor, matching "
                          "another image, etc."),
            *_SUB_INPUTS.values(),
            Input("scale_method", COMBO, choices=SCALE_METHODS, default="area"),
        ),
        outputs=(Output("resized", COMFY_MATCHTYPE_V3),),
    )
    ui_widgets = staticmethod(resize_widget_values)
    execute = implemented_by(f"{_IMPL}:resize_image_mask")


class ImageScaleToMaxDimension(Node):
    """Scale so the longer side is `largest_size` (square images: both sides)."""

    schema = NodeSchema(
        "ImageScaleToMaxDimension",
        display_name="Scale Image to Max Dimension",
        category="image/upscaling",
        inputs=(
            Input("image", IMAGE),
            # ComfyUI lists "bilinear" twice; kept, so the UI's choices match.
            Input("upscale_method", COMBO,
                  choices=("area", "lanczos", "bilinear", "nearest-exact", "bilinear",
                           "bicubic")),
            Input("largest_size", INT, default=512, min=0, max=MAX_RESOLUTION, step=1),
        ),
        outputs=(Output("IMAGE", IMAGE),),
    )
    execute = implemented_by(f"{_IMPL}:image_scale_to_max_dimension")


MASK_FILE_CHANNELS = ("alpha", "red", "green", "blue")


class LoadImageMask(Node):
    """One channel of an image file in input/ as MASK [1, H, W]; alpha is inverted."""

    schema = NodeSchema(
        "LoadImageMask",
        display_name="Load Image (as Mask)",
        category="mask",
        inputs=(Input("image", COMBO, choices_from="input", image_upload=True),
                Input("channel", COMBO, choices=MASK_FILE_CHANNELS)),
        outputs=(Output("MASK", MASK),),
    )
    execute = implemented_by(f"{_IMPL}:load_image_mask")


class ComfyNumberConvert(Node):
    """An INT, FLOAT, numeric STRING or BOOLEAN as FLOAT and INT (truncated toward zero)."""

    schema = NodeSchema(
        "ComfyNumberConvert",
        display_name="Number Convert",
        category="math",
        inputs=(Input("value", union(INT, FLOAT, STRING, BOOLEAN), display_name="value"),),
        outputs=(Output("FLOAT", FLOAT), Output("INT", INT)),
    )
    execute = implemented_by(f"{_IMPL}:number_convert")


NODES = [BatchImagesNode, ResizeImageMaskNode, ImageScaleToMaxDimension, LoadImageMask,
         ComfyNumberConvert]
