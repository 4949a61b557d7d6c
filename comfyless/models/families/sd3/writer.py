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


# --- whole files (make-checkpoint, tests) -----------------------------------------------------
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
# arch name or alias -> variant of this writer
_VARIANT_OF = {"sd3": "sd3", "sd3-medium": "sd3", "sd35": "sd35-large", "sd3.5": "sd35-large",
               "sd35-large": "sd35-large", "sd35-medium": "sd35-medium"}
# The all-in-one files users have (text encoders inside; the sd3.5 template loads the first).
CHECKPOINT_NAMES = {"sd35-large": "sd3.5_large_fp8_scaled.safetensors",
                    "sd35-medium": "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors",
                    "sd3": "sd3_medium_incl_clips_t5xxlfp8.safetensors"}


def _variant(arch: str, size: str) -> str:
    if size == "full":
        raise ValueError("a full-size SD3 checkpoint is 2-8 B parameters of random weights: "
                         "write --size tiny or small (network_config(..., 'full') gives the "
                         "real shapes on the meta device)")
    return _VARIANT_OF.get(arch, "sd35-large")


def _pooled_width(text: dict[str, Tensor]) -> int:
    """CLIP-L's width + CLIP-G's projection width (the pooled vector the MMDiT's y sees)."""
    l_norm = "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"
    g_proj = "text_encoders.clip_g.transformer.text_projection.weight"
    return text[l_norm].shape[0] + text[g_proj].shape[0]


def checkpoint_state_dict(arch: str, size: str = "tiny", seed: int = 0,
                          prediction: str | None = None) -> dict[str, Tensor]:
    """An all-in-one SD3 checkpoint: MMDiT, 16-channel VAE, CLIP-L + CLIP-G + T5 (tiny
    encoders; the context stays 4096 wide as SD3's text set pads it)."""
    from ... import text_sets, vae

    variant = _variant(arch, size)
    gen = torch.Generator().manual_seed(seed)
    text = text_sets.checkpoint_text_state_dict("sd3", "tiny", gen)
    sd = dict(text)
    sd.update(vae.vae_state_dict("tiny", gen, kind="kl16", prefix=VAE_PREFIX))
    net = diffusion_model_state_dict(variant, size, seed, context_in=4096,
                                     adm_in=_pooled_width(text))
    sd.update({UNET_PREFIX + k: v for k, v in net.items()})
    return sd


def model_files(arch: str, size: str, seed: int, prediction: str | None
                ) -> dict[str, dict[str, dict[str, Tensor]]]:
    """The all-in-one checkpoint, and the three text encoders as standalone files
    (TripleCLIPLoader)."""
    from ... import text_sets

    variant = _variant(arch, size)
    files = text_sets.text_encoder_files("sd3", "tiny", torch.Generator().manual_seed(seed))
    return {"checkpoints": {CHECKPOINT_NAMES[variant]:
                            checkpoint_state_dict(arch, size, seed, prediction)},
            "text_encoders": files}
