"""Reading LoRA files: group a state dict's keys into patches placed on model weights.

`read_lora(lora_sd, "unet" | "clip", model)` builds the key map and calls
`place_patches(lora_sd, key_map, shapes)`, which follows lora-format.md §4: for every prefix of
the key map, look for each adapter's suffix dialect (§4.3: LoRA in seven spellings, LoHa, LoKr, OFT)
and for the diff/set kinds; every key it uses is consumed. It returns the patches per target
parameter and EVERY key it could not place, with the reason.

Not supported (their keys come back unplaced, with that reason): GLoRA, BOFT (4-D
`oft_blocks`), `reshape_weight`, and the Flux/Wan/USO whole-file converters (not SD models).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from .keys import Target, clip_key_map, unet_key_map
from .kinds import LOHA_KEYS, LOKR_KEYS, LORA_DIALECTS, Patch


def _lora(prefix: str, sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]] | None:
    for up, down, mid in LORA_DIALECTS:
        sep = "" if up.startswith("_") else "."
        ku, kd = prefix + sep + up, prefix + sep + down
        if ku in sd and kd in sd:
            t, used = {"up": sd[ku], "down": sd[kd]}, [ku, kd]
            if mid is not None and f"{prefix}.{mid}" in sd:
                t["mid"] = sd[f"{prefix}.{mid}"]
                used.append(f"{prefix}.{mid}")
            return t, used
    return None


def _named(prefix: str, sd: dict[str, Tensor], names: tuple[str, ...]):
    found = {n: sd[f"{prefix}.{n}"] for n in names if f"{prefix}.{n}" in sd}
    return found, [f"{prefix}.{n}" for n in found]


def _adapter(prefix: str, sd: dict[str, Tensor]) -> tuple[str, dict[str, Tensor], list[str]] | None:
    """The first adapter stored under `prefix`, in ComfyUI's try-order (LoRA, LoHa, LoKr, OFT)."""
    got = _lora(prefix, sd)
    if got:
        return ("lora", *got)
    t, used = _named(prefix, sd, LOHA_KEYS)
    if all(k in t for k in LOHA_KEYS[:4]):
        return "loha", t, used
    t, used = _named(prefix, sd, LOKR_KEYS)
    if ("lokr_w1" in t or "lokr_w1_a" in t) and ("lokr_w2" in t or "lokr_w2_a" in t):
        return "lokr", t, used
    blocks = sd.get(prefix + ".oft_blocks")
    if blocks is not None and blocks.dim() == 3:
        used = [prefix + ".oft_blocks"] + [prefix + ".rescale"] * (prefix + ".rescale" in sd)
        return "oft", {"oft_blocks": blocks}, used
    return None


def _fits(p: Patch, shape: tuple[int, ...]) -> bool:
    """Whether a patch can produce a tensor of `shape` (cheap shape arithmetic, no math)."""
    numel, out, t = math.prod(shape), shape[0] if shape else 1, p.tensors
    if p.kind == "lora":
        down = t["down"]
        k = math.prod(t["mid"].shape[2:]) if "mid" in t else 1
        return t["up"].shape[0] == out and down[0].numel() * k * out == numel
    if p.kind == "loha":
        if "hada_t1" in t:
            return t["hada_w1_a"].shape[0] == out
        return t["hada_w1_a"].shape[0] == out and t["hada_w1_b"][0].numel() * out == numel
    if p.kind == "lokr":
        w1 = t.get("lokr_w1", t.get("lokr_w1_a"))
        w2 = t.get("lokr_w2", t.get("lokr_w2_a"))
        return w1 is not None and w2 is not None and w1.shape[0] * w2.shape[0] == out
    if p.kind == "oft":
        return len(shape) >= 1 and t["oft_blocks"].shape[0] * t["oft_blocks"].shape[1] == out
    return next(iter(t.values())).numel() == numel


def _slice_shape(shape: tuple[int, ...], offset) -> tuple[int, ...]:
    if offset is None:
        return shape
    dim, _, length = offset
    return shape[:dim] + (length,) + shape[dim + 1:]


