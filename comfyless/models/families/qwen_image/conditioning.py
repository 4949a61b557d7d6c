"""Qwen-Image sampling object and conditioning extras (model-families.md §4.2, §4.4, §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...sampling import FlowSampling, model_sampling_flux

SHIFT = 1.15  # ModelSamplingFlux μ without a ModelSampling* node (the network sees σ)


def qwen_image_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """ModelSamplingFlux with μ = 1.15 at every image size, CONST (velocity) prediction."""
    if prediction not in (None, "const") or zsnr:
        raise ValueError(f"Qwen-Image is a flow (CONST) model; prediction {prediction!r}"
                         f"{' with zsnr' if zsnr else ''} cannot be used with it")
    return model_sampling_flux(SHIFT)


def qwen_image_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
                     ) -> dict[str, Any]:
    """{"attention_mask"} when the conditioning's text mask has padding (a zero), and
    {"ref_latents", "ref_latents_method"} when it carries reference latents (edit models;
    in model space like x); {} otherwise. width/height do not enter Qwen-Image's inputs."""
    out: dict[str, Any] = {}
    mask = cond_dict.get("attention_mask")
    if mask is not None and bool((torch.as_tensor(mask) == 0).any()):
        out["attention_mask"] = mask
    refs = cond_dict.get("reference_latents")
    if refs is not None:
        out["ref_latents"] = [model.latent_format.process_in(r) for r in refs]
        method = cond_dict.get("reference_latents_method")
        if method is not None:
            out["ref_latents_method"] = method
    return out
