"""ComfyUI's "center" crop, the one rule for images, latents, masks and ControlNet hints."""

from __future__ import annotations

from torch import Tensor


def centre_crop_to_aspect(t: Tensor, width: int, height: int,
                          dims: tuple[int, int] = (-2, -1)) -> Tensor:
    """Cut equal margins (rounded) off the longer side of `t` so the aspect of its (height,
    width) axes `dims` becomes width:height: round((old - old * ratio) / 2) off each side, as
    ComfyUI's common_upscale(..., crop="center") does."""
    h_dim, w_dim = dims
    old_h, old_w = t.shape[h_dim], t.shape[w_dim]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return t.narrow(h_dim, y, old_h - 2 * y).narrow(w_dim, x, old_w - 2 * x)
