"""LoRA and friends: adapter math (LoRA, LoHa, LoKr, OFT), LoRA file formats, applying patches.

Public entry points: `add_adapters` / `AdapterSet` (training), `read_lora` (file -> patches per
model weight), `weight_deltas` and `patched` (merging), `bypass_hooks` (bypass loading).
"""

from .adapters import ALGORITHMS, AdapterSet, RankTooLarge, add_adapters
from .kinds import Patch, factorization

__all__ = ["ALGORITHMS", "AdapterSet", "Patch", "RankTooLarge", "add_adapters", "factorization"]
