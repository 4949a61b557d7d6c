"""Upscale-model nodes (ComfyUI's comfy_extras/nodes_upscale_model.py): UpscaleModelLoader and
ImageUpscaleWithModel. Files are read by `spandrel` (ESRGAN, Real-ESRGAN, SwinIR, ... as in
ComfyUI), an optional dependency: `pip install comfyless[upscale]`. Code in
nodes/impl/upscale.py.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, IMAGE, io_type

UPSCALE_MODEL = io_type("UPSCALE_MODEL", "spandrel.ImageModelDescriptor: a single-image "
                                         "super-resolution network with its scale")
_IMPL = "comfyless.nodes.impl.upscale"


class UpscaleModelLoader(Node):
    """An upscale model file from models/upscale_models as UPSCALE_MODEL."""

    schema = NodeSchema(
        "UpscaleModelLoader",
        display_name="Load Upscale Model",
        category="loaders",
        inputs=(Input("model_name", COMBO, choices_from="upscale_models"),),
        outputs=(Output("UPSCALE_MODEL", UPSCALE_MODEL),),
    )
    execute = implemented_by(f"{_IMPL}:upscale_model_loader")


class ImageUpscaleWithModel(Node):
    """The image through the upscale network in 512-pixel tiles overlapping by 32, blended."""

    schema = NodeSchema(
        "ImageUpscaleWithModel",
        display_name="Upscale Image (using Model)",
        category="image/upscaling",
        inputs=(Input("upscale_model", UPSCALE_MODEL), Input("image", IMAGE)),
        outputs=(Output("IMAGE", IMAGE),),
    )
    execute = implemented_by(f"{_IMPL}:image_upscale_with_model")


NODES = [UpscaleModelLoader, ImageUpscaleWithModel]
