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


def save_safetensors_deterministic(tensors: dict, path, metadata: dict[str, str]) -> None:
    """safetensors.save_file, then the header rewritten with sorted keys.

    safetensors keeps metadata in a hash map, so the header's key order (and with it the file's
    bytes) changes from process to process. The same header with its keys sorted has exactly
    the same length, so tensor offsets stay valid and equal inputs give byte-identical files.
    """
    import json
    import struct

    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        raw = handle.read(length)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        canonical += b" " * (length - len(canonical))  # same padding as the original
        if len(canonical) != length:  # cannot happen for the same content; stay safe
            return
        handle.seek(8)
        handle.write(canonical)
