"""Execute of the conditioning nodes (nodes/conditioning.py): CLIPTextEncode, CLIPSetLastLayer,
ReferenceLatent, FluxKontextMultiReferenceLatentMethod."""

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


def conditioning_set_values(conditioning, values: dict, append: bool = False) -> list:
    """A copy of `conditioning` with `values` set in every entry's options (ComfyUI's
    node_helpers.conditioning_set_values); `append` extends an existing list instead.

    Entries and option dicts are new, lists are concatenated into new lists: the input (which
    the cache may hand to other nodes) is never mutated.
    """
    out = []
    for cond, options in conditioning:
        options = dict(options)
        for key, value in values.items():
            old = options.get(key) if append else None
            if old is not None:
                value = old + value
            options[key] = list(value) if isinstance(value, list) else value  # one per entry
        out.append([cond, options])
    return out


def _latent_samples(ctx, latent, input_name: str):
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected "
                         f"a LATENT dict with a 'samples' tensor, got {type(latent).__name__}")
    return latent["samples"]


def reference_latent(ctx, conditioning, latent=None):
    if latent is None:  # optional input left open: the conditioning passes through
        return (conditioning,)
    samples = _latent_samples(ctx, latent, "latent")
    return (conditioning_set_values(conditioning, {"reference_latents": [samples]}, append=True),)


def flux_kontext_multi_reference_latent_method(ctx, conditioning, reference_latents_method: str):
    method = "uxo" if "uxo" in reference_latents_method else reference_latents_method
    return (conditioning_set_values(conditioning, {"reference_latents_method": method}),)
