"""The registry of model families: one record (`base.Family`) per variant, one folder per family.

`FAMILIES` lists the records in detection order; `family(name)` looks one up (aliases too);
`detect_family(shapes, read=None, prefix=None)` detects a checkpoint from its {key: shape}
map (a safetensors header) and returns `Detected` (`.family` name, `.record`, `.config`,
`.prediction`, `.zsnr`, `.unet_prefix`). Adding a family = one folder whose records are
appended here (or `register(record)`); no other module names a family.

Torch-free: importing this package (and every family declaration) never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import flux, qwen_image, sd, sd3, unsupported, zimage
from .base import DetectionError, EncoderSpec, Family, Shapes, resolve

__all__ = ["FAMILIES", "DetectionError", "Detected", "EncoderSpec", "Family", "detect_family",
           "family", "names", "register", "resolve", "unet_prefix"]

FAMILIES: list[Family] = [*sd.FAMILIES, *flux.FAMILIES, *sd3.FAMILIES, *zimage.FAMILIES,
                          *qwen_image.FAMILIES]

# ComfyUI counts these prefixes; the most frequent wins if it has more than 5 keys.
_CANDIDATE_PREFIXES = ("model.diffusion_model.", "model.model.", "net.")


def names() -> tuple[str, ...]:
    """The registered family names, in detection order."""
    return tuple(f.name for f in FAMILIES)


def family(name: str) -> Family:
    """The record of a family name or alias; ValueError naming the known ones otherwise."""
    for f in FAMILIES:
        if name == f.name or name in f.aliases:
            return f
    raise ValueError(f"model family {name!r} is not supported (expected one of {sorted(names())})")


def register(record: Family) -> Family:
    """Append a family record (detected after the ones already there); returns it."""
    if record.name in names():
        raise ValueError(f"model family {record.name!r} is already registered")
    FAMILIES.append(record)
    return record


def unet_prefix(keys: Sequence[str]) -> str:
    """The diffusion-model key prefix of a full checkpoint (`model.` if none is frequent)."""
    counts = {p: sum(1 for k in keys if k.startswith(p)) for p in _CANDIDATE_PREFIXES}
    best = max(_CANDIDATE_PREFIXES, key=lambda p: counts[p])
    return best if counts[best] > 5 else "model."


@dataclass(frozen=True)
class Detected:
    """What a checkpoint holds: family, network config, prediction type, where the net is."""

    family: str
    config: Any
    prediction: str
    zsnr: bool
    unet_prefix: str

    @property
    def record(self) -> Family:
        return family(self.family)


def detect_family(shapes: Shapes, read: Callable[[str], object] | None = None,
                  prefix: str | None = None) -> Detected:
    """Detect a checkpoint; `read(key)` loads one tensor (for checks that need values)."""
    keys = list(shapes)
    prefix = unet_prefix(keys) if prefix is None else prefix
    configs: dict[int, Any] = {}  # one detection per detector (variants share them)
    found: list[tuple[Family, Any]] = []
    for f in FAMILIES:
        det = id(f.detect_config)
        if det not in configs:
            configs[det] = f.detect_config(shapes, prefix)
        cfg = configs[det]
        if cfg is None:
            continue
        found.append((f, cfg))
        if f.matches(cfg):
            prediction, zsnr = f.prediction(cfg, shapes, prefix, read)
            return Detected(f.name, cfg, prediction, zsnr, prefix)
    supported = ", ".join(names())
    known = unsupported.recognise(keys, prefix)
    if known is not None:
        name, key = known
        raise DetectionError(
            f"this is a {name} model (found '{key}'), which comfyless does not support yet; "
            f"supported families: {supported}")
    if found:
        f, cfg = found[0]
        raise DetectionError(
            f"unsupported model: found {f.describe_config(cfg)}; supported families: "
            f"{supported} (4-channel text-to-image UNets)"
        )
    sample = ", ".join(sorted(keys)[:8]) or "no keys at all"
    triggers = " / ".join(dict.fromkeys(f"'{prefix}{f.trigger_key}'" for f in FAMILIES))
    raise DetectionError(
        f"unrecognised key layout: no {triggers} (first keys: "
        f"{sample}); supported families: {supported} (LDM UNet layout)"
    )
