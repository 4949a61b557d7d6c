"""Conditioning nodes: CLIPTextEncode and CLIPSetLastLayer (ComfyUI's schemas).

CONDITIONING is ComfyUI's `[[cond Tensor[1, 77k, D], {"pooled_output": Tensor[1, P]}]]`.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import CLIP, CONDITIONING, INT, STRING


class CLIPTextEncode(Node):
    """Encode a prompt (with ComfyUI's (word:1.2) weights) into CONDITIONING."""

    schema = NodeSchema(
        "CLIPTextEncode",
        display_name="CLIP Text Encode (Prompt)",
        category="conditioning",
        inputs=(
            Input("text", STRING, multiline=True, tooltip="The text to be encoded."),
            Input("clip", CLIP, tooltip="The CLIP model used for encoding the text."),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_text_encode")


class CLIPSetLastLayer(Node):
    """A CLIP that stops at an earlier layer (-1 = last, -2 = penultimate, ...)."""

    schema = NodeSchema(
        "CLIPSetLastLayer",
        display_name="CLIP Set Last Layer",
        category="conditioning",
        inputs=(
            Input("clip", CLIP),
            Input("stop_at_clip_layer", INT, default=-1, min=-24, max=-1, step=1),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_set_last_layer")


NODES = [CLIPTextEncode, CLIPSetLastLayer]
