"""Area and mask conditioning (ConditioningSetArea / SetAreaPercentage / SetMask): where on the
latent each CONDITIONING entry acts, and with what per-element weight.

Spec note (ComfyUI's samplers.py rules, stated in our own words):

* An area is (height, width, y, x) in LATENT units (ConditioningSetArea stores pixels // 8).
  A percentage area ("percentage", h, w, y, x) is resolved once against the latent size
  (H, W): height = max(1, round(h * H)), width = max(1, round(w * W)), y = round(y * H),
  x = round(x * W).
* A mask is brought to the latent size once: a 2-D mask gains a batch axis, a mask of another
  size is resized bilinearly (align_corners False). With set_cond_area "mask bounds"
  (`set_area_to_bounds`), the entry's area becomes the bounding box of the non-zero elements of
  max(|mask|) over the mask batch, each side at least 8 latent elements; an all-zero mask gets
  area (8, 8, 0, 0).
* Per step, an entry's area is clamped to the latent (size = min(size, full - offset)); the
  model sees only x cropped to the area (and concat latents cropped the same way) and its
  prediction counts only there.
* The weight of an entry ("mult") is strength x (mask cropped to the area x mask_strength, or
  1 without a mask). Without a mask an area's edges are feathered: on each axis
  rr = min(8, area size // 4) rows; an edge that is not the latent border gets the ramp
  1/rr, 2/rr, ..., rr/rr from the edge inwards (row t from the edge is multiplied by
  (t + 1) / rr; corners get both factors).
* The predictions of all active entries of one list are combined element-wise:
  sum(prediction * mult) / (sum(mult) + 1e-37), each term placed at its area; an element no
  entry covers predicts 0.
* Before sampling, every area entry of one list (positive, negative, ...) that has no entry
  of exactly the same area in another list gets a twin appended to that other list: same
  area, mask, strength and timestep range, but the context and model inputs of the smallest
  entry of that list whose area encloses it (an entry without area encloses everything and
  is taken only when no enclosing area entry exists). Lists are paired in order.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

FEATHER = 8  # rows of linear ramp at an area edge that is not the latent border
MIN_BOUNDS = 8  # smallest side of an area taken from mask bounds, in latent elements
COUNT_FLOOR = 1e-37  # ComfyUI's start value of the weight sum (no entry: 0 / 1e-37 = 0)
# model inputs shaped like the latent: cropped to an entry's area together with x
NOISE_SHAPED_EXTRAS = ("c_concat",)


def resolve_area(area: Any, latent_h: int, latent_w: int, *, what: str) -> tuple[int, ...]:
    """An `area` option -> (height, width, y, x) in latent elements."""
    if not isinstance(area, list | tuple) or len(area) not in (4, 5):
        raise ValueError(f"{what}: 'area' must be (height, width, y, x) or ('percentage', h, w, "
                         f"y, x), got {area!r}")
    if area[0] == "percentage":
        h, w, y, x = (float(v) for v in area[1:])
        return (max(1, round(h * latent_h)), max(1, round(w * latent_w)),
                round(y * latent_h), round(x * latent_w))
    return tuple(int(v) for v in area)


def resolve_mask(mask: Any, latent_h: int, latent_w: int, *, what: str) -> Tensor:
    """A `mask` option -> (B, H, W) float at the latent size."""
    if not isinstance(mask, Tensor) or mask.ndim not in (2, 3):
        found = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{what}: 'mask' must be a (batch, height, width) tensor, got {found}")
    mask = mask.float()
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape[1:]) != (latent_h, latent_w):
        mask = F.interpolate(mask.unsqueeze(1), size=(latent_h, latent_w), mode="bilinear",
                             align_corners=False).squeeze(1)
    return mask


def mask_bounds(mask: Tensor) -> tuple[int, int, int, int]:
    """The area (h, w, y, x) around the non-zero elements of max(|mask|) over the batch."""
    bounds = mask.abs().amax(dim=0)
    ys, xs = torch.nonzero(bounds, as_tuple=True)
    if ys.numel() == 0:
        return (MIN_BOUNDS, MIN_BOUNDS, 0, 0)
    y0, x0 = int(ys.min()), int(xs.min())
    h, w = int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1
    return (max(MIN_BOUNDS, h), max(MIN_BOUNDS, w), y0, x0)


def entry_region(options: dict, latent_h: int, latent_w: int, *, what: str
                 ) -> tuple[tuple[int, ...] | None, Tensor | None, float]:
    """(area, mask, mask_strength) of one entry's options, resolved against the latent size."""
    area = options.get("area")
    area = None if area is None else resolve_area(area, latent_h, latent_w, what=what)
    mask = options.get("mask")
    if mask is not None:
        mask = resolve_mask(mask, latent_h, latent_w, what=what)
        if options.get("set_area_to_bounds", False):
            area = mask_bounds(mask)
    return area, mask, float(options.get("mask_strength", 1.0))


