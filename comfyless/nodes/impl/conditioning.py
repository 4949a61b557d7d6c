"""Execute of the conditioning nodes (nodes/conditioning.py): CLIPTextEncode, CLIPSetLastLayer."""

from __future__ import annotations


def _require_clip(ctx, clip, input_name: str = "clip"):
    """ComfyUI's 'clip input is invalid: None' check, naming the node and input."""
    if clip is None:
        raise ValueError(
            f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected a CLIP text "
            "encoder, got None; if it comes from a checkpoint loader, the checkpoint holds no "
            "text encoder (load one with CLIPLoader / DualCLIPLoader)")
    return clip


def clip_text_encode(ctx, text: str, clip):
    clip = _require_clip(ctx, clip)
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return ([[cond, {"pooled_output": pooled}]],)


def clip_set_last_layer(ctx, clip, stop_at_clip_layer: int = -1):
    return (_require_clip(ctx, clip).clip_layer(stop_at_clip_layer),)
