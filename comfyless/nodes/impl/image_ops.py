"""IMAGE tensor operations: PIL round trips, resize / crop / pad, the samples of a batch.

IMAGE tensors are `[B, H, W, 3]` float32 in [0, 1]; one sample is `[H, W, C]`.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# -- PIL round trips --------------------------------------------------------------------------


def to_pil(image: torch.Tensor) -> Image.Image:
    """One IMAGE sample `[H, W, C]` (C = 1, 3 or 4) -> 8-bit PIL image (values truncated)."""
    array = np.clip(255.0 * image.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """LANCZOS-resize one sample `[H, W, C]` in float (no 8-bit rounding), clipped to [0, 1]."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    channels = image.detach().float().cpu().numpy()
    planes = [
        np.asarray(Image.fromarray(channels[:, :, c], mode="F").resize(
            (width, height), Image.Resampling.LANCZOS))
        for c in range(channels.shape[2])
    ]
    return torch.from_numpy(np.clip(np.stack(planes, axis=2), 0.0, 1.0))


def crop(image: torch.Tensor, left: int, top: int, width: int, height: int) -> torch.Tensor:
    """A `[height, width]` window of one sample; parts outside the image are black."""
    out = image.new_zeros(height, width, image.shape[2])
    src = image[max(top, 0):top + height, max(left, 0):left + width]
    out[max(-top, 0):max(-top, 0) + src.shape[0], max(-left, 0):max(-left, 0) + src.shape[1]] = src
    return out


def pad_to(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Fit one sample inside `width x height` keeping its aspect, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    fitted = resize(image, new_w, new_h)
    return crop(fitted, -((width - new_w) // 2), -((height - new_h) // 2), width, height)


def fit(image: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    """Legacy dataset resize_method: Stretch, Crop (top-left window), Pad (letterbox)."""
    if method == "Stretch":
        return resize(image, width, height)
    if method == "Crop":
        return crop(image, 0, 0, width, height)
    if method == "Pad":
        return pad_to(image, width, height)
    raise ValueError(f"unknown resize_method {method!r}")


def describe(value) -> str:
    """A value for an error message: its shape when it has one, else its type name."""
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(value).__name__


def samples(images: torch.Tensor) -> list[torch.Tensor]:
    """The `[H, W, C]` samples of an IMAGE batch (a 3-D tensor is one sample)."""
    if images.ndim == 3:
        return [images]
    if images.ndim != 4:
        raise ValueError(f"expected an IMAGE tensor [B, H, W, C], got shape {tuple(images.shape)}")
    return list(images)


