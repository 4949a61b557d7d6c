"""The Qwen-Image family (`qwen-image`; Qwen-Image-2512 shares the layout): a 20 B-parameter
MMDiT with diffusers parameter names on 16-channel Wan 2.1 latents, rectified flow.

Facts: model-families.md §4 (detection, network, sampling, LoRA keys), §5-§6 (latent format,
sampling). Declared here: detection rule, network, latent format, sampling, checkpoint
prefixes, conditioning extras. The text encoder (Qwen2.5-VL-7B) and the make-checkpoint
writers are not wired yet. The network brings its own LoRA key map
(`QwenImageNetwork.lora_key_map`). Torch-free: torch parts are "module:attr" references.
"""

from __future__ import annotations

from ...latent_formats import WAN21
from ..base import Family, prediction_const
from . import detect

_HERE = __name__

QWEN_IMAGE = Family(
    name="qwen-image",
    folder="qwen_image",
    description="Qwen-Image / Qwen-Image-2512 (MMDiT, Wan 2.1 latents, ModelSamplingFlux 1.15)",
    trigger_key=detect.TRIGGER_KEY,
    detect_config=detect.detect_qwen_image_config,
    matches=detect.matches,
    prediction=prediction_const,
    describe_config=detect.describe,
    network=f"{_HERE}.network:QwenImageNetwork",
    latent_format=WAN21,
    sampling=f"{_HERE}.conditioning:qwen_image_sampling",
    default_prediction="const",
    default_size=(1328, 1328),
    unet_prefix="model.diffusion_model.",
    vae_prefix="vae.",
    text_prefixes=("text_encoders.",),
    text_encoders=(),  # Qwen2.5-VL-7B: not wired yet
    text_encoder_prefixes={},
    clip_type="qwen_image",
    extra_conds=f"{_HERE}.conditioning:qwen_image_conds",
    lora_unet_key_map=None,  # QwenImageNetwork.lora_key_map
    random_checkpoint=f"{_HERE}.writer:checkpoint_state_dict",
    random_files=f"{_HERE}.writer:model_files",
    test_unet_config=f"{_HERE}.writer:network_config",
    aliases=("qwen-image-2512", "qwenimage"),
)

FAMILIES = (QWEN_IMAGE,)
