"""The SD family (LDM/SGM UNets): SD1.x (`sd15`), SD2.x (`sd2`), SDXL (`sdxl`).

Everything the rest of comfyless needs to know about these models is declared here (facts from
model-detection.md §2, §5, §6): detection rule, network, latent format, sampling, text
encoders and their checkpoint prefixes, conditioning extras, default sizes, LoRA key maps and
the random-weight test checkpoint writer. Torch-free: torch-using parts are "module:attr"
references (see ..base.resolve).
"""

from __future__ import annotations

from ....lora.keys import clip_key_map, unet_key_map
from ...latent_formats import SD15, SDXL
from ...tokenizer import END_TOKEN
from ..base import EncoderSpec, Family
from . import detect, text

_HERE = __name__
_COMMON = dict(
    folder="sd",
    trigger_key=detect.TRIGGER_KEY,
    detect_config=detect.detect_unet_config,
    describe_config=detect.describe,
    network="comfyless.models.unet:UNetModel",
    sampling="comfyless.models.sampling:ModelSampling",  # discrete 1000-step schedule
    unet_prefix="model.diffusion_model.",
    vae_prefix="first_stage_model.",
    text_prefixes=("cond_stage_model.", "conditioner.embedders."),
    lora_unet_key_map=unet_key_map,
    lora_clip_key_map=clip_key_map,
    random_checkpoint=f"{_HERE}.writer:checkpoint_state_dict",
    test_unet_config=f"{_HERE}.writer:unet_config",
    random_files=f"{_HERE}.writer:model_files",
    # 9-channel (inpaint) / 8-channel (InstructPix2Pix) UNets take latents beside x
    concat_cond=f"{_HERE}.conditioning:sd_concat_cond",
)
# SD2 / SDXL-refiner SGM variant of the OpenCLIP text tower
_SGM_OPENCLIP = "conditioner.embedders.0.model."

SD15_FAMILY = Family(
    name="sd15",
    description="Stable Diffusion 1.x (CLIP-L, 4-channel latents, eps)",
    matches=detect.matches_sd15,
    prediction=detect.prediction_eps,
    latent_format=SD15,
    default_prediction="eps",
    default_size=(512, 512),
    # clip_l, last layer, pad with the end token
    text_encoders=(EncoderSpec("l", END_TOKEN, None, True, "quick_gelu"),),
    text_encoder_prefixes={"l": "cond_stage_model.transformer."},
    clip_type="stable_diffusion",
    assign_text_encoders=text.assign_sd15,
    aliases=("sd1", "sd1.5"),
    **_COMMON,
)

SD2_FAMILY = Family(
    name="sd2",
    description="Stable Diffusion 2.x (OpenCLIP ViT-H; v-prediction detected as ComfyUI does)",
    matches=detect.matches_sd2,
    prediction=detect.prediction_sd2,
    latent_format=SD15,
    default_prediction="v",  # SD2.1-768; detection decides for a loaded file
    default_size=(768, 768),
    # clip_h, penultimate layer + final LayerNorm, pad 0
    text_encoders=(EncoderSpec("h", 0, -2, True, "gelu"),),
    text_encoder_prefixes={"h": "cond_stage_model.model."},
    text_encoder_fallbacks={"h": _SGM_OPENCLIP},
    clip_type="stable_diffusion",
    assign_text_encoders=text.assign_sd2,
    aliases=("sd20", "sd21"),
    **_COMMON,
)

SDXL_FAMILY = Family(
    name="sdxl",
    description="Stable Diffusion XL (CLIP-L + OpenCLIP bigG, size conditioning)",
    matches=detect.matches_sdxl,
    prediction=detect.prediction_sdxl,
    latent_format=SDXL,
    default_prediction="eps",
    default_size=(1024, 1024),
    # clip_l and clip_g, penultimate layer without final LayerNorm, concatenated on the feature
    # axis; pooled = clip_g's projected pooled output. clip_l pads with end, clip_g 0.
    text_encoders=(EncoderSpec("l", END_TOKEN, -2, False, "quick_gelu"),
                   EncoderSpec("g", 0, -2, False, "gelu")),
    text_encoder_prefixes={"l": "conditioner.embedders.0.transformer.",
                           "g": "conditioner.embedders.1.model."},
    text_encoder_fallbacks={"g": _SGM_OPENCLIP},
    clip_type="sdxl",
    assign_text_encoders=text.assign_sdxl,
    extra_conds=f"{_HERE}.conditioning:sdxl_conds",
    aliases=("sdxl_base",),
    modelspec_architecture="stable-diffusion-xl-v1-base",
    **_COMMON,
)

FAMILIES = (SD15_FAMILY, SD2_FAMILY, SDXL_FAMILY)
