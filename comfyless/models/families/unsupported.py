"""Model families comfyless recognises but does not run (yet): trigger key -> what it is.

Checked only after no registered family matched, so a file of one of these gets an error naming
the family instead of "unrecognised key layout" (or, worse, a shape mismatch). Trigger keys are
ComfyUI's detection facts (model-detection.md §3, model-families.md §3.1, §4.1; video, audio
and other image DiTs from comfy/model_detection.py).
"""

from __future__ import annotations

from collections.abc import Iterable

# (key after the diffusion-model prefix, family name as users know it), in checking order
KNOWN_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    ("double_stream_modulation_img.lin.weight", "FLUX.2"),
    ("distilled_guidance_layer.norms.0.scale", "Chroma"),
    ("head.modulation", "Wan 2.x (video)"),
    ("txt_in.individual_token_refiner.blocks.0.norm1.weight", "HunyuanVideo"),
    ("adaln_single.emb.timestep_embedder.linear_1.bias", "LTX-Video"),
    ("t5_yproj.weight", "Mochi (video)"),
    ("double_layers.0.attn.w1q.weight", "AuraFlow"),
    ("mlp_t5.0.weight", "Hunyuan-DiT"),
    ("clf.1.weight", "Stable Cascade"),
    ("transformer.rotary_pos_emb.inv_freq", "Stable Audio"),
)


def recognise(keys: Iterable[str], prefix: str) -> tuple[str, str] | None:
    """(family name, the key that showed it) for a known unsupported family; None otherwise."""
    present = set(keys)
    for trigger, name in KNOWN_UNSUPPORTED:
        for candidate in (prefix + trigger, trigger):
            if candidate in present:
                return name, candidate
    return None
