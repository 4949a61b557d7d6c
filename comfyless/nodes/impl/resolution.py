"""Execute of ResolutionSelector (nodes/resolution.py)."""

from __future__ import annotations

import math

from ..resolution import ASPECT_RATIOS


def resolution_sides(aspect_ratio: str, megapixels: float, multiple: int) -> tuple[int, int]:
    """(width, height): the aspect's units scaled to megapixels * 1024^2 pixels, each side
    rounded to the nearest multiple (Python's round: halves to even, as ComfyUI)."""
    w_units, h_units = ASPECT_RATIOS[aspect_ratio]
    scale = math.sqrt(megapixels * 1024 * 1024 / (w_units * h_units))
    return (round(w_units * scale / multiple) * multiple,
            round(h_units * scale / multiple) * multiple)


def resolution_selector(ctx, aspect_ratio: str, megapixels: float, multiple: int = 8):
    return resolution_sides(aspect_ratio, megapixels, multiple)
