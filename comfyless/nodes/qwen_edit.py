"""Qwen-Image edit text encoding (ComfyUI's comfy_extras/nodes_qwen.py): TextEncodeQwenImageEdit
and TextEncodeQwenImageEditPlus.

Both encode a prompt with Qwen2.5-VL-7B (CLIP type `qwen_image`, a file with its `visual.*`
vision tower) seeing the input images, and with a VAE append each image's latent to every
entry's `reference_latents` (the Qwen-Image network places them after the image tokens).
Scaling rules and templates: comfyless/nodes/impl/qwen_edit.py.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import CLIP, CONDITIONING, IMAGE, STRING, VAE


class TextEncodeQwenImageEdit(Node):
    """Encode a prompt seeing one image (about 1 megapixel); with a VAE, add its latent as a
    reference latent."""

    schema = NodeSchema(
        "TextEncodeQwenImageEdit",
        category="advanced/conditioning",
        inputs=(
            Input("clip", CLIP),
            Input("prompt", STRING, multiline=True),
            Input("vae", VAE, optional=True),
            Input("image", IMAGE, optional=True),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.qwen_edit:text_encode_qwen_image_edit")


class TextEncodeQwenImageEditPlus(Node):
    """Encode a prompt seeing up to three images ("Picture N: ..."); with a VAE, add each
    image's latent (about 1 megapixel) as a reference latent."""

    schema = NodeSchema(
        "TextEncodeQwenImageEditPlus",
        category="advanced/conditioning",
        inputs=(
            Input("clip", CLIP),
            Input("prompt", STRING, multiline=True),
            Input("vae", VAE, optional=True),
            Input("image1", IMAGE, optional=True),
            Input("image2", IMAGE, optional=True),
            Input("image3", IMAGE, optional=True),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.qwen_edit:text_encode_qwen_image_edit_plus")


NODES = [TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus]
