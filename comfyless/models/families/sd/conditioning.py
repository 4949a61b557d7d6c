"""SD conditioning extras: SDXL's adm vector y (pooled text embedding + 6 size Fourier features)
and the concat latents of inpaint / InstructPix2Pix UNets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...crop import centre_crop_to_aspect
from ...unet import timestep_embedding
from .detect import INPAINT_IN_CHANNELS, IP2P_IN_CHANNELS

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


# -- concat latents of inpaint (9-channel) and InstructPix2Pix (8-channel) UNets ---------------
# ComfyUI's "zero" image (pixels 0) in SD latent space, per channel: the masked_image of an
# inpaint model sampled without any mask
BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def sd_concat_cond(model: Any, cond_dict: Mapping[str, Any], noise_shape: torch.Size,
                   latent_image: Tensor | None, denoise_mask: Tensor | None) -> Tensor | None:
    """The latents an SD UNet takes beside x (ComfyUI's model_base concat rule); None for a
    4-channel UNet (concat_latent_image is then ignored).

    Inpaint (9 channels): [mask (1 ch), masked-image latent (4 ch)]. The mask is the entry's
    `concat_mask` or else the sampler's noise mask: its first channel, resized bilinearly with a
    centre crop to the latent size, rounded to 0/1, resized to the batch. The image is the
    entry's `concat_latent_image` (scaled into model space) or else the input latent, resized
    the same way. With no mask at all: mask of ones and BLANK_INPAINT_LATENT as the image.
    InstructPix2Pix (8 channels): the entry's `concat_latent_image` as is (no scaling), zeros
    without one.
    """
    in_channels = model.config.in_channels
    image = cond_dict.get("concat_latent_image")
    if in_channels == IP2P_IN_CHANNELS:
        if image is None:
            return torch.zeros(noise_shape)
        return _resize_to_batch(_fit_latent(image.float(), noise_shape), noise_shape[0])
    if in_channels != INPAINT_IN_CHANNELS:
        return None
    if image is not None:
        image = model.latent_format.process_in(image.float())
    else:
        image = latent_image if latent_image is not None else torch.zeros(noise_shape)
    image = _resize_to_batch(_fit_latent(image, noise_shape), noise_shape[0])
    mask = cond_dict.get("concat_mask", denoise_mask)
    if mask is None:
        blank = torch.tensor(BLANK_INPAINT_LATENT).reshape(1, 4, 1, 1)
        return torch.cat([torch.ones(noise_shape[0], 1, *noise_shape[2:]),
                          blank.expand(noise_shape[0], -1, *noise_shape[2:])], dim=1)
    mask = mask.float()
    if mask.ndim == len(noise_shape):
        mask = mask[:, :1]
    mask = mask.reshape(-1, 1, *mask.shape[-2:])
    if tuple(mask.shape[-2:]) != tuple(noise_shape[-2:]):
        mask = _upscale_centre(mask, noise_shape[-2], noise_shape[-1])
    mask = _resize_to_batch(mask.round(), noise_shape[0])
    return torch.cat([mask.to(image), image], dim=1)


def _fit_latent(image: Tensor, noise_shape: torch.Size) -> Tensor:
    if tuple(image.shape[1:]) != tuple(noise_shape[1:]):
        image = _upscale_centre(image, noise_shape[-2], noise_shape[-1])
    return image


def _upscale_centre(t: Tensor, height: int, width: int) -> Tensor:
    """ComfyUI's common_upscale(..., "bilinear", "center"): centre-crop to the target aspect
    (round((old - old * ratio) / 2) off each side of the longer axis), then bilinear resize."""
    t = centre_crop_to_aspect(t, width, height)
    return torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear")


def _resize_to_batch(t: Tensor, batch: int) -> Tensor:
    """ComfyUI's resize_to_batch_size: the same tensor for an equal batch; otherwise pick
    evenly spaced samples (shrinking) or stretch each sample over several (growing)."""
    n = t.shape[0]
    if n == batch:
        return t
    if batch <= 1:
        return t[:batch]
    if batch < n:
        scale = (n - 1) / (batch - 1)
        index = [min(round(i * scale), n - 1) for i in range(batch)]
    else:
        scale = n / batch
        index = [min(math.floor((i + 0.5) * scale), n - 1) for i in range(batch)]
    return t[index]
