"""Per-item image and text transforms (resize, crop, colour; case, prefix, ...).

These nodes run once per list item (execution-semantics.md §3.2): a list in gives a list out.
"""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ...typesys.types import FLOAT, IMAGE, INT, STRING
from .common import seed_input

IMPL = "comfyless.nodes.impl.datasets.transforms"


def _image_node(class_type: str, display: str, category: str, params: tuple[Input, ...],
                function: str, *, deprecated: bool = False) -> type[Node]:
    """A per-item image node: `images` plus `params` in, transformed `images` out; `function`
    names its execute in nodes/impl/datasets/transforms.py."""

    class ImageNode(Node):
        schema = NodeSchema(
            class_type,
            display_name=display,
            category=category,
            inputs=(Input("images", IMAGE), *params),
            outputs=(Output("images", IMAGE),),
            experimental=True,
            deprecated=deprecated,
        )

        execute = implemented_by(f"{IMPL}:{function}")

    ImageNode.__name__ = ImageNode.__qualname__ = class_type
    ImageNode.__doc__ = display
    return ImageNode


def _size(name: str, default: int) -> Input:
    return Input(name, INT, default=default, min=1, max=8192)


ResizeImagesByShorterEdge = _image_node(
    "ResizeImagesByShorterEdge", "Resize Images by Shorter Edge", "image/transform",
    (_size("shorter_edge", 512),),
    "resize_images_by_shorter_edge",
    deprecated=True,
)
ResizeImagesByLongerEdge = _image_node(
    "ResizeImagesByLongerEdge", "Resize Images by Longer Edge", "image/transform",
    (_size("longer_edge", 1024),),
    "resize_images_by_longer_edge",
    deprecated=True,
)
CenterCropImages = _image_node(
    "CenterCropImages", "Crop Image (Center)", "image/transform",
    (_size("width", 512), _size("height", 512)), "center_crop_images",
)
RandomCropImages = _image_node(
    "RandomCropImages", "Crop Image (Random)", "image/transform",
    (_size("width", 512), _size("height", 512), seed_input()), "random_crop_images",
)
NormalizeImages = _image_node(
    "NormalizeImages", "Normalize Image Colors", "image/color",
    (Input("mean", FLOAT, default=0.5, min=0.0, max=1.0, step=0.01),
     Input("std", FLOAT, default=0.5, min=0.001, max=1.0, step=0.01)),
    "normalize_images",
)
AdjustBrightness = _image_node(
    "AdjustBrightness", "Adjust Brightness", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    "adjust_brightness",
)
AdjustContrast = _image_node(
    "AdjustContrast", "Adjust Contrast", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    "adjust_contrast",
)


# -- current era: text transforms (run once per list item) -----------------------------------


def _text_node(class_type: str, display: str, params: tuple[Input, ...], function: str,
               *, deprecated: bool = True) -> type[Node]:
    """A per-item text node: `texts` plus `params` in, transformed `texts` out (`function`:
    its execute in nodes/impl/datasets/transforms.py)."""

    class TextNode(Node):
        schema = NodeSchema(
            class_type,
            display_name=display,
            category="text",
            inputs=(Input("texts", STRING, force_input=True), *params),
            outputs=(Output("texts", STRING),),
            experimental=True,
            deprecated=deprecated,
        )

        execute = implemented_by(f"{IMPL}:{function}")

    TextNode.__name__ = TextNode.__qualname__ = class_type
    TextNode.__doc__ = display
    return TextNode


TextToLowercase = _text_node("TextToLowercase", "Text to Lowercase", (), "text_to_lowercase")
TextToUppercase = _text_node("TextToUppercase", "Text to Uppercase", (), "text_to_uppercase")
TruncateText = _text_node(
    "TruncateText", "Truncate Text",
    (Input("max_length", INT, default=77, min=1, max=10000),),
    "truncate_text", deprecated=False,
)
AddTextPrefix = _text_node(
    "AddTextPrefix", "Add Text Prefix", (Input("prefix", STRING, default=""),),
    "add_text_prefix",
)
AddTextSuffix = _text_node(
    "AddTextSuffix", "Add Text Suffix", (Input("suffix", STRING, default=""),),
    "add_text_suffix",
)
ReplaceText = _text_node(
    "ReplaceText", "Replace Text",
    (Input("find", STRING, default=""), Input("replace", STRING, default="")),
    "replace_text",
)
StripWhitespace = _text_node("StripWhitespace", "Strip Whitespace", (), "strip_whitespace")


NODES = [
    ResizeImagesByShorterEdge, ResizeImagesByLongerEdge, CenterCropImages, RandomCropImages,
    NormalizeImages, AdjustBrightness, AdjustContrast,
    TextToLowercase, TextToUppercase, TruncateText, AddTextPrefix, AddTextSuffix, ReplaceText,
    StripWhitespace,
]
