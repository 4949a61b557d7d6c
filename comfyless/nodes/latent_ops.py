"""Latent operation nodes (ComfyUI's schemas): LatentUpscale, LatentUpscaleBy, LatentFromBatch,
RepeatLatentBatch, LatentComposite, SetLatentNoiseMask, VAEDecodeTiled, VAEEncodeTiled,
SaveLatent, LoadLatent.

LATENT is `{"samples": Tensor[B, C, h, w] (or [B, C, T, h, w]), optional "noise_mask",
"batch_index"}`; no node changes the dict or tensors it is given.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, FLOAT, IMAGE, INT, LATENT, MASK, STRING, VAE

MAX_RESOLUTION = 16384
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
CROP_METHODS = ("disabled", "center")
_IMPL = "comfyless.nodes.impl.latent_ops"


class LatentUpscale(Node):
    """Resize the latent to width/8 x height/8 (0 for one side keeps the aspect)."""

    schema = NodeSchema(
        "LatentUpscale",
        display_name="Upscale Latent",
        category="latent",
        inputs=(
            Input("samples", LATENT),
            Input("upscale_method", COMBO, choices=UPSCALE_METHODS),
            Input("width", INT, default=512, min=0, max=MAX_RESOLUTION, step=8),
            Input("height", INT, default=512, min=0, max=MAX_RESOLUTION, step=8),
            Input("crop", COMBO, choices=CROP_METHODS),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:latent_upscale")


class LatentUpscaleBy(Node):
    """Resize the latent by a factor (each side rounded)."""

    schema = NodeSchema(
        "LatentUpscaleBy",
        display_name="Upscale Latent By",
        category="latent",
        inputs=(
            Input("samples", LATENT),
            Input("upscale_method", COMBO, choices=UPSCALE_METHODS),
            Input("scale_by", FLOAT, default=1.5, min=0.01, max=8.0, step=0.01),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:latent_upscale_by")


class LatentFromBatch(Node):
    """`length` samples from `batch_index` on (both clamped to the batch)."""

    schema = NodeSchema(
        "LatentFromBatch",
        display_name="Latent From Batch",
        category="latent/batch",
        inputs=(
            Input("samples", LATENT),
            Input("batch_index", INT, default=0, min=0, max=63),
            Input("length", INT, default=1, min=1, max=64),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:latent_from_batch")


class RepeatLatentBatch(Node):
    """The whole batch repeated `amount` times."""

    schema = NodeSchema(
        "RepeatLatentBatch",
        display_name="Repeat Latent Batch",
        category="latent/batch",
        inputs=(
            Input("samples", LATENT),
            Input("amount", INT, default=1, min=1, max=64),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:repeat_latent_batch")


class LatentComposite(Node):
    """Paste samples_from into samples_to at (x, y) pixels, with a feathered edge."""

    schema = NodeSchema(
        "LatentComposite",
        display_name="Latent Composite",
        category="latent",
        inputs=(
            Input("samples_to", LATENT),
            Input("samples_from", LATENT),
            Input("x", INT, default=0, min=0, max=MAX_RESOLUTION, step=8),
            Input("y", INT, default=0, min=0, max=MAX_RESOLUTION, step=8),
            Input("feather", INT, default=0, min=0, max=MAX_RESOLUTION, step=8),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:latent_composite")


class SetLatentNoiseMask(Node):
    """Attach a MASK as the latent's noise_mask (sampling only changes where it is > 0)."""

    schema = NodeSchema(
        "SetLatentNoiseMask",
        display_name="Set Latent Noise Mask",
        category="latent/inpaint",
        inputs=(Input("samples", LATENT), Input("mask", MASK)),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:set_latent_noise_mask")


class VAEDecodeTiled(Node):
    """VAEDecode in overlapping tiles blended together (bounded memory for large images)."""

    schema = NodeSchema(
        "VAEDecodeTiled",
        display_name="VAE Decode (Tiled)",
        category="_for_testing",
        inputs=(
            Input("samples", LATENT),
            Input("vae", VAE),
            Input("tile_size", INT, default=512, min=64, max=4096, step=32),
            Input("overlap", INT, default=64, min=0, max=4096, step=32),
            Input("temporal_size", INT, default=64, min=8, max=4096, step=4,
                  tooltip="Only used for video VAEs: Amount of frames to decode at a time."),
            Input("temporal_overlap", INT, default=8, min=4, max=4096, step=4,
                  tooltip="Only used for video VAEs: Amount of frames to overlap."),
        ),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by(f"{_IMPL}:vae_decode_tiled")


class VAEEncodeTiled(Node):
    """VAEEncode in overlapping tiles blended together."""

    schema = NodeSchema(
        "VAEEncodeTiled",
        display_name="VAE Encode (Tiled)",
        category="_for_testing",
        inputs=(
            Input("pixels", IMAGE),
            Input("vae", VAE),
            Input("tile_size", INT, default=512, min=64, max=4096, step=64),
            Input("overlap", INT, default=64, min=0, max=4096, step=32),
            Input("temporal_size", INT, default=64, min=8, max=4096, step=4,
                  tooltip="Only used for video VAEs: Amount of frames to encode at a time."),
            Input("temporal_overlap", INT, default=8, min=4, max=4096, step=4,
                  tooltip="Only used for video VAEs: Amount of frames to overlap."),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:vae_encode_tiled")


class SaveLatent(Node):
    """Save the latent as output/<prefix>_<counter:05>_.latent (safetensors)."""

    schema = NodeSchema(
        "SaveLatent",
        display_name="SaveLatent",
        category="_for_testing",
        inputs=(
            Input("samples", LATENT),
            Input("filename_prefix", STRING, default="latents/ComfyUI", save_to="output"),
        ),
        outputs=(),
        output_node=True,
    )

    execute = implemented_by(f"{_IMPL}:save_latent")


class LoadLatent(Node):
    """A .latent file from input/ (files without the version marker are unscaled by 0.18215)."""

    schema = NodeSchema(
        "LoadLatent",
        display_name="LoadLatent",
        category="_for_testing",
        inputs=(Input("latent", COMBO, choices_from="input"),),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:load_latent")


NODES = [LatentUpscale, LatentUpscaleBy, LatentFromBatch, RepeatLatentBatch, LatentComposite,
         SetLatentNoiseMask, VAEDecodeTiled, VAEEncodeTiled, SaveLatent, LoadLatent]
