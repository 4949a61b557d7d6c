"""Execute of the inpaint / InstructPix2Pix conditioning nodes (nodes/inpaint.py).

Spec note (ComfyUI's nodes.py / nodes_ip2p.py rules, in our own words):

* Size: the image is centre-cropped to multiples of 8 pixels (VAEEncodeForInpaint: of the
  VAE's downscale ratio): height' = height // 8 * 8, offset (height % 8) // 2, the same for
  the width. The mask is first resized bilinearly to the image size, then cropped the same way.
* Pixel fill: inside the mask (mask rounded to 0/1 == 1) the pixels become 0.5 grey, outside
  they are unchanged: p' = (p - 0.5) * (1 - round(mask)) + 0.5 on the three colour channels.
* InpaintModelConditioning: concat_latent_image = encode(filled pixels), concat_mask = the
  resized, cropped (not rounded) mask, on every positive and negative entry; the LATENT holds
  encode(original pixels) and, with noise_mask on, that same mask as noise_mask.
* VAEEncodeForInpaint: samples = encode(filled pixels); noise_mask = the rounded mask grown by
  `grow_mask_by` pixels (a box of ones of that size convolved with padding
  ceil((grow - 1) / 2), clamped to [0, 1], cut back to the image size, rounded).
* InstructPixToPixConditioning: concat_latent_image = encode(cropped pixels) on every entry;
  the LATENT is zeros of that latent's shape.
Inputs are never mutated.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ...models.residency import release_idle
from ...typesys.errors import InvalidValue
from .conditioning import conditioning_set_values
from .conditioning_ops import _conditioning
from .image_ops import describe

PIXEL_MULTIPLE = 8  # InpaintModelConditioning / InstructPixToPix crop to multiples of 8


def _fail(ctx, input_name: str, message: str):
    raise InvalidValue(f"{input_name}: {message}", node_id=ctx.node_id, input_name=input_name)


def _pixels(ctx, value: Any, multiple: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 4 or value.shape[-1] < 3:
        _fail(ctx, "pixels", f"expected an IMAGE [B, H, W, 3], got {describe(value)}")
    if value.shape[1] < multiple or value.shape[2] < multiple:
        _fail(ctx, "pixels", f"the image ({value.shape[2]}x{value.shape[1]}) is smaller than "
                             f"{multiple}x{multiple} pixels")
    return value


def _vae(ctx, value: Any):
    if value is None or not hasattr(value, "encode"):
        _fail(ctx, "vae", f"expected a VAE, got {type(value).__name__}")
    return value


def _mask_at(ctx, mask: Any, pixels: torch.Tensor) -> torch.Tensor:
    """The MASK as (B, 1, H, W) resized bilinearly to the image size."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3, 4):
        _fail(ctx, "mask", f"expected a MASK [B, H, W], got {describe(mask)}")
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    if mask.shape[0] not in (1, pixels.shape[0]):
        _fail(ctx, "mask", f"a batch of {mask.shape[0]} masks does not fit a batch of "
                           f"{pixels.shape[0]} images (expected 1 or {pixels.shape[0]})")
    return F.interpolate(mask, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")


def _centre_crop(pixels: torch.Tensor, mask: torch.Tensor | None, multiple: int
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cut H and W down to multiples of `multiple`, centred (offset = remainder // 2)."""
    h, w = pixels.shape[1] // multiple * multiple, pixels.shape[2] // multiple * multiple
    top, left = (pixels.shape[1] % multiple) // 2, (pixels.shape[2] % multiple) // 2
    pixels = pixels[:, top:top + h, left:left + w, :]
    if mask is not None:
        mask = mask[:, :, top:top + h, left:left + w]
    return pixels, mask


def grey_fill(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """0.5 grey where round(mask) == 1 on the colour channels; a new tensor."""
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)  # (B, H, W, 1)
    out = pixels.clone()
    out[..., :3] = (pixels[..., :3] - 0.5) * keep + 0.5
    return out


def grow_mask(mask: torch.Tensor, grow_by: int) -> torch.Tensor:
    """The rounded mask dilated by a grow_by x grow_by box (ComfyUI's padding rule); the
    result may be one row/column larger than the input for even sizes (cut by the caller)."""
    if grow_by == 0:
        return mask
    kernel = torch.ones((1, 1, grow_by, grow_by), dtype=mask.dtype)
    padding = math.ceil((grow_by - 1) / 2)
    return torch.clamp(F.conv2d(mask.round(), kernel, padding=padding), 0, 1)


def _encode(ctx, vae, pixels: torch.Tensor) -> torch.Tensor:
    release_idle(keep=(vae,))  # other encoders wait in their files while it runs
    try:
        return vae.encode(pixels[..., :3])
    except ValueError as exc:
        _fail(ctx, "pixels", str(exc))


def inpaint_model_conditioning(ctx, positive, negative, vae, pixels, mask,
                               noise_mask: bool = True):
    positive = _conditioning(ctx, positive, "positive")
    negative = _conditioning(ctx, negative, "negative")
    vae = _vae(ctx, vae)
    original = _pixels(ctx, pixels, PIXEL_MULTIPLE)
    mask = _mask_at(ctx, mask, original)
    cropped, mask = _centre_crop(original, mask, PIXEL_MULTIPLE)
    concat_latent = _encode(ctx, vae, grey_fill(cropped, mask))
    latent = {"samples": _encode(ctx, vae, original)}  # the VAE crops the same way itself
    if noise_mask:
        latent["noise_mask"] = mask
    values = {"concat_latent_image": concat_latent, "concat_mask": mask}
    return (conditioning_set_values(positive, values),
            conditioning_set_values(negative, values), latent)


def vae_encode_for_inpaint(ctx, pixels, vae, mask, grow_mask_by: int = 6):
    vae = _vae(ctx, vae)
    ratio = int(getattr(vae, "downscale_ratio", PIXEL_MULTIPLE))
    pixels = _pixels(ctx, pixels, ratio)
    if not 0 <= int(grow_mask_by) <= 64:
        _fail(ctx, "grow_mask_by", f"expected 0..64 pixels, got {grow_mask_by}")
    mask = _mask_at(ctx, mask, pixels)
    pixels, mask = _centre_crop(pixels, mask, ratio)
    grown = grow_mask(mask, int(grow_mask_by))
    samples = _encode(ctx, vae, grey_fill(pixels, mask))
    h, w = pixels.shape[1], pixels.shape[2]
    return ({"samples": samples, "noise_mask": grown[:, :, :h, :w].round()},)


def instruct_pix_to_pix_conditioning(ctx, positive, negative, vae, pixels):
    positive = _conditioning(ctx, positive, "positive")
    negative = _conditioning(ctx, negative, "negative")
    vae = _vae(ctx, vae)
    pixels, _ = _centre_crop(_pixels(ctx, pixels, PIXEL_MULTIPLE), None, PIXEL_MULTIPLE)
    concat_latent = _encode(ctx, vae, pixels)
    values = {"concat_latent_image": concat_latent}
    return (conditioning_set_values(positive, values),
            conditioning_set_values(negative, values),
            {"samples": torch.zeros_like(concat_latent)})
