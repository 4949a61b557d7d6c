"""Everyday image and mask nodes (ComfyUI's nodes.py, comfy_extras/nodes_images.py,
nodes_post_processing.py, nodes_mask.py, nodes_compositing.py): scaling, cropping, batching,
padding, blending and mask conversions. Code in nodes/impl/image_edit.py."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, COMBO, FLOAT, IMAGE, INT, MASK
from .latent import MAX_RESOLUTION

# ComfyUI's upscale_methods and crop_methods (common_upscale's modes).
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")
MASK_CHANNELS = ("red", "green", "blue", "alpha")

_IMPL = "comfyless.nodes.impl.image_edit"


def _node(class_type: str, function: str, inputs: tuple, outputs: tuple, category: str,
          display_name: str | None = None, doc: str = "", **extra) -> type[Node]:
    """A Node class with ComfyUI's schema whose execute is `impl.image_edit:<function>`."""
    schema = NodeSchema(class_type, display_name=display_name, category=category,
                        inputs=inputs, outputs=outputs, **extra)
    return type(class_type, (Node,), {"__doc__": doc, "schema": schema,
                                      "execute": implemented_by(f"{_IMPL}:{function}")})


_SIDE = {"min": 0, "max": MAX_RESOLUTION, "step": 1}

ImageScale = _node(
    "ImageScale", "image_scale",
    (Input("image", IMAGE), Input("upscale_method", COMBO, choices=UPSCALE_METHODS),
     Input("width", INT, default=512, **_SIDE), Input("height", INT, default=512, **_SIDE),
     Input("crop", COMBO, choices=CROP_METHODS)),
    (Output("IMAGE", IMAGE),), "image/upscaling", "Upscale Image",
    "Resize to width x height (0 keeps the aspect from the other side).")

ImageScaleBy = _node(
    "ImageScaleBy", "image_scale_by",
    (Input("image", IMAGE), Input("upscale_method", COMBO, choices=UPSCALE_METHODS),
     Input("scale_by", FLOAT, default=1.0, min=0.01, max=8.0, step=0.01)),
    (Output("IMAGE", IMAGE),), "image/upscaling", "Upscale Image By",
    "Resize by a factor (sides rounded).")

ImageScaleToTotalPixels = _node(
    "ImageScaleToTotalPixels", "image_scale_to_total_pixels",
    (Input("image", IMAGE), Input("upscale_method", COMBO, choices=UPSCALE_METHODS),
     Input("megapixels", FLOAT, default=1.0, min=0.01, max=16.0, step=0.01),
     Input("resolution_steps", INT, default=1, min=1, max=256)),
    (Output("IMAGE", IMAGE),), "image/upscaling", None,
    "Resize to about megapixels x 1024^2 pixels, keeping the aspect.",
    # The first version had no resolution_steps (sides rounded to whole pixels, its default).
    older_widget_layouts=(("resolution_steps",),))

ImageInvert = _node(
    "ImageInvert", "image_invert", (Input("image", IMAGE),), (Output("IMAGE", IMAGE),),
    "image", "Invert Image", "1 - image.")

ImageCrop = _node(
    "ImageCrop", "image_crop",
    (Input("image", IMAGE),
     Input("width", INT, default=512, min=1, max=MAX_RESOLUTION, step=1),
     Input("height", INT, default=512, min=1, max=MAX_RESOLUTION, step=1),
     Input("x", INT, default=0, **_SIDE), Input("y", INT, default=0, **_SIDE)),
    (Output("IMAGE", IMAGE),), "image/transform", None,
    "A width x height window at (x, y), cut at the image's edges.")

ImageBatch = _node(
    "ImageBatch", "image_batch", (Input("image1", IMAGE), Input("image2", IMAGE)),
    (Output("IMAGE", IMAGE),), "image", "Batch Images",
    "image1's batch followed by image2's (resized to image1's size).")

RepeatImageBatch = _node(
    "RepeatImageBatch", "repeat_image_batch",
    (Input("image", IMAGE), Input("amount", INT, default=1, min=1, max=4096)),
    (Output("IMAGE", IMAGE),), "image/batch", None, "The batch repeated `amount` times.")

