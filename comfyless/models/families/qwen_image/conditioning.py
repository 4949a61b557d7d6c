"""Qwen-Image sampling object and conditioning extras (model-families.md §4.2, §4.4, §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...sampling import FlowSampling, model_sampling_flux, require_const
from ..flux.conditioning import padded_text_mask, reference_latent_inputs

SHIFT = 1.15  # ModelSamplingFlux μ without a ModelSampling* node (the network sees σ)


def qwen_image_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """ModelSamplingFlux with μ = 1.15 at every image size, CONST (velocity) prediction."""
    require_const("Qwen-Image", prediction, zsnr)
    return model_sampling_flux(SHIFT)


def qwen_image_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
                     ) -> dict[str, Any]:
    """{"attention_mask"} when the conditioning's text mask has padding (a zero), and
    {"ref_latents", "ref_latents_method"} when it carries reference latents (edit models;
    in model space like x); {} otherwise. width/height do not enter Qwen-Image's inputs."""
    return {**padded_text_mask(cond_dict), **reference_latent_inputs(model, cond_dict)}
