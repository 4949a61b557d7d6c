"""SDXL's conditioning extra: the adm vector y = pooled text embedding + 6 size Fourier features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...unet import timestep_embedding

SDXL_SIZE_EMBED_DIM = 256  # each of the 6 size/crop numbers -> 256 Fourier features


def sdxl_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
               ) -> dict[str, Tensor]:
    """{"y": SDXL's adm vector} ({} for a UNet without adm input)."""
    y = sdxl_adm(model, cond_dict, width, height)
    return {} if y is None else {"y": y}


def sdxl_adm(model: Any, cond_dict: Mapping[str, Any], width: int, height: int) -> Tensor | None:
    """SDXL's adm vector y from the pooled text embedding and image sizes; None without adm.

    width/height are pixel sizes (latent size x 8); `cond_dict` may override them with
    ComfyUI's keys width, height, crop_w, crop_h, target_width, target_height.
    """
    adm = model.config.adm_in_channels
    if adm is None:
        return None
    pooled_dim = adm - 6 * SDXL_SIZE_EMBED_DIM
    pooled = cond_dict.get("pooled_output")
    if pooled is None:
        pooled = torch.zeros(1, pooled_dim)
    if pooled.shape[-1] != pooled_dim:
        raise ValueError(
            f"SDXL conditioning: pooled_output has {pooled.shape[-1]} features, the model "
            f"expects {pooled_dim} (adm_in_channels {adm} = pooled + 6 x 256)"
        )
    w = cond_dict.get("width", width)
    h = cond_dict.get("height", height)
    sizes = [h, w, cond_dict.get("crop_h", 0), cond_dict.get("crop_w", 0),
             cond_dict.get("target_height", h), cond_dict.get("target_width", w)]
    emb = timestep_embedding(torch.tensor([float(s) for s in sizes]), SDXL_SIZE_EMBED_DIM)
    flat = emb.flatten().unsqueeze(0).repeat(pooled.shape[0], 1)
    return torch.cat([pooled.float().reshape(pooled.shape[0], -1), flat], dim=1)
