"""Latent nodes: VAEEncode, VAEDecode, EmptyLatentImage (ComfyUI's schemas).

LATENT is `{"samples": Tensor[B, 4, H/8, W/8]}` holding the raw VAE latent (the model's latent
format scales it inside sampling/training, as in ComfyUI).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import IMAGE, INT, LATENT, VAE

MAX_RESOLUTION = 16384


def _require(ctx, value, input_name: str, expected: str):
    if value is None:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': "
                         f"expected {expected}, got None")
    return value


def _samples(ctx, samples) -> object:
    if not isinstance(samples, dict) or "samples" not in samples:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input 'samples': expected a "
                         f"LATENT dict with a 'samples' tensor, got {type(samples).__name__}")
    return samples["samples"]


class VAEEncode(Node):
    """IMAGE -> LATENT (centre-cropped to a multiple of 8; the posterior mean)."""

    schema = NodeSchema(
        "VAEEncode",
        display_name="VAE Encode",
        category="latent",
        inputs=(Input("pixels", IMAGE), Input("vae", VAE)),
        outputs=(Output("LATENT", LATENT),),
    )

    @staticmethod
    def execute(ctx, pixels, vae):
        vae = _require(ctx, vae, "vae", "a VAE")
        if getattr(pixels, "ndim", 0) != 4 or pixels.shape[-1] < 3:
            raise ValueError(f"node {ctx.node_id} (VAEEncode) input 'pixels': expected an "
                             f"IMAGE [B, H, W, 3], got shape {tuple(getattr(pixels, 'shape', ()))}")
        try:
            return ({"samples": vae.encode(pixels[..., :3])},)
        except ValueError as exc:
            raise ValueError(f"node {ctx.node_id} (VAEEncode) input 'pixels': {exc}") from exc


class VAEDecode(Node):
    """LATENT -> IMAGE in [0, 1] (video latents are flattened into the batch)."""

    schema = NodeSchema(
        "VAEDecode",
        display_name="VAE Decode",
        category="latent",
        inputs=(Input("samples", LATENT), Input("vae", VAE)),
        outputs=(Output("IMAGE", IMAGE),),
    )

    @staticmethod
    def execute(ctx, samples, vae):
        vae = _require(ctx, vae, "vae", "a VAE")
        latent = _samples(ctx, samples)
        try:
            return (vae.decode(latent),)
        except ValueError as exc:
            raise ValueError(f"node {ctx.node_id} (VAEDecode) input 'samples': {exc}") from exc


class EmptyLatentImage(Node):
    """A batch of zero latents [batch_size, 4, height/8, width/8]."""

    schema = NodeSchema(
        "EmptyLatentImage",
        display_name="Empty Latent Image",
        category="latent",
        inputs=(
            Input("width", INT, default=512, min=16, max=MAX_RESOLUTION, step=8),
            Input("height", INT, default=512, min=16, max=MAX_RESOLUTION, step=8),
            Input("batch_size", INT, default=1, min=1, max=4096),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    @staticmethod
    def execute(ctx, width: int = 512, height: int = 512, batch_size: int = 1):
        import torch

        latent = torch.zeros([batch_size, 4, height // 8, width // 8])
        return ({"samples": latent, "downscale_ratio_spacial": 8},)


NODES = [VAEEncode, VAEDecode, EmptyLatentImage]
