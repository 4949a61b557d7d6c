"""Per-item image and text transforms (resize, crop, colour; case, prefix, ...).

These nodes run once per list item (execution-semantics.md §3.2): a list in gives a list out.
"""

from __future__ import annotations

from typing import Any

from ...typesys.schema import Input, Node, NodeSchema, Output
from ...typesys.types import FLOAT, IMAGE, INT, STRING
from .common import seed_input, with_signature


def _per_sample(images, transform) -> Any:
    """Apply `transform([H, W, C]) -> [h, w, C]` to every sample of an IMAGE batch."""
    import torch

    from ..impl import image_ops

    return torch.stack([transform(s) for s in image_ops.samples(images)])


def _image_node(class_type: str, display: str, category: str, params: tuple[Input, ...],
                transform, *, deprecated: bool = False) -> type[Node]:
    """A per-item image node: `images` plus `params` in, transformed `images` out."""

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

        def execute(ctx, images, **kw):
            return (transform(images, **kw),)

        execute = with_signature(execute, schema.inputs)

    ImageNode.__name__ = ImageNode.__qualname__ = class_type
    ImageNode.__doc__ = display
    return ImageNode


def _resize_edge(images, edge: int, longer: bool):
    from ..impl import image_ops

    def one(s):
        h, w = s.shape[:2]
        scale = edge / (max(h, w) if longer else min(h, w))
        return image_ops.resize(s, max(1, int(w * scale)), max(1, int(h * scale)))

    return _per_sample(images, one)


def _center_crop(images, width: int, height: int):
    from ..impl import image_ops

    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        return image_ops.crop(s, (w - cw) // 2, (h - ch) // 2, cw, ch)

    return _per_sample(images, one)


def _random_crop(images, width: int, height: int, seed: int):
    """The RNG restarts from `seed` for every image, so equal-size images share offsets."""
    import numpy as np

    from ..impl import image_ops

    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        rng = np.random.RandomState(seed % (2**32 - 1))
        left = int(rng.randint(0, w - cw + 1))
        top = int(rng.randint(0, h - ch + 1))
        return image_ops.crop(s, left, top, cw, ch)

    return _per_sample(images, one)


def _size(name: str, default: int) -> Input:
    return Input(name, INT, default=default, min=1, max=8192)


ResizeImagesByShorterEdge = _image_node(
    "ResizeImagesByShorterEdge", "Resize Images by Shorter Edge", "image/transform",
    (_size("shorter_edge", 512),),
    lambda images, shorter_edge: _resize_edge(images, shorter_edge, longer=False),
    deprecated=True,
)
ResizeImagesByLongerEdge = _image_node(
    "ResizeImagesByLongerEdge", "Resize Images by Longer Edge", "image/transform",
    (_size("longer_edge", 1024),),
    lambda images, longer_edge: _resize_edge(images, longer_edge, longer=True),
    deprecated=True,
)
CenterCropImages = _image_node(
    "CenterCropImages", "Crop Image (Center)", "image/transform",
    (_size("width", 512), _size("height", 512)), _center_crop,
)
RandomCropImages = _image_node(
    "RandomCropImages", "Crop Image (Random)", "image/transform",
    (_size("width", 512), _size("height", 512), seed_input()), _random_crop,
)
NormalizeImages = _image_node(
    "NormalizeImages", "Normalize Image Colors", "image/color",
    (Input("mean", FLOAT, default=0.5, min=0.0, max=1.0, step=0.01),
     Input("std", FLOAT, default=0.5, min=0.001, max=1.0, step=0.01)),
    lambda images, mean, std: (images - mean) / std,
)
AdjustBrightness = _image_node(
    "AdjustBrightness", "Adjust Brightness", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    lambda images, factor: (images * factor).clamp(0.0, 1.0),
)
AdjustContrast = _image_node(
    "AdjustContrast", "Adjust Contrast", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    lambda images, factor: ((images - 0.5) * factor + 0.5).clamp(0.0, 1.0),
)


# -- current era: text transforms (run once per list item) -----------------------------------


def _text_node(class_type: str, display: str, params: tuple[Input, ...], transform,
               *, deprecated: bool = True) -> type[Node]:
    """A per-item text node: `texts` plus `params` in, transformed `texts` out."""

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

        def execute(ctx, texts: str, **kw):
            return (transform(texts, **kw),)

        execute = with_signature(execute, schema.inputs)

    TextNode.__name__ = TextNode.__qualname__ = class_type
    TextNode.__doc__ = display
    return TextNode


TextToLowercase = _text_node("TextToLowercase", "Text to Lowercase", (), str.lower)
TextToUppercase = _text_node("TextToUppercase", "Text to Uppercase", (), str.upper)
TruncateText = _text_node(
    "TruncateText", "Truncate Text",
    (Input("max_length", INT, default=77, min=1, max=10000),),
    lambda texts, max_length: texts[:max_length], deprecated=False,
)
AddTextPrefix = _text_node(
    "AddTextPrefix", "Add Text Prefix", (Input("prefix", STRING, default=""),),
    lambda texts, prefix: prefix + texts,
)
AddTextSuffix = _text_node(
    "AddTextSuffix", "Add Text Suffix", (Input("suffix", STRING, default=""),),
    lambda texts, suffix: texts + suffix,
)
ReplaceText = _text_node(
    "ReplaceText", "Replace Text",
    (Input("find", STRING, default=""), Input("replace", STRING, default="")),
    lambda texts, find, replace: texts.replace(find, replace) if find else texts,
)
StripWhitespace = _text_node("StripWhitespace", "Strip Whitespace", (), str.strip)


NODES = [
    ResizeImagesByShorterEdge, ResizeImagesByLongerEdge, CenterCropImages, RandomCropImages,
    NormalizeImages, AdjustBrightness, AdjustContrast,
    TextToLowercase, TextToUppercase, TruncateText, AddTextPrefix, AddTextSuffix, ReplaceText,
    StripWhitespace,
]
