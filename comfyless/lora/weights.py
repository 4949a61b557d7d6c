"""The LORA_MODEL payload: a safetensors-ready state dict that also remembers how it was made."""

from __future__ import annotations

from typing import Any


class LoraWeights(dict):
    """dict[str, Tensor] in ComfyUI's SaveLoRA key layout, plus `metadata` (str -> str).

    A plain dict is a valid LORA_MODEL too (ComfyUI passes plain dicts); `metadata` is what
    SaveLoRA writes into the safetensors header (how the LoRA was trained).
    """

    def __init__(self, tensors: Any = (), metadata: dict[str, str] | None = None) -> None:
        super().__init__(tensors)
        self.metadata: dict[str, str] = dict(metadata or {})


def metadata_of(lora: dict) -> dict[str, str]:
    """The training metadata of a LORA_MODEL value ({} for a plain dict)."""
    return dict(getattr(lora, "metadata", {}) or {})
