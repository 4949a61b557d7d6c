"""SD3 / SD3.5 detection (model-detection.md §4, model-families.md §2.1): the MMDiT config from
key names and shapes (a safetensors header is enough), and the diffusers-layout converter.

Head width: real files have 64-wide heads (hidden = 64·depth, heads = depth). Reduced test
files keep the key layout with other widths, so the head width is read off
`attn.ln_q.weight` (one RMSNorm over a head, SD3.5) when present; without it (SD3 Medium
layout) it stays 64 and the hidden width must be a multiple of 64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..base import DetectionError, Shapes
from . import names
from .config import MMDiTConfig

TRIGGER_KEY = "joint_blocks.0.context_block.attn.qkv.weight"
# a diffusers SD3 transformer (SD3Transformer2DModel state dict)
DIFFUSERS_KEYS = ("transformer_blocks.0.attn.add_q_proj.weight", "pos_embed.proj.weight")
DEFAULT_HEAD_DIM = 64
# layouts ComfyUI's MMDiT can build but no SD3/SD3.5 release uses: refused by name
_UNSUPPORTED_PREFIXES = {"context_processor.": "a context processor",
                         "register": "register tokens"}


def _count_blocks(shapes: Shapes, prefix: str) -> int:
    """Number of consecutive `joint_blocks.N` (0, 1, ...) under `prefix`."""
    found = {int(m.group(1)) for k in shapes
             if (m := re.match(re.escape(prefix) + r"joint_blocks\.(\d+)\.", k))}
    n = 0
    while n in found:
        n += 1
    if found and n != len(found):
        raise DetectionError(f"MMDiT joint_blocks are not numbered 0..N-1 (found {sorted(found)})")
    return n


def _shape(shapes: Shapes, key: str, what: str, ndim: int) -> tuple[int, ...]:
    """The shape of a required key, or a DetectionError naming it."""
    shape = shapes.get(key)
    if shape is None:
        raise DetectionError(f"MMDiT layout (has '{TRIGGER_KEY}') without {what} '{key}'")
    if len(shape) != ndim:
        raise DetectionError(f"MMDiT key '{key}' has shape {list(shape)}, expected {ndim} dims")
    return tuple(int(s) for s in shape)


def _head_dim(shapes: Shapes, prefix: str, hidden: int) -> tuple[int, str | None]:
    """(head width, qk_norm) from the first block's ln_q (see the module docstring)."""
    for block in ("context_block", "x_block"):
        ln_q = shapes.get(f"{prefix}joint_blocks.0.{block}.attn.ln_q.weight")
        if ln_q is not None:
            head_dim = int(ln_q[0])
            if head_dim <= 0 or hidden % head_dim:
                raise DetectionError(f"MMDiT ln_q width {head_dim} does not divide the hidden "
                                     f"width {hidden}")
            return head_dim, "rms"
    if hidden % DEFAULT_HEAD_DIM:
        raise DetectionError(f"MMDiT hidden width {hidden} is not a multiple of the 64-wide "
                             "heads (and no ln_q gives another head width)")
    return DEFAULT_HEAD_DIM, None


def _pos_embed_side(shapes: Shapes, prefix: str, hidden: int) -> int:
    """Side of the square position table `pos_embed [1, side², H]`."""
    _, n, width = _shape(shapes, f"{prefix}pos_embed", "the position table", 3)
    side = math.isqrt(n)
    if side * side != n or width != hidden:
        raise DetectionError(f"MMDiT pos_embed is [1, {n}, {width}]: expected [1, side², "
                             f"{hidden}] with a square number of positions")
    return side


def _refuse_unsupported(shapes: Shapes, prefix: str) -> None:
    for start, what in _UNSUPPORTED_PREFIXES.items():
        if any(k.startswith(prefix + start) for k in shapes):
            raise DetectionError(f"MMDiT with {what} ('{prefix}{start}*') is not supported "
                                 "(no SD3/SD3.5 release has one)")


