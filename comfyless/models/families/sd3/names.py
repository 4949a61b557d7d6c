"""SAI (ComfyUI) <-> diffusers module names of the MMDiT (model-families.md §2.5), torch-free.

One table serves the diffusers-transformer converter (detect.py) and the LoRA key maps
(network.py). A fused SAI `qkv` Linear is three diffusers Linears (q, k, v: row slices of H
each). Two diffusers modules emit their modulation as (scale, shift) where SAI emits
(shift, scale): `norm_out.linear` and the last block's `norm1_context.linear` (its context
block is pre-only); their rows are swapped in halves when converting either way.
"""

from __future__ import annotations

import re

# SAI module inside `joint_blocks.N.` -> diffusers module(s) inside `transformer_blocks.N.`
BLOCK_MODULES: dict[str, tuple[str, ...]] = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block.attn.proj": ("attn.to_out.0",),
    "context_block.attn.proj": ("attn.to_add_out",),
    "x_block.attn2.proj": ("attn2.to_out.0",),
    "x_block.mlp.fc1": ("ff.net.0.proj",),
    "x_block.mlp.fc2": ("ff.net.2",),
    "context_block.mlp.fc1": ("ff_context.net.0.proj",),
    "context_block.mlp.fc2": ("ff_context.net.2",),
    "x_block.adaLN_modulation.1": ("norm1.linear",),
    "context_block.adaLN_modulation.1": ("norm1_context.linear",),
    "x_block.attn.ln_q": ("attn.norm_q",),
    "x_block.attn.ln_k": ("attn.norm_k",),
    "context_block.attn.ln_q": ("attn.norm_added_q",),
    "context_block.attn.ln_k": ("attn.norm_added_k",),
    "x_block.attn2.ln_q": ("attn2.norm_q",),
    "x_block.attn2.ln_k": ("attn2.norm_k",),
}
# SAI module -> diffusers module outside the blocks
GLOBAL_MODULES: dict[str, tuple[str, ...]] = {
    "x_embedder.proj": ("pos_embed.proj",),
    "t_embedder.mlp.0": ("time_text_embed.timestep_embedder.linear_1",),
    "t_embedder.mlp.2": ("time_text_embed.timestep_embedder.linear_2",),
    "y_embedder.mlp.0": ("time_text_embed.text_embedder.linear_1",),
    "y_embedder.mlp.2": ("time_text_embed.text_embedder.linear_2",),
    "context_embedder": ("context_embedder",),
    "final_layer.linear": ("proj_out",),
    "final_layer.adaLN_modulation.1": ("norm_out.linear",),
}
# the stored position table: a buffer, converted with the weights but never a LoRA target
POS_EMBED = ("pos_embed", "pos_embed.pos_embed")

_BLOCK = re.compile(r"^joint_blocks\.(\d+)\.(.+)$")


def diffusers_modules(sai_module: str) -> tuple[str, ...]:
    """The diffusers module(s) of one SAI module path (three for a fused qkv; () if none)."""
    m = _BLOCK.match(sai_module)
    if m is None:
        return GLOBAL_MODULES.get(sai_module, ())
    n, rest = m.groups()
    return tuple(f"transformer_blocks.{n}.{d}" for d in BLOCK_MODULES.get(rest, ()))


def swapped_sai_modules(depth: int) -> tuple[str, str]:
    """The SAI modules whose diffusers twins order their two halves (scale, shift)."""
    return ("final_layer.adaLN_modulation.1",
            f"joint_blocks.{depth - 1}.context_block.adaLN_modulation.1")


def swapped_diffusers_modules(depth: int) -> tuple[str, str]:
    """The diffusers twins of `swapped_sai_modules(depth)`."""
    return ("norm_out.linear", f"transformer_blocks.{depth - 1}.norm1_context.linear")


def sai_modules_of_diffusers(depth: int) -> dict[str, tuple[str, int, int]]:
    """diffusers module -> (SAI module, piece index, piece count) for a `depth`-block model
    (every module a block may have; the caller keeps those its file or network has)."""
    out: dict[str, tuple[str, int, int]] = {}
    pairs = list(GLOBAL_MODULES.items()) + [
        (f"joint_blocks.{n}.{sai}", tuple(f"transformer_blocks.{n}.{d}" for d in difs))
        for n in range(depth) for sai, difs in BLOCK_MODULES.items()]
    for sai, difs in pairs:
        for i, dif in enumerate(difs):
            out[dif] = (sai, i, len(difs))
    return out