def clamp_area(area: tuple[int, ...], latent_h: int, latent_w: int) -> tuple[int, int, int, int]:
    """The area cut to the latent (ComfyUI clamps the size, never the offset)."""
    h, w, y, x = area
    h, w = min(latent_h - y, h), min(latent_w - x, w)
    if h <= 0 or w <= 0 or y < 0 or x < 0:
        raise ValueError(f"conditioning area (height {area[0]}, width {area[1]}, y {y}, x {x}) "
                         f"in latent units lies outside the {latent_h}x{latent_w} latent")
    return h, w, y, x


def crop(t: Tensor, area: tuple[int, int, int, int] | None) -> Tensor:
    """t[..., y:y+h, x:x+w] (the whole tensor for no area)."""
    if area is None:
        return t
    h, w, y, x = area
    return t[..., y:y + h, x:x + w]


def _ramp(size: int, at_start: bool, at_end: bool) -> Tensor:
    """Per-row factor along one axis: 1 inside, (t + 1) / rr for row t from a feathered edge."""
    ramp = torch.ones(size)
    rr = min(FEATHER, size // 4)
    steps = torch.arange(1, rr + 1, dtype=torch.float32) / rr if rr > 0 else torch.ones(0)
    if at_start and rr > 0:
        ramp[:rr] *= steps
    if at_end and rr > 0:
        ramp[size - rr:] *= steps.flip(0)
    return ramp


def entry_weight(x_crop: Tensor, area: tuple[int, int, int, int] | None, mask: Tensor | None,
                 mask_strength: float, strength: float, latent_h: int, latent_w: int) -> Tensor:
    """The per-element weight ("mult") of one entry over its cropped x."""
    if mask is not None:
        m = crop(mask[: x_crop.shape[0]], area) * mask_strength
        m = m.unsqueeze(1).to(x_crop)
        m = m.repeat(x_crop.shape[0] // m.shape[0], x_crop.shape[1], 1, 1)
        return m * strength
    mult = torch.full_like(x_crop, float(strength))
    if area is None:
        return mult
    h, w, y, x = area
    rows = _ramp(h, y != 0, y + h < latent_h).to(x_crop)
    cols = _ramp(w, x != 0, x + w < latent_w).to(x_crop)
    return mult * rows.reshape(1, 1, h, 1) * cols.reshape(1, 1, 1, w)


def _encloses(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    """Whether area `outer` contains area `inner` (both (h, w, y, x))."""
    if inner[2] < outer[2] or inner[3] < outer[3]:
        return False
    return inner[0] + inner[2] <= outer[0] + outer[2] and inner[1] + inner[3] <= outer[1] + outer[3]


def _smallest_enclosing(entries: list, area: tuple[int, ...]) -> Any:
    """ComfyUI's choice of the entry whose context an area twin borrows (None: no entry)."""
    smallest = None
    for e in entries:
        if e.area is not None:
            if not _encloses(e.area, area):
                continue
            if smallest is None or smallest.area is None or \
                    math.prod(smallest.area[:2]) > math.prod(e.area[:2]):
                smallest = e
        elif smallest is None:
            smallest = e
    return smallest


def pair_areas(lists: list[list | None]) -> None:
    """Give every area entry a twin of the same area in each other list (see the spec note).

    Entries are dataclasses with `area`, `context`, `extra` (the twin borrows these two from
    the chosen entry, everything else from the area entry); lists are extended in place."""
    present = [entries for entries in lists if entries is not None]
    for source in present:
        for entry in source:  # includes twins appended earlier, as ComfyUI
            if entry.area is None:
                continue
            for target in present:
                if target is source:
                    continue
                donor = _smallest_enclosing(target, entry.area)
                if donor is None or (donor.area is not None and donor.area == entry.area):
                    continue
                target.append(replace(entry, context=donor.context, extra=donor.extra))