def detect_mmdit_config(shapes: Shapes, prefix: str = "model.diffusion_model."
                        ) -> MMDiTConfig | None:
    """The MMDiT config under `prefix`; None without `<prefix>joint_blocks.0.context_block.
    attn.qkv.weight`; DetectionError for an MMDiT layout this network cannot build."""
    if f"{prefix}{TRIGGER_KEY}" not in shapes:
        if not is_diffusers_transformer(shapes, prefix):
            return None
        shapes, prefix = diffusers_shapes(shapes, prefix), ""
    _refuse_unsupported(shapes, prefix)
    hidden, in_ch, ph, pw = _shape(shapes, f"{prefix}x_embedder.proj.weight", "the patch embedder",
                                   4)
    if ph != pw:
        raise DetectionError(f"MMDiT patch embedder kernel {ph}x{pw} is not square")
    head_dim, qk_norm = _head_dim(shapes, prefix, hidden)
    final_out, _ = _shape(shapes, f"{prefix}final_layer.linear.weight", "the final layer", 2)
    ctx_out, ctx_in = _shape(shapes, f"{prefix}context_embedder.weight", "the context embedder",
                             2)
    fc1_out, _ = _shape(shapes, f"{prefix}joint_blocks.0.x_block.mlp.fc1.weight", "the MLP", 2)
    if final_out % (ph * ph) or ctx_out != hidden:
        raise DetectionError(f"MMDiT widths do not fit: final_layer.linear {final_out} rows for "
                             f"patch {ph}, context_embedder {ctx_out} rows for hidden {hidden}")
    adm = shapes.get(f"{prefix}y_embedder.mlp.0.weight")
    depth = _count_blocks(shapes, prefix)
    dual = tuple(n for n in range(depth)
                 if f"{prefix}joint_blocks.{n}.x_block.attn2.qkv.weight" in shapes)
    return MMDiTConfig(
        hidden_size=hidden, depth=depth, head_dim=head_dim, in_channels=in_ch,
        out_channels=final_out // (ph * ph), patch_size=ph,
        adm_in_channels=int(adm[1]) if adm is not None else None, context_in=ctx_in,
        mlp_ratio=fc1_out / hidden, qk_norm=qk_norm, dual_attention_layers=dual,
        pos_embed_max_size=_pos_embed_side(shapes, prefix, hidden),
    )


def matches_sd3(cfg: MMDiTConfig) -> bool:
    """SD3 / SD3.5: a 16-channel latent in and out (ComfyUI's `SD3` class)."""
    return cfg.in_channels == 16 and cfg.out_channels == 16


def describe(cfg: MMDiTConfig) -> str:
    return (f"MMDiT with in_channels={cfg.in_channels}, hidden={cfg.hidden_size}, "
            f"depth={cfg.depth}, heads={cfg.num_heads}x{cfg.head_dim}, qk_norm={cfg.qk_norm}, "
            f"dual_attention_layers={list(cfg.dual_attention_layers)}, "
            f"pos_embed_max_size={cfg.pos_embed_max_size}")


# -- diffusers layout ----------------------------------------------------------------------------

def is_diffusers_transformer(shapes: Shapes, prefix: str = "") -> bool:
    """Whether `shapes` holds a diffusers SD3 transformer under `prefix` (convert it first)."""
    return all(f"{prefix}{k}" in shapes for k in DIFFUSERS_KEYS)


def diffusers_shapes(shapes: Shapes, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """The SAI-layout {key: shape} of a diffusers transformer (converted on the meta device)."""
    import torch

    meta = {k[len(prefix):]: torch.empty(tuple(s), device="meta")
            for k, s in shapes.items() if k.startswith(prefix)}
    return {k: tuple(v.shape) for k, v in convert_diffusers_transformer(meta).items()}


def _diffusers_depth(keys: list[str]) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(r"transformer_blocks\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def convert_diffusers_transformer(sd: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers SD3Transformer2DModel state dict (no prefix) -> the SAI/ComfyUI layout.

    q/k/v Linears are fused into `qkv` (rows [q|k|v]); `norm_out.linear` and the last block's
    `norm1_context.linear` get their two row halves swapped ((scale, shift) -> (shift, scale)).
    Keys the table does not know raise DetectionError naming them.
    """
    import torch

    depth = _diffusers_depth(list(sd))
    table = names.sai_modules_of_diffusers(depth)
    swapped = set(names.swapped_diffusers_modules(depth))
    pieces: dict[str, list[Any]] = {}  # SAI key -> its pieces in q, k, v order
    out: dict[str, Any] = {}
    unknown = []
    for key, tensor in sd.items():
        if key == names.POS_EMBED[1]:
            out[names.POS_EMBED[0]] = tensor
            continue
        module, _, param = key.rpartition(".")
        if module not in table or param not in ("weight", "bias"):
            unknown.append(key)
            continue
        sai, index, count = table[module]
        if module in swapped:
            tensor = _swap_halves(tensor)
        slots = pieces.setdefault(f"{sai}.{param}", [None] * count)
        slots[index] = tensor
    if unknown:
        raise DetectionError(f"diffusers SD3 transformer: {len(unknown)} key(s) have no SAI "
                             f"name (e.g. {sorted(unknown)[:4]})")
    for key, slots in pieces.items():
        if any(s is None for s in slots):
            raise DetectionError(f"diffusers SD3 transformer: '{key}' is fused from q, k and v "
                                 "but the file lacks some of them")
        out[key] = slots[0] if len(slots) == 1 else torch.cat(slots, dim=0)
    return out


def _swap_halves(t: Any) -> Any:
    """Rows [a | b] -> [b | a] (the modulation halves (scale, shift) <-> (shift, scale))."""
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)
