"""ComfyUI <-> diffusers module names of the Z-Image transformer (model-families.md §3.6),
torch-free.

One table serves the diffusers-layout file reader (detect.py, network.file_view) and the LoRA
key maps (network.lora_key_map). ComfyUI's fused `attention.qkv` is diffusers' `to_q`, `to_k`,
`to_v` (row thirds, [q | k | v]); every other module is a plain rename or keeps its name
(`feed_forward.w1/2/3`, the norms, `adaLN_modulation.0`, `t_embedder.*`, `cap_embedder.*`,
the pad tokens).
"""

from __future__ import annotations

import re

BLOCK_GROUPS = ("layers", "noise_refiner", "context_refiner")
# ComfyUI module inside a block -> diffusers module(s) inside the same block
BLOCK_RENAMES: dict[str, tuple[str, ...]] = {
    "attention.qkv": ("attention.to_q", "attention.to_k", "attention.to_v"),
    "attention.out": ("attention.to_out.0",),
    "attention.q_norm": ("attention.norm_q",),
    "attention.k_norm": ("attention.norm_k",),
}
# ComfyUI module outside the blocks -> diffusers module (patch 2, frame patch 1: "2-1")
GLOBAL_RENAMES: dict[str, str] = {
    "x_embedder": "all_x_embedder.2-1",
    "final_layer.linear": "all_final_layer.2-1.linear",
    "final_layer.adaLN_modulation.1": "all_final_layer.2-1.adaLN_modulation.1",
}
# a diffusers-layout file has these instead of ComfyUI's `k_norm` / `x_embedder`
DIFFUSERS_MARKER = "noise_refiner.0.attention.norm_k.weight"

_BLOCK = re.compile(r"^(layers|noise_refiner|context_refiner)\.(\d+)\.(.+)$")
_DIFFUSERS_OF_BLOCK = {d: (c, i, len(ds)) for c, ds in BLOCK_RENAMES.items()
                       for i, d in enumerate(ds)}
_COMFY_OF_GLOBAL = {d: c for c, d in GLOBAL_RENAMES.items()}


def diffusers_modules(module: str) -> tuple[str, ...]:
    """The diffusers module(s) of one ComfyUI module path (three for a fused qkv; the name
    itself where both layouts agree)."""
    m = _BLOCK.match(module)
    if m is None:
        return (GLOBAL_RENAMES.get(module, module),)
    group, n, rest = m.groups()
    return tuple(f"{group}.{n}.{d}" for d in BLOCK_RENAMES.get(rest, (rest,)))


def comfy_module(dif_module: str) -> tuple[str, int, int]:
    """(ComfyUI module, piece index, piece count) of one diffusers module path."""
    m = _BLOCK.match(dif_module)
    if m is None:
        return _COMFY_OF_GLOBAL.get(dif_module, dif_module), 0, 1
    group, n, rest = m.groups()
    comfy, index, count = _DIFFUSERS_OF_BLOCK.get(rest, (rest, 0, 1))
    return f"{group}.{n}.{comfy}", index, count


def comfy_plan(dif_keys: list[str]) -> dict[str, list[str]]:
    """{ComfyUI key: the diffusers keys it is made of, in row order} for a diffusers-layout
    state dict's keys (prefix-free). A fused key lacking a piece has an empty string there."""
    plan: dict[str, list[str]] = {}
    for key in dif_keys:
        module, dot, param = key.rpartition(".")
        if not dot:  # x_pad_token, cap_pad_token: raw parameters, same name
            plan[key] = [key]
            continue
        comfy, index, count = comfy_module(module)
        slots = plan.setdefault(f"{comfy}.{param}", [""] * count)
        slots[index] = key
    return plan
