"""Latent nodes: VAEEncode, VAEDecode, EmptyLatentImage (ComfyUI's schemas).

LATENT is `{"samples": Tensor[B, 4, H/8, W/8]}` holding the raw VAE latent (the model's latent
format scales it inside sampling/training, as in ComfyUI).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import IMAGE, INT, LATENT, VAE

MAX_RESOLUTION = 16384


class VAEEncode(Node):
    """IMAGE -> LATENT (centre-cropped to a multiple of 8; the posterior mean)."""

    schema = NodeSchema(
        "VAEEncode",
        display_name="VAE Encode",
        category="latent",
        inputs=(Input("pixels", IMAGE), Input("vae", VAE)),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by("comfyless.nodes.impl.latent:vae_encode")


class VAEDecode(Node):
    """LATENT -> IMAGE in [0, 1] (video latents are flattened into the batch)."""

    schema = NodeSchema(
        "VAEDecode",
        display_name="VAE Decode",
        category="latent",
        inputs=(Input("samples", LATENT), Input("vae", VAE)),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by("comfyless.nodes.impl.latent:vae_decode")


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

    execute = implemented_by("comfyless.nodes.impl.latent:empty_latent_image")


NODES = [VAEEncode, VAEDecode, EmptyLatentImage]
