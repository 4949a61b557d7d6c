"""Z-Image's conditioning extra and sampling object (model-families.md §3.2, §3.4, §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...sampling import FlowSampling, model_sampling_sd3, require_const
from ..flux.conditioning import padded_text_mask

SHIFT = 3.0  # ModelSamplingDiscreteFlow shift of Z-Image Turbo and Base
MULTIPLIER = 1.0  # the network sees σ itself (it embeds 1000·(1 − σ))


def zimage_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """Discrete flow sampling, shift 3, multiplier 1, CONST (velocity) prediction."""
    require_const("Z-Image", prediction, zsnr)
    return model_sampling_sd3(SHIFT, MULTIPLIER)


def zimage_conds(model: Any, cond_dict: Mapping[str, Any], width: int, height: int
                 ) -> dict[str, Tensor]:
    """{"attention_mask": the text mask} when that mask has zeros (padded prompts), else {}.
    ComfyUI passes the mask on in that case only; the network ignores it either way.
    width/height do not enter Z-Image's conditioning."""
    return padded_text_mask(cond_dict)
