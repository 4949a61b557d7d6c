"""Checkpoint detection: which prefix holds the diffusion model, its config from key names and
shapes, which family and which prediction type. The rules live in each family's folder
(models/families/<family>/); this module is the entry point the loaders use.
"""

from __future__ import annotations

from .families import Detected, DetectionError, Shapes, detect_family, names, unet_prefix
from .families.sd.detect import V_PRED_NORM_BIAS_STD, detect_unet_config

__all__ = ["UNET_PREFIX", "V_PRED_NORM_BIAS_STD", "Detected", "DetectionError", "Shapes",
           "detect", "detect_unet_config", "supported_families", "unet_prefix"]

# The all-in-one checkpoint prefix of a diffusion model (ComfyUI's default).
UNET_PREFIX = "model.diffusion_model."


def supported_families() -> tuple[str, ...]:
    """The names of the registered families."""
    return names()


detect = detect_family
