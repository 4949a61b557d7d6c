"""Conditioning nodes: CLIPTextEncode and CLIPSetLastLayer (ComfyUI's schemas).

CONDITIONING is ComfyUI's `[[cond Tensor[1, 77k, D], {"pooled_output": Tensor[1, P]}]]`.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import CLIP, CONDITIONING, INT, STRING


def _require_clip(ctx, clip, input_name: str = "clip"):
    """ComfyUI's 'clip input is invalid: None' check, naming the node and input."""
    if clip is None:
        raise ValueError(
            f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected a CLIP text "
            "encoder, got None; if it comes from a checkpoint loader, the checkpoint holds no "
            "text encoder (load one with CLIPLoader / DualCLIPLoader)")
    return clip


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

    @staticmethod
    def execute(ctx, text: str, clip):
        clip = _require_clip(ctx, clip)
        cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return ([[cond, {"pooled_output": pooled}]],)


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

    @staticmethod
    def execute(ctx, clip, stop_at_clip_layer: int = -1):
        return (_require_clip(ctx, clip).clip_layer(stop_at_clip_layer),)


NODES = [CLIPTextEncode, CLIPSetLastLayer]
