"""Qwen-Image detection (model-families.md §4.1): the network config from a {key: shape} map and
clear refusals of the look-alikes and variants comfyless cannot run.

ComfyUI's names are diffusers' names, so one rule covers ComfyUI and diffusers files. Only the
rule's keys are read; every width (hidden, head dim, text width, MLP) comes from shapes, so the
tiny test layouts are detected like the real one. Header only: no tensor is read.
"""

from __future__ import annotations

from ...quant import plain_keys
from ..base import DetectionError, Shapes
from ..flux.config import axes_for_head_dim
from ..flux.names import count_blocks
from .config import (
    DEFAULT_REF_METHOD,
    LATENT_CHANNELS,
    PATCH_SIZE,
    REAL_AXES_DIM,
    TIMESTEP_ZERO_MARKER,
    TIMESTEP_ZERO_METHOD,
    QwenImageConfig,
)

TRIGGER_KEY = "txt_norm.weight"
_IMG_IN = "img_in.weight"
_NORM_Q = "transformer_blocks.0.attn.norm_q.weight"
_MLP_IN = "transformer_blocks.0.img_mlp.net.0.proj.weight"
_REQUIRED = (_IMG_IN, "txt_in.weight", "proj_out.weight", _NORM_Q, _MLP_IN)
# Mage-Flow shares the trigger; its text norm is 2560 wide and proj_out has 128 rows
_MAGE_FLOW = (2560, 128)
# keys of Qwen-Image variants that need extra conditioning paths (not supported); the
# Qwen-Image-Edit-2511 marker (TIMESTEP_ZERO_MARKER) only sets the default reference method
_VARIANTS = {
    "time_text_embed.addition_t_embedding.weight": "Qwen-Image-Layered",
}


def detect_qwen_image_config(shapes: Shapes, prefix: str = "model.diffusion_model."
                             ) -> QwenImageConfig | None:
    """The QwenImageConfig under `prefix`; None without `txt_norm.weight` + `img_in.weight`.
    A Qwen-Image-Edit-2511 file (marker key) gets default_ref_method "index_timestep_zero".
    Raises DetectionError for Mage-Flow, the layered variant and incomplete files.
    Scaled-fp8 scale keys are ignored (the loader dequantises them)."""
    found = {k[len(prefix):]: tuple(int(d) for d in v)
             for k, v in plain_keys(shapes).items() if k.startswith(prefix)}
    if TRIGGER_KEY not in found or _IMG_IN not in found:
        return None
    _refuse_unsupported(found, prefix)
    hidden, in_features = found[_IMG_IN]
    head_dim = found[_NORM_Q][0]
    axes = REAL_AXES_DIM if head_dim == 128 else axes_for_head_dim(head_dim)
    if axes is None or hidden % head_dim:
        raise DetectionError(f"Qwen-Image layout with hidden size {hidden} and head dim "
                             f"{head_dim} (from {prefix}{_NORM_Q}): no rotary axes split fits")
    return QwenImageConfig(
        hidden_size=hidden,
        num_heads=hidden // head_dim,
        num_layers=count_blocks(found, "transformer_blocks."),
        in_channels=in_features,
        out_channels=found["proj_out.weight"][0] // (PATCH_SIZE * PATCH_SIZE),
        joint_attention_dim=found[TRIGGER_KEY][0],
        mlp_hidden=found[_MLP_IN][0],
        axes_dim=axes,
        default_ref_method=(TIMESTEP_ZERO_METHOD if TIMESTEP_ZERO_MARKER in found
                            else DEFAULT_REF_METHOD),
    )


def _refuse_unsupported(found: dict[str, tuple[int, ...]], prefix: str) -> None:
    """Files that share the trigger but that we cannot run: say which, never a shape error."""
    text_width = found[TRIGGER_KEY][0]
    out_rows = found.get("proj_out.weight", (0,))[0]
    if (text_width, out_rows) == _MAGE_FLOW:
        raise DetectionError(
            f"this is a Mage-Flow model ({prefix}txt_norm.weight is {text_width} wide and "
            f"{prefix}proj_out.weight has {out_rows} rows), which comfyless does not support")
    for key, variant in _VARIANTS.items():
        if key in found:
            raise DetectionError(
                f"Qwen-Image layered variant needs its extra timestep conditioning: not supported "
                f"(found {prefix}{key}: {variant})")
    missing = [k for k in _REQUIRED if k not in found]
    if missing:
        raise DetectionError(f"Qwen-Image layout is incomplete: no {', '.join(missing)} under "
                             f"{prefix!r}")
    latent = LATENT_CHANNELS * PATCH_SIZE * PATCH_SIZE
    in_features, rows = found[_IMG_IN][1], found["proj_out.weight"][0]
    if (in_features, rows) != (latent, latent):
        raise DetectionError(
            f"Qwen-Image layout with img_in.weight {list(found[_IMG_IN])} and proj_out.weight "
            f"{list(found['proj_out.weight'])}: only {LATENT_CHANNELS}-channel latents in 2x2 "
            f"patches ({latent} features in and out) are supported")


def matches(cfg: QwenImageConfig) -> bool:
    """Qwen-Image and 2512 share one layout (and ComfyUI class)."""
    return True


def describe(cfg: QwenImageConfig) -> str:
    edit = (", Qwen-Image-Edit-2511 (reference method index_timestep_zero)"
            if cfg.default_ref_method == TIMESTEP_ZERO_METHOD else "")
    return (f"Qwen-Image MMDiT with hidden_size={cfg.hidden_size}, heads={cfg.num_heads}, "
            f"layers={cfg.num_layers}, joint_attention_dim={cfg.joint_attention_dim}{edit}")
