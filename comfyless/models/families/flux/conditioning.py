"""FLUX.1 conditioning extras (model-families.md §1.3): the network's keyword inputs for one
conditioning entry — pooled CLIP-L `y`, distilled `guidance`, Kontext `ref_latents`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

DEFAULT_GUIDANCE = 3.5  # ComfyUI's value when no FluxGuidance node set one


def flux_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
               ) -> dict[str, Any]:
    """{"y", "guidance" (dev; omitted when the entry's guidance is None), "ref_latents" and
    "ref_latents_method" (when the entry has reference latents)} for `apply_model`.

    `model` is the ModelPatcher (network config, latent format); width/height are unused.
    """
    config = model.diffusion_model.config
    out: dict[str, Any] = {"y": _pooled(cond_dict, config.vec_in_dim)}
    guidance = cond_dict.get("guidance", DEFAULT_GUIDANCE)
    if guidance is not None and config.guidance_embed:
        out["guidance"] = torch.tensor([float(guidance)])
    out.update(reference_latent_inputs(model, cond_dict))
    return out


def reference_latent_inputs(model: Any, cond_dict: Mapping[str, Any]) -> dict[str, Any]:
    """{"ref_latents", "ref_latents_method"} for an entry with reference latents (Kontext,
    edit models; ReferenceLatent / FluxKontextMultiReferenceLatentMethod), else {}."""
    refs = cond_dict.get("reference_latents")
    if refs is None:
        return {}
    # references arrive as VAE latents; the network sees them in model space like x
    out: dict[str, Any] = {"ref_latents": [model.latent_format.process_in(r) for r in refs]}
    method = cond_dict.get("reference_latents_method")
    if method is not None:
        out["ref_latents_method"] = method
    return out


def padded_text_mask(cond_dict: Mapping[str, Any]) -> dict[str, Any]:
    """{"attention_mask": mask} when the entry's text mask masks something (a zero): ComfyUI
    passes LLM text masks on only then (Z-Image, Qwen-Image); else {}."""
    mask = cond_dict.get("attention_mask")
    if mask is None or bool((torch.as_tensor(mask) != 0).all()):
        return {}
    return {"attention_mask": mask}


def _pooled(cond_dict: Mapping[str, Any], width: int) -> Tensor:
    pooled = cond_dict.get("pooled_output")
    if pooled is None:
        return torch.zeros(1, width)
    if pooled.shape[-1] < width:
        raise ValueError(f"Flux conditioning: pooled_output has {pooled.shape[-1]} features, "
                         f"the model expects {width} (CLIP-L pooled)")
    return pooled.reshape(pooled.shape[0], -1)
