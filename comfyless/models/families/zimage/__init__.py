"""The Z-Image family (`zimage`): Z-Image Turbo and Base, the 6 B-parameter NextDiT
single-stream transformer on 16-channel (Flux) latents, text encoder Qwen3-4B (CLIPLoader type
`lumina2`).

Facts: model-families.md §3 (detection, network, sampling, LoRA keys), §5-§6 (latent format,
sampling). Turbo and Base have identical shapes and one record. Declared here: detection rule,
network, latent format, sampling, checkpoint prefixes, conditioning extra. The text encoder and
the make-checkpoint files are not wired yet. The network brings its own LoRA key map
(`ZImageNetwork.lora_key_map`). Torch-free: torch parts are "module:attr" references.
"""

from __future__ import annotations

from ...latent_formats import FLUX
from ..base import Family, prediction_const
from . import detect

_HERE = __name__

ZIMAGE = Family(
    name="zimage",
    folder="zimage",
    description="Z-Image Turbo / Base (NextDiT, 16-channel Flux latents, discrete flow shift 3)",
    trigger_key=detect.TRIGGER_KEY,
    detect_config=detect.detect_zimage_config,
    matches=detect.matches_zimage,
    prediction=prediction_const,
    describe_config=detect.describe,
    network=f"{_HERE}.network:ZImageNetwork",
    latent_format=FLUX,
    sampling=f"{_HERE}.conditioning:zimage_sampling",  # discrete flow, shift 3, multiplier 1
    default_prediction="const",
    default_size=(1024, 1024),
    unet_prefix="model.diffusion_model.",
    vae_prefix="vae.",
    text_prefixes=("text_encoders.",),  # text_encoders.qwen3_4b.transformer.model.…
    text_encoders=(),  # Qwen3-4B: not wired yet
    text_encoder_prefixes={},
    clip_type="lumina2",
    extra_conds=f"{_HERE}.conditioning:zimage_conds",
    lora_unet_key_map=None,  # ZImageNetwork.lora_key_map
    random_checkpoint=f"{_HERE}.writer:checkpoint_state_dict",
    random_files=f"{_HERE}.writer:model_files",
    test_unet_config=f"{_HERE}.writer:network_config",
    aliases=("z-image", "z-image-turbo", "zimage-turbo"),
)

FAMILIES = (ZIMAGE,)
