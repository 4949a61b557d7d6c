"""The FLUX.1 family: dev (`flux`; Krea and Kontext share its layout) and schnell
(`flux-schnell`), 12 B-parameter rectified-flow DiTs on 16-channel latents.

Facts: model-families.md §1 (network, conditioning, LoRA keys), §5-§6 (latent format,
sampling), model-detection.md §3 (detection). Declared here: detection rule, network, latent
format, sampling, checkpoint prefixes, conditioning extras. Text encoders (CLIP-L + T5-XXL) and
the make-checkpoint writer are not wired yet. The network brings its own LoRA key map
(`FluxNetwork.lora_key_map`). Torch-free: torch parts are "module:attr" references.
"""

from __future__ import annotations

from ...latent_formats import FLUX
from ..base import Family, prediction_const
from . import detect

_HERE = __name__
_COMMON = dict(
    folder="flux",
    trigger_key=detect.TRIGGER_KEY,
    detect_config=detect.detect_flux_config,
    describe_config=detect.describe,
    prediction=prediction_const,
    network=f"{_HERE}.network:FluxNetwork",
    latent_format=FLUX,
    default_prediction="const",
    default_size=(1024, 1024),
    unet_prefix="model.diffusion_model.",
    vae_prefix="vae.",
    text_prefixes=("text_encoders.",),
    text_encoders=(),  # CLIP-L + T5-XXL: not wired yet
    text_encoder_prefixes={},
    clip_type="flux",
    extra_conds=f"{_HERE}.conditioning:flux_conds",
    lora_unet_key_map=None,  # FluxNetwork.lora_key_map
    random_checkpoint=f"{_HERE}.writer:checkpoint_state_dict",
    random_files=f"{_HERE}.writer:model_files",
    test_unet_config=f"{_HERE}.writer:network_config",
)

FLUX_DEV = Family(
    name="flux",
    description="FLUX.1 dev / Krea / Kontext (guidance-distilled, ModelSamplingFlux 1.15)",
    matches=detect.matches_dev,
    sampling=f"{_HERE}.sampling:flux_dev_sampling",
    aliases=("flux-dev", "flux1", "flux1-dev", "flux-krea", "flux-kontext"),
    **_COMMON,
)

FLUX_SCHNELL = Family(
    name="flux-schnell",
    description="FLUX.1 schnell (timestep-distilled, discrete flow shift 1)",
    matches=detect.matches_schnell,
    sampling=f"{_HERE}.sampling:flux_schnell_sampling",
    aliases=("flux1-schnell", "schnell"),
    **_COMMON,
)

FAMILIES = (FLUX_DEV, FLUX_SCHNELL)
