"""LoRA and friends: adapter math (LoRA, LoHa, LoKr, OFT), LoRA file formats, applying patches.

Training: `add_adapters(model, algorithm, rank, dtype=, generator=, existing=, bypass=)` ->
`AdapterSet` (`.parameters()`, `.state_dict()`, `.remove()`, `.merge()`).
Loading: `unet_patches(lora_sd, unet)` / `clip_patches(lora_sd, encoder)` (or `read_lora` with
a key map from `keys`) -> (patches per parameter, unplaced keys); then `patched(module,
[(patches, strength)])`, `weight_deltas(...)`, or `bypass_hooks(...)`.
"""

from .adapters import ALGORITHMS, AdapterSet, RankTooLarge, add_adapters
from .apply import (
    bypass_hooks,
    clip_patches,
    loras_applied,
    patch_weights,
    patched,
    remove_hooks,
    restore_weights,
    split_bypass,
    unet_patches,
    weight_deltas,
)
from .formats import place_patches, read_lora
from .keys import clip_key_map, unet_key_map
from .kinds import Patch, factorization

__all__ = [
    "ALGORITHMS", "AdapterSet", "Patch", "RankTooLarge", "add_adapters", "bypass_hooks",
    "clip_key_map", "clip_patches", "factorization", "loras_applied", "patch_weights",
    "patched", "place_patches", "read_lora", "remove_hooks", "restore_weights", "split_bypass",
    "unet_key_map", "unet_patches", "weight_deltas",
]