ImageFromBatch = _node(
    "ImageFromBatch", "image_from_batch",
    (Input("image", IMAGE),
     Input("batch_index", INT, default=0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION),
     Input("length", INT, default=1, min=1, max=4096)),
    (Output("IMAGE", IMAGE),), "image/batch", "Get Image from Batch",
    "`length` images from `batch_index` (negative: from the end; both clamped to the batch).")

_PAD = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}

ImagePadForOutpaint = _node(
    "ImagePadForOutpaint", "image_pad_for_outpaint",
    (Input("image", IMAGE), Input("left", INT, **_PAD), Input("top", INT, **_PAD),
     Input("right", INT, **_PAD), Input("bottom", INT, **_PAD),
     Input("feathering", INT, default=40, min=0, max=MAX_RESOLUTION, step=1)),
    (Output("IMAGE", IMAGE), Output("MASK", MASK)), "image", "Pad Image for Outpainting",
    "Grey (0.5) borders, and a mask that is 1 there, fading into the image over `feathering`.")

ImageBlend = _node(
    "ImageBlend", "image_blend",
    (Input("image1", IMAGE), Input("image2", IMAGE),
     Input("blend_factor", FLOAT, default=0.5, min=0.0, max=1.0, step=0.01),
     Input("blend_mode", COMBO, choices=BLEND_MODES)),
    (Output("IMAGE", IMAGE),), "image/postprocessing", "Image Blend",
    "image1 mixed with mode(image1, image2) by blend_factor.")

ImageToMask = _node(
    "ImageToMask", "image_to_mask",
    (Input("image", IMAGE), Input("channel", COMBO, choices=MASK_CHANNELS)),
    (Output("MASK", MASK),), "mask", "Convert Image to Mask", "One channel as a MASK.")

MaskToImage = _node(
    "MaskToImage", "mask_to_image", (Input("mask", MASK),), (Output("IMAGE", IMAGE),),
    "mask", "Convert Mask to Image", "The mask as a grey RGB image.")

SolidMask = _node(
    "SolidMask", "solid_mask",
    (Input("value", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01),
     Input("width", INT, default=512, min=1, max=MAX_RESOLUTION, step=1),
     Input("height", INT, default=512, min=1, max=MAX_RESOLUTION, step=1)),
    (Output("MASK", MASK),), "mask", None, "A [1, height, width] mask of one value.")

InvertMask = _node(
    "InvertMask", "invert_mask", (Input("mask", MASK),), (Output("MASK", MASK),), "mask",
    None, "1 - mask.")

GrowMask = _node(
    "GrowMask", "grow_mask",
    (Input("mask", MASK),
     Input("expand", INT, default=0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1),
     Input("tapered_corners", BOOLEAN, default=True)),
    (Output("MASK", MASK),), "mask", "Grow Mask",
    "Grey dilation (expand > 0) or erosion (< 0), one pixel per step.",
    description="Expands (dilates) or shrinks (erodes) mask boundaries by a specified pixel "
                "distance.")

JoinImageWithAlpha = _node(
    "JoinImageWithAlpha", "join_image_with_alpha",
    (Input("image", IMAGE), Input("alpha", MASK)), (Output("IMAGE", IMAGE),),
    "mask/compositing", "Join Image with Alpha", "RGB plus alpha = 1 - mask (resized).")

_THRESHOLD = {"min": 0.01, "max": 0.99, "step": 0.01}

Canny = _node(
    "Canny", "canny",
    (Input("image", IMAGE), Input("low_threshold", FLOAT, default=0.4, **_THRESHOLD),
     Input("high_threshold", FLOAT, default=0.8, **_THRESHOLD)),
    (Output("IMAGE", IMAGE),), "image/preprocessors", None,
    "Canny edges (kornia's algorithm: 5x5 Gaussian, Sobel, thinning, hysteresis) as white "
    "on black.")

NODES = [ImageScale, ImageScaleBy, ImageScaleToTotalPixels, ImageInvert, ImageCrop, ImageBatch,
         RepeatImageBatch, ImageFromBatch, ImagePadForOutpaint, ImageBlend, ImageToMask,
         MaskToImage, SolidMask, InvertMask, GrowMask, JoinImageWithAlpha, Canny]