def read_lora(
    lora_sd: dict[str, Tensor], target: str, model: nn.Module | dict[str, tuple[int, ...]],
    config: Any = None,
) -> tuple[dict[str, list[Patch]], dict[str, str]]:
    """Place a LoRA file on a UNet (`target="unet"`) or text-encoder module (`"clip"`).

    `model` is the torch module (parameter names are the targets) or a {name: shape} dict;
    `config` (UNetConfig) is optional for the UNet (the layout is read off the names). A
    diffusion network other than the LDM UNet brings its own `lora_key_map()` (and optionally
    `convert_lora_file(sd)`), which is used instead of `unet_key_map`.
    Returns (patches per parameter name, {unplaced file key: reason}).
    """
    own_map = getattr(model, "lora_key_map", None) if target == "unet" else None
    if isinstance(model, nn.Module):
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        config = config if config is not None else getattr(model, "config", None)
    else:
        shapes = {n: tuple(s) for n, s in model.items()}
    if own_map is not None:
        # a non-UNet network (models/families/<family>/) names its own file layouts and may
        # rewrite what a key map cannot express (e.g. diffusers' swapped modulation halves)
        convert = getattr(model, "convert_lora_file", None)
        if convert is not None:
            lora_sd = convert(lora_sd)
        return place_patches(lora_sd, own_map(), shapes)
    if target == "unet":
        key_map = unet_key_map(shapes, config)
    elif target == "clip":
        key_map = clip_key_map(shapes)
    else:
        raise ValueError(f"read_lora target must be 'unet' or 'clip', not {target!r}")
    return place_patches(lora_sd, key_map, shapes)


def _file_prefixes(lora_sd: dict[str, Tensor]) -> set[str]:
    """Every string a key could be `prefix + suffix` of (cut at each dot, and before `_lora.`),
    so only key-map entries the file can match are tried (a full SDXL map has ~8000)."""
    out: set[str] = set()
    for key in lora_sd:
        i = key.find(".")
        while i != -1:
            out.add(key[:i])
            i = key.find(".", i + 1)
        j = key.rfind("_lora.")
        if j != -1:
            out.add(key[:j])
    return out


def place_patches(
    lora_sd: dict[str, Tensor],
    key_map: dict[str, Target],
    shapes: dict[str, tuple[int, ...]],
) -> tuple[dict[str, list[Patch]], dict[str, str]]:
    """(patches per parameter name, {unplaced file key: reason}).

    `key_map` comes from `keys.unet_key_map` / `keys.clip_key_map`; `shapes` maps every
    parameter name of the target module to its shape (a bias patch needs the bias to exist, and
    a patch whose shapes do not fit its weight is reported instead of applied).
    """
    patches: dict[str, list[Patch]] = {}
    used: set[str] = set()
    misfit: dict[str, str] = {}
    present = _file_prefixes(lora_sd)
    for prefix, target in key_map.items():
        if prefix not in present:
            continue
        name, offset = (target, None) if isinstance(target, str) else target
        for p, keys in _patches_at(prefix, lora_sd, name):
            pname = name if p.kind != "diff_b" else name[: -len("weight")] + "bias"
            if p.kind == "diff_b":
                p.kind = "diff"
            shape = shapes.get(pname)
            if shape is None or not _fits(p, _slice_shape(tuple(shape), offset)):
                why = "no such parameter" if shape is None else f"does not fit {list(shape)}"
                misfit.update({k: f"{pname}: {why}" for k in keys})
                continue
            p.offset = offset
            patches.setdefault(pname, []).append(p)
            used.update(keys)
    unplaced = {k: misfit.get(k) or _why_unplaced(k, lora_sd) for k in lora_sd if k not in used}
    return patches, unplaced


_UNSUPPORTED = {
    (".a1.weight", ".a2.weight", ".b1.weight", ".b2.weight"): "GLoRA adapters are not supported",
    (".reshape_weight",): "reshape_weight patches are not supported (Flux control LoRAs)",
}


def _why_unplaced(key: str, lora_sd: dict[str, Tensor]) -> str:
    if key.endswith(".oft_blocks") and lora_sd[key].dim() == 4:
        return "BOFT (4-D oft_blocks) adapters are not supported"
    for suffixes, why in _UNSUPPORTED.items():
        if key.endswith(suffixes):
            return why
    return "no model layer has this name"


def _patches_at(prefix: str, sd: dict[str, Tensor], name: str):
    """Every (Patch, file keys) stored under one prefix."""
    found = _adapter(prefix, sd)
    if found:
        kind, tensors, keys = found
        alpha, dora = sd.get(prefix + ".alpha"), sd.get(prefix + ".dora_scale")
        keys += [prefix + ".alpha"] * (alpha is not None) + [prefix + ".dora_scale"] * (
            dora is not None)
        yield Patch(kind, tensors, None if alpha is None else float(alpha), dora,
                    source_keys=tuple(keys)), keys
    for suffix, kind, as_name in (("diff", "diff", "diff"), ("w_norm", "diff", "diff"),
                                  ("set_weight", "set", "set_weight")):
        t = sd.get(f"{prefix}.{suffix}")
        if t is not None:
            yield Patch(kind, {as_name: t}, source_keys=(f"{prefix}.{suffix}",)), [
                f"{prefix}.{suffix}"]
    for suffix in ("diff_b", "b_norm"):
        t = sd.get(f"{prefix}.{suffix}")
        if t is not None and name.endswith(".weight"):
            yield Patch("diff_b", {"diff": t}, source_keys=(f"{prefix}.{suffix}",)), [
                f"{prefix}.{suffix}"]
