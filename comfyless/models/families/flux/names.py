"""FLUX.1 module names: the BFL/ComfyUI layout and the diffusers layout (model-families.md §1.6).

One table serves the diffusers-layout transformer loader (fuse the parts into the BFL weight)
and the LoRA key map (each diffusers module is a row slice of the fused BFL weight). Torch-free.

`diffusers_table(...)` rows are `Part(bfl, diffusers, rows)`: `rows` is None for a whole weight,
or `(start, length)` of dimension 0 of the fused BFL weight (q/k/v in `qkv`, q/k/v and the MLP
input in a single block's `linear1`). `norm_out.linear` maps onto
`final_layer.adaLN_modulation.1` with its two row halves swapped (diffusers orders the final
modulation (scale, shift), BFL (shift, scale)).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# BFL files store RMSNorm scales as `..._norm.scale`; ComfyUI (and we) call them `.weight`.
BFL_NORM_SCALE = "_norm.scale"
NORM_WEIGHT = "_norm.weight"

FINAL_MODULATION = "final_layer.adaLN_modulation.1"  # BFL (shift, scale)
DIFFUSERS_FINAL_MODULATION = "norm_out.linear"  # diffusers (scale, shift)

# Keys that say "this is a diffusers-layout Flux transformer" (after the prefix).
DIFFUSERS_TRIGGERS = ("x_embedder.weight", "transformer_blocks.0.attn.norm_k.weight")


class Part(NamedTuple):
    bfl: str  # BFL module path (parameters `<bfl>.weight` / `.bias`)
    diffusers: str  # diffusers module path
    rows: tuple[int, int] | None  # (start, length) in the fused BFL weight; None: all of it


def _double(n: int, hidden: int) -> list[Part]:
    d, t = f"double_blocks.{n}", f"transformer_blocks.{n}"
    parts = [Part(f"{d}.img_attn.qkv", f"{t}.attn.to_{x}", (i * hidden, hidden))
             for i, x in enumerate("qkv")]
    parts += [Part(f"{d}.txt_attn.qkv", f"{t}.attn.add_{x}_proj", (i * hidden, hidden))
              for i, x in enumerate("qkv")]
    whole = {
        "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
        "img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear",
        "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
        "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
        "img_attn.norm.query_norm": "attn.norm_q", "img_attn.norm.key_norm": "attn.norm_k",
        "txt_attn.norm.query_norm": "attn.norm_added_q",
        "txt_attn.norm.key_norm": "attn.norm_added_k",
    }
    return parts + [Part(f"{d}.{b}", f"{t}.{x}", None) for b, x in whole.items()]


# LoKr trainers (LyCORIS) name the feed-forward layers differently (§1.6); LoRA-only spellings.
_LOKR_FF = {"img_mlp.0": "ff.linear_in", "img_mlp.2": "ff.linear_out",
            "txt_mlp.0": "ff_context.linear_in", "txt_mlp.2": "ff_context.linear_out"}


def _single(n: int, hidden: int, mlp_hidden: int) -> list[Part]:
    s, t = f"single_blocks.{n}", f"single_transformer_blocks.{n}"
    parts = [Part(f"{s}.linear1", f"{t}.attn.to_{x}", (i * hidden, hidden))
             for i, x in enumerate("qkv")]
    parts.append(Part(f"{s}.linear1", f"{t}.proj_mlp", (3 * hidden, mlp_hidden)))
    whole = {"linear2": "proj_out", "modulation.lin": "norm.linear",
             "norm.query_norm": "attn.norm_q", "norm.key_norm": "attn.norm_k"}
    return parts + [Part(f"{s}.{b}", f"{t}.{x}", None) for b, x in whole.items()]


def _globals(guidance_embed: bool) -> list[Part]:
    embed = {"time_in": "timestep_embedder", "vector_in": "text_embedder"}
    if guidance_embed:
        embed["guidance_in"] = "guidance_embedder"
    parts = [Part("img_in", "x_embedder", None), Part("txt_in", "context_embedder", None),
             Part("final_layer.linear", "proj_out", None),
             Part(FINAL_MODULATION, DIFFUSERS_FINAL_MODULATION, None)]
    for bfl, dif in embed.items():
        parts.append(Part(f"{bfl}.in_layer", f"time_text_embed.{dif}.linear_1", None))
        parts.append(Part(f"{bfl}.out_layer", f"time_text_embed.{dif}.linear_2", None))
    return parts


def diffusers_table(depth: int, depth_single: int, hidden: int, mlp_hidden: int,
                    guidance_embed: bool) -> list[Part]:
    """Every diffusers module of a Flux transformer and where it lives in the BFL layout."""
    parts = _globals(guidance_embed)
    for n in range(depth):
        parts += _double(n, hidden)
    for n in range(depth_single):
        parts += _single(n, hidden, mlp_hidden)
    return parts


def lokr_feed_forward_names(depth: int) -> list[Part]:
    """The LyCORIS LoKr spellings of the double blocks' feed-forward layers."""
    return [Part(f"double_blocks.{n}.{b}", f"transformer_blocks.{n}.{x}", None)
            for n in range(depth) for b, x in _LOKR_FF.items()]


# -- reading a diffusers-layout file ------------------------------------------------------------

def count_blocks(keys: Sequence[str] | Mapping[str, object], prefix: str) -> int:
    """Number of consecutive indices N with a key starting `prefix + N + '.'`."""
    found = {int(m.group(1)) for k in keys
             if k.startswith(prefix) and (m := re.match(r"(\d+)\.", k[len(prefix):]))}
    n = 0
    while n in found:
        n += 1
    return n


def is_diffusers_layout(shapes: Mapping[str, Sequence[int]], prefix: str) -> bool:
    return all(prefix + k in shapes for k in DIFFUSERS_TRIGGERS)


def diffusers_plan(shapes: Mapping[str, Sequence[int]], prefix: str
                   ) -> dict[str, list[str]]:
    """{BFL parameter name: the diffusers file keys whose rows it concatenates, in order}, for
    every BFL parameter whose parts are all in the file (weights and biases)."""
    hidden = int(shapes[prefix + "x_embedder.weight"][0])
    mlp = shapes.get(prefix + "single_transformer_blocks.0.proj_mlp.weight")
    table = diffusers_table(
        count_blocks(shapes, prefix + "transformer_blocks."),
        count_blocks(shapes, prefix + "single_transformer_blocks."),
        hidden, int(mlp[0]) if mlp else 4 * hidden,
        prefix + "time_text_embed.guidance_embedder.linear_1.weight" in shapes)
    plan: dict[str, list[str]] = {}
    for part in sorted(table, key=lambda p: (p.bfl, p.rows or (0, 0))):
        for param in ("weight", "bias"):
            plan.setdefault(f"{part.bfl}.{param}", []).append(
                f"{prefix}{part.diffusers}.{param}")
    return {k: v for k, v in plan.items() if all(s in shapes for s in v)}


def fused_shape(shapes: Mapping[str, Sequence[int]], sources: list[str]) -> tuple[int, ...]:
    """Shape of the concatenation (dimension 0) of `sources`."""
    first = tuple(int(d) for d in shapes[sources[0]])
    return (sum(int(shapes[s][0]) for s in sources), *first[1:])


def bfl_name(key: str) -> str:
    """A BFL file key under ComfyUI's parameter name (`_norm.scale` -> `_norm.weight`)."""
    return key[: -len(BFL_NORM_SCALE)] + NORM_WEIGHT if key.endswith(BFL_NORM_SCALE) else key
