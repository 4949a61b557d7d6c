"""The SD3 family (MMDiT): SD3 Medium, SD3.5 Large / Large Turbo, SD3.5 Medium (`sd3`).

One record covers every variant: they share ComfyUI's `SD3` class (detection, sampling with
shift 3, the SD3 latent format, `text_encoders.` prefixes); the network config carries the
differences (depth, ln_q/ln_k, dual attention, position-table size). Facts from
model-families.md §2 and model-detection.md §4. Torch-free: torch-using parts are
"module:attr" references (see ..base.resolve). Text encoders (CLIP-L, CLIP-G, T5-XXL) are
not declared yet: `text_encoders=()`.
"""

from __future__ import annotations

from ...latent_formats import SD3
from ..base import Family, prediction_const
from . import detect

_HERE = __name__

SD3_FAMILY = Family(
    name="sd3",
    folder="sd3",
    description="Stable Diffusion 3 / 3.5 (MMDiT, 16-channel latents, rectified flow)",
    trigger_key=detect.TRIGGER_KEY,
    detect_config=detect.detect_mmdit_config,
    matches=detect.matches_sd3,
    prediction=prediction_const,
    describe_config=detect.describe,
    network=f"{_HERE}.network:MMDiT",
    latent_format=SD3,
    sampling=f"{_HERE}.conditioning:sd3_sampling",  # discrete flow, shift 3, multiplier 1000
    default_prediction="const",
    default_size=(1024, 1024),
    unet_prefix="model.diffusion_model.",
    vae_prefix="first_stage_model.",  # SD3 keeps ComfyUI's default VAE prefix
    text_prefixes=("text_encoders.",),  # clip_l / clip_g / t5xxl, each optional
    text_encoders=(),
    text_encoder_prefixes={},
    clip_type="sd3",
    extra_conds=f"{_HERE}.conditioning:sd3_conds",
    random_checkpoint=f"{_HERE}.writer:checkpoint_state_dict",
    random_files=f"{_HERE}.writer:model_files",
    test_unet_config=f"{_HERE}.writer:network_config",
    aliases=("sd35", "sd3.5", "sd35-large", "sd35-medium", "sd3-medium"),
    modelspec_architecture="stable-diffusion-v3-medium",  # ComfyUI: "TODO: other SD3 variants"
)

FAMILIES = (SD3_FAMILY,)
