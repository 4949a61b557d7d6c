"""SD3's conditioning extra and sampling object (model-families.md §2.2, §2.4, §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...sampling import FlowSampling, model_sampling_sd3, require_const

SHIFT = 3.0  # ModelSamplingDiscreteFlow shift of SD3, SD3.5 Large/Turbo and Medium alike
MULTIPLIER = 1000.0  # the network sees timestep 1000·σ


def sd3_sampling(prediction: str, zsnr: bool = False) -> FlowSampling:
    """Discrete flow sampling, shift 3, multiplier 1000, CONST (velocity) prediction."""
    require_const("SD3", prediction, zsnr)
    return model_sampling_sd3(SHIFT, MULTIPLIER)


def sd3_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
              ) -> dict[str, Tensor]:
    """{"y": the pooled text vector [B, adm]} (zeros [1, adm] without one); {} for an MMDiT
    without a pooled-vector embedder. width/height do not enter SD3's conditioning."""
    adm = model.config.adm_in_channels
    if adm is None:
        return {}
    pooled = cond_dict.get("pooled_output")
    if pooled is None:
        return {"y": torch.zeros(1, adm)}
    if pooled.shape[-1] != adm:
        raise ValueError(f"SD3 conditioning: pooled_output has {pooled.shape[-1]} features, the "
                         f"model expects {adm} (CLIP-L 768 + CLIP-G 1280 pooled)")
    return {"y": pooled.reshape(pooled.shape[0], -1)}
