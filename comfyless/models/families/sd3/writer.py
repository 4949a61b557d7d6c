"""Random-weight SD3 / SD3.5 diffusion models in the real (SAI/ComfyUI) key layout.

Variants: "sd3" (SD3 Medium layout), "sd35-large" (SD3.5 Large / Large Turbo layout: ln_q/ln_k),
"sd35-medium" (SD3.5 Medium: ln_q/ln_k and dual attention in the first blocks). "full" has the
real shapes (model-families.md §2.1; 2-8 B parameters: build it on the meta device);
"small" and "tiny" keep every key name with fewer, narrower blocks and a smaller position table.

Weights come from `checkpoint_writer.random_init` (activations stay O(1)); `pos_embed` is a real
2-D sin-cos table like the one SD3 files store (first half of the features encodes the column,
second half the row, each as [sin | cos]), not random numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...checkpoint_writer import random_init
from .config import MMDiTConfig
from .network import MMDiT

VARIANTS = ("sd3", "sd35-large", "sd35-medium")
_FULL = {
    "sd3": dict(hidden_size=1536, depth=24, pos_embed_max_size=192),
    "sd35-large": dict(hidden_size=2432, depth=38, qk_norm="rms", pos_embed_max_size=192),
    "sd35-medium": dict(hidden_size=1536, depth=24, qk_norm="rms", pos_embed_max_size=384,
                        dual_attention_layers=tuple(range(13))),
}
# (variant, size) -> layout. Tiny: 2-3 blocks, 64-128 wide (3.5 tiny layouts use narrower heads,
# which detection reads off ln_q); small: a few 64-wide heads for benchmarks.
LAYOUTS: dict[tuple[str, str], dict] = {
    ("sd3", "tiny"): dict(hidden_size=128, depth=2, pos_embed_max_size=16),
    ("sd35-large", "tiny"): dict(hidden_size=64, depth=3, head_dim=32, qk_norm="rms",
                                 pos_embed_max_size=16),
    ("sd35-medium", "tiny"): dict(hidden_size=64, depth=3, head_dim=16, qk_norm="rms",
                                  pos_embed_max_size=16, dual_attention_layers=(0,)),
    ("sd3", "small"): dict(hidden_size=384, depth=6, pos_embed_max_size=64),
    ("sd35-large", "small"): dict(hidden_size=512, depth=8, qk_norm="rms",
                                  pos_embed_max_size=64),
    ("sd35-medium", "small"): dict(hidden_size=384, depth=6, qk_norm="rms",
                                   pos_embed_max_size=64, dual_attention_layers=(0, 1, 2)),
    **{(name, "full"): layout for name, layout in _FULL.items()},
}
# diffusers' SD3 configs place the 1024-px (64-patch) training grid at these table positions
_BASE_GRID = 64


def network_config(name: str, size: str = "tiny", context_in: int | None = 4096,
                   adm_in: int | None = 2048) -> MMDiTConfig:
    """The MMDiTConfig written for (variant, size); context/pooled widths default to the real
    4096 (T5-XXL) and 2048 (CLIP-L + CLIP-G pooled)."""
    if (name, size) not in LAYOUTS:
        raise ValueError(f"SD3 test model {name!r}/{size!r}: expected a variant of {VARIANTS} "
                         "and a size of tiny, small, full")
    return MMDiTConfig(**LAYOUTS[(name, size)], context_in=context_in or 4096,
                       adm_in_channels=adm_in or 2048)


def sincos_pos_embed(hidden: int, side: int, base_grid: int = _BASE_GRID) -> Tensor:
    """A (1, side², hidden) 2-D sin-cos table; positions are scaled so that the whole table
    spans `base_grid` units (as diffusers computes SD3's)."""
    if hidden % 4:
        raise ValueError(f"a 2-D sin-cos table needs a width divisible by 4, not {hidden}")
    quarter = hidden // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(side, dtype=torch.float64) * (base_grid / side)

    def encode(p: Tensor) -> Tensor:  # (N,) -> (N, hidden/2) as [sin | cos]
        angles = p[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows, cols = torch.meshgrid(pos, pos, indexing="ij")
    table = torch.cat([encode(cols.flatten()), encode(rows.flatten())], dim=1)
    return table.float().unsqueeze(0)


def diffusion_model_state_dict(name: str, size: str = "tiny", seed: int = 0,
                               context_in: int = 4096, adm_in: int = 2048) -> dict[str, Tensor]:
    """Random float32 weights of one variant, prefix-free (a diffusion-model file's keys)."""
    if size == "full":  # 2-8 B parameters: 8-32 GB of float32
        raise ValueError(f"{name}/full has the real SD3 sizes; build it on the meta device "
                         "(MMDiT(network_config(name, 'full'))) instead of writing weights")
    config = network_config(name, size, context_in, adm_in)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in MMDiT(config).state_dict().items()}
    del shapes["pos_embed"]
    sd = random_init(shapes, torch.Generator().manual_seed(seed))
    sd["pos_embed"] = sincos_pos_embed(config.hidden_size, config.pos_embed_max_size)
    return sd
