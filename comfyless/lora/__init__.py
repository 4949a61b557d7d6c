"""LoRA and friends: adapter math (LoRA, LoHa, LoKr, OFT), LoRA file formats, applying patches.

Training: `add_adapters(model, algorithm, rank, dtype=, generator=, existing=, bypass=)` ->
`AdapterSet` (`.parameters()`, `.state_dict()`, `.remove()`, `.merge()`).
Loading: `unet_patches(lora_sd, unet)` / `clip_patches(lora_sd, encoder)` (or `read_lora` with
a key map from `keys`) -> (patches per parameter, unplaced keys); then `patched(module,
[(patches, strength)])`, `weight_deltas(...)`, or `bypass_hooks(...)`.
"""

import importlib
from typing import Any

# Names below load their (torch-importing) module on first use, so torch-free submodules such
# as `comfyless.lora.train_options` (imported by the TrainLoraNode schema) can be imported
# without torch: importing a submodule runs this __init__ first.
_LAZY = {
    "adapters": ("ALGORITHMS", "AdapterSet", "RankTooLarge", "add_adapters"),
    "apply": ("bypass_hooks", "clip_patches", "loras_applied", "patch_weights", "patched",
              "remove_hooks", "restore_weights", "split_bypass", "unet_patches",
              "weight_deltas"),
    "formats": ("place_patches", "read_lora"),
    "keys": ("clip_key_map", "unet_key_map"),
    "kinds": ("Patch", "factorization"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
