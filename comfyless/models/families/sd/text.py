"""Which standalone text-encoder files make an SD text-encoder set (CLIPLoader `stable_diffusion`,
DualCLIPLoader `sdxl`). Torch-free: reads key names and `.shape` only. Each function gets the
files as HF-layout state dicts and returns {encoder name: state dict}, or None if the files
are not this variant's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TOKEN_EMB = "text_model.embeddings.token_embedding.weight"


def clip_layer_count(sd: Mapping[str, Any]) -> int:
    """The number of layers of an HF-layout CLIP text tower (`text_model.encoder.layers.N`)."""
    n = 0
    while f"text_model.encoder.layers.{n}.layer_norm1.weight" in sd:
        n += 1
    return n


def _openclip_like(sd: Mapping[str, Any]) -> bool:
    """OpenCLIP ViT-H (24 layers, or a projection on a non-768 width) rather than CLIP-L."""
    return clip_layer_count(sd) >= 23 or "text_projection.weight" in sd and \
        sd[_TOKEN_EMB].shape[1] != 768


def assign_sd15(files: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One CLIP-L file."""
    if len(files) != 1 or _openclip_like(files[0]):
        return None
    return {"l": files[0]}


def assign_sd2(files: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One OpenCLIP ViT-H file."""
    if len(files) != 1 or not _openclip_like(files[0]):
        return None
    return {"h": files[0]}


def assign_sdxl(files: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """CLIP-L + bigG: CLIP-L is the narrower one, whichever input it came through."""
    if len(files) != 2:
        return None
    narrow, wide = sorted(files, key=lambda e: e[_TOKEN_EMB].shape[1])
    return {"l": narrow, "g": wide}
