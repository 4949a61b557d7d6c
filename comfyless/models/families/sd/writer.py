"""Random-weight SD1.5 / SD2.x / SDXL checkpoints in the original single-file key layout.

UNet keys `model.diffusion_model.*`, VAE keys `first_stage_model.*`, text-encoder keys
`cond_stage_model.*` / `conditioner.embedders.*`. "full" has the real shapes; "small" and
"tiny" keep every key name but reduce widths and depth (models/checkpoint_writer.py writes the
file and holds the generic helpers).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...checkpoint_writer import random_init
from ...unet import UNetModel
from .config import UNetConfig

UNET_PREFIX = "model.diffusion_model."

# Real context widths: CLIP-L 768; OpenCLIP ViT-H 1024; SDXL CLIP-L 768 + bigG 1280. SDXL's
# adm vector is bigG's pooled projection (1280) + 6 x 256 size features.
_REAL_CONTEXT = {"sd15": 768, "sd2": 1024, "sdxl": 2048}
_REAL_ADM = {"sd15": None, "sd2": None, "sdxl": 2816}
_LINEAR = {"sd15": False, "sd2": True, "sdxl": True}


def _levels(mc: int, mult: list[int], nres: list[int], td: list[int], tdo: list[int],
            middle: int) -> dict:
    return dict(model_channels=mc, channel_mult=mult, num_res_blocks=nres, transformer_depth=td,
                transformer_depth_output=tdo, transformer_depth_middle=middle)


_SD15_FULL = _levels(320, [1, 2, 4, 4], [2, 2, 2, 2], [1, 1, 1, 1, 1, 1, 0, 0],
                     [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], 1)
_SDXL_FULL = _levels(320, [1, 2, 4], [2, 2, 2], [0, 0, 2, 2, 10, 10],
                     [0, 0, 0, 2, 2, 2, 10, 10, 10], 10)
# (variant, size) -> UNet layout. Tiny: 2 levels, 1 res block each, attention where the real
# model has it at that depth; small: the issue-4 benchmark's 320-channel two-level UNet.
UNET_LAYOUTS: dict[tuple[str, str], dict] = {
    ("sd15", "tiny"): _levels(32, [1, 2], [1, 1], [1, 0], [1, 1, 0, 0], 1),
    ("sd2", "tiny"): _levels(64, [1, 2], [1, 1], [1, 0], [1, 1, 0, 0], 1),
    ("sdxl", "tiny"): _levels(64, [1, 2], [1, 1], [0, 2], [0, 0, 2, 2], 2),
    ("sd15", "small"): _levels(320, [1, 2], [2, 2], [1, 1, 1, 1], [1] * 6, 1),
    ("sd2", "small"): _levels(320, [1, 2], [2, 2], [1, 1, 1, 1], [1] * 6, 1),
    ("sdxl", "small"): _levels(320, [1, 2], [2, 2], [0, 0, 2, 2], [0, 0, 0, 2, 2, 2], 2),
    ("sd15", "full"): _SD15_FULL,
    ("sd2", "full"): _SD15_FULL,
    ("sdxl", "full"): _SDXL_FULL,
}


def unet_config(name: str, size: str, context_dim: int | None = None,
                adm_in_channels: int | None = None) -> UNetConfig:
    """The UNetConfig written for (variant, size); context/adm default to the real widths."""
    layout = dict(UNET_LAYOUTS[(name, size)])
    linear = _LINEAR[name]
    real_adm = _REAL_ADM[name]
    return UNetConfig(
        **layout,
        context_dim=context_dim or _REAL_CONTEXT[name],
        use_linear_in_transformer=linear,
        adm_in_channels=(adm_in_channels or real_adm) if real_adm else None,
        num_heads=-1 if linear else 8,
        num_head_channels=64 if linear else -1,
    )


def unet_state_dict(config: UNetConfig, generator: torch.Generator,
                    v_prediction: bool = False) -> dict[str, Tensor]:
    """Random UNet weights under `model.diffusion_model.`.

    v_prediction (SD2): the last output transformer's norm1 bias gets std 0.15, which is what
    ComfyUI's detection reads as a v-prediction model (std > 0.09).
    """
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in UNetModel(config).state_dict().items()}
    last_norm1 = _last_output_norm1_bias(shapes)

    def bias_std(key: str) -> float:
        return 0.15 if v_prediction and key == last_norm1 else 0.02

    sd = random_init(shapes, generator, bias_std)
    return {UNET_PREFIX + k: v for k, v in sd.items()}


def _last_output_norm1_bias(shapes: dict[str, torch.Size]) -> str | None:
    keys = [k for k in shapes if k.startswith("output_blocks.")
            and k.endswith(".1.transformer_blocks.0.norm1.bias")]
    return max(keys, key=lambda k: int(k.split(".")[1]), default=None)


def _text_and_vae(name: str, size: str, generator: torch.Generator) -> dict[str, Tensor]:
    """VAE + text-encoder keys from models/vae.py and models/clip.py."""
    from ... import clip, vae

    sd = dict(vae.vae_state_dict(size, generator))
    sd.update(clip.text_encoder_state_dict(name, size, generator))
    return sd


def _context_from_text(name: str, sd: dict[str, Tensor]) -> tuple[int | None, int | None]:
    """(context_dim, adm_in_channels) implied by the text encoders written beside the UNet."""
    def width(key: str) -> int | None:
        return sd[key].shape[-1] if key in sd else None

    token_emb = "transformer.text_model.embeddings.token_embedding.weight"
    if name == "sd15":
        return width(f"cond_stage_model.{token_emb}"), None
    if name == "sd2":
        return width("cond_stage_model.model.token_embedding.weight"), None
    l_width = width(f"conditioner.embedders.0.{token_emb}")
    g_width = width("conditioner.embedders.1.model.token_embedding.weight")
    proj = sd.get("conditioner.embedders.1.model.text_projection")
    if l_width is None or g_width is None or proj is None:
        return None, None
    return l_width + g_width, proj.shape[1] + 6 * 256


def checkpoint_state_dict(name: str, size: str, seed: int,
                          prediction: str | None) -> dict[str, Tensor]:
    """The full random checkpoint dict (UNet + VAE + text encoders), float32."""
    from .. import family

    name = family(name).name  # an alias such as "sd1.5"
    gen = torch.Generator().manual_seed(seed)
    sd = _text_and_vae(name, size, gen)
    context_dim, adm = _context_from_text(name, sd)
    config = unet_config(name, size, context_dim, adm)
    v_pred = (prediction or family(name).default_prediction) == "v"
    if v_pred and name == "sdxl":
        sd["v_pred"] = torch.tensor([])  # ComfyUI's marker key for v-prediction SDXL
    sd.update(unet_state_dict(config, gen, v_prediction=v_pred and name == "sd2"))
    return sd


# The file a ComfyUI user of each variant has (the names the published workflows use).
CHECKPOINT_NAMES = {"sd15": "v1-5-pruned-emaonly.safetensors",
                    "sd2": "v2-1_768-ema-pruned.safetensors",
                    "sdxl": "sd_xl_base_1.0.safetensors"}


def model_files(name: str, size: str, seed: int, prediction: str | None
                ) -> dict[str, dict[str, dict[str, Tensor]]]:
    """One all-in-one checkpoint under the name users have for it."""
    from .. import family

    name = family(name).name
    return {"checkpoints": {CHECKPOINT_NAMES[name]:
                            checkpoint_state_dict(name, size, seed, prediction)}}
