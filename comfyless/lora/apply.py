"""Applying LoRA patches to a torch module: merged weights, restore, and bypass hooks.

Typical use (the ModelPatcher does this for every `(lora_sd, strength, bypass)` it holds):

    patches, unplaced = unet_patches(lora_sd, unet)        # or clip_patches(lora_sd, encoder)
    with patched(unet, [(patches, strength)]):             # weights merged (lora-format.md §5)
        unet(x, t, context)
    # weights are bit-for-bit the originals again here

    handles = bypass_hooks(unet, patches, strength)         # §6: adapters as forward hooks
    ...; remove_hooks(handles)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .formats import read_lora
from .kinds import Patch, bypass_delta_out, merged_weight, oft_rotate_output

PatchSet = dict[str, list[Patch]]


def unet_patches(
    lora_sd: dict[str, Tensor], unet: nn.Module, config: Any = None
) -> tuple[PatchSet, dict[str, str]]:
    """Patches for a LDM UNet (parameter names without `diffusion_model.`) and unplaced keys."""
    return read_lora(lora_sd, "unet", unet, config)


def clip_patches(lora_sd: dict[str, Tensor], encoder: nn.Module) -> tuple[PatchSet, dict[str, str]]:
    """Patches for a text-encoder module (HF CLIP or OpenCLIP layout) and unplaced keys."""
    return read_lora(lora_sd, "clip", encoder)


def _apply_all(weight: Tensor, plist: list[Patch], strength: float) -> Tensor:
    """The weight with every patch applied in order (slices patched in place of a copy)."""
    w = weight
    for p in plist:
        if p.offset is None:
            w = merged_weight(p, w, strength)
        else:
            dim, start, length = p.offset
            w = w.clone() if w is weight else w
            part = w.narrow(dim, start, length)
            part.copy_(merged_weight(p, part, strength))
    return w


def weight_deltas(
    patches: PatchSet, module_weights: dict[str, Tensor], strength: float
) -> dict[str, Tensor]:
    """{parameter name: patched weight - weight} (float32) for every patched parameter."""
    out = {}
    for name, plist in patches.items():
        w = module_weights[name].detach()
        out[name] = _apply_all(w.float(), plist, strength) - w.float()
    return out


def patch_weights(
    module: nn.Module, patch_sets: list[tuple[PatchSet, float]]
) -> dict[str, Tensor]:
    """Merge patches into `module`'s parameters in place; returns the originals to restore."""
    params = dict(module.named_parameters())
    backup: dict[str, Tensor] = {}
    with torch.no_grad():
        for patches, strength in patch_sets:
            if strength == 0:
                continue
            for name, plist in patches.items():
                p = params[name]
                if name not in backup:
                    backup[name] = p.detach().clone()
                p.copy_(_apply_all(p.detach(), plist, strength))
    return backup


def restore_weights(module: nn.Module, backup: dict[str, Tensor]) -> None:
    """Put back the parameters saved by `patch_weights` (exact copies, no float drift)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, t in backup.items():
            params[name].copy_(t)


@contextmanager
def patched(module: nn.Module, patch_sets: list[tuple[PatchSet, float]]) -> Iterator[nn.Module]:
    """Weights merged inside the block, restored after (also on error)."""
    backup = patch_weights(module, patch_sets)
    try:
        yield module
    finally:
        restore_weights(module, backup)


def _split_name(name: str) -> tuple[str, str]:
    mod, _, pname = name.rpartition(".")
    return mod, pname


def bypass_hooks(module: nn.Module, patches: PatchSet, strength: float) -> list[Any]:
    """Adapters as forward hooks: y = g(f(x) + s*h(x)) (lora-format.md §6).

    Only adapter patches on whole `.weight` tensors become hooks; diff/set patches and sliced
    patches must still be merged (use `split_bypass` to separate them). Returns the handles.
    """
    modules = dict(module.named_modules())
    handles = []
    for name, plist in patches.items():
        mod_name, pname = _split_name(name)
        layer = modules[mod_name]
        for p in plist:
            assert p.is_adapter and p.offset is None and pname == "weight"
            handles.append(layer.register_forward_hook(_hook(p, strength)))
    return handles


def _hook(p: Patch, strength: float):
    def hook(layer: nn.Module, args: tuple, y: Tensor) -> Tensor:
        if p.kind == "oft":
            channel_dim = -1 if isinstance(layer, nn.Linear) else 1
            return oft_rotate_output(p, y, layer.bias, channel_dim, strength)
        return y + strength * bypass_delta_out(p, layer, args[0], layer.weight).to(y.dtype)

    return hook


def split_bypass(patches: PatchSet, module: nn.Module) -> tuple[PatchSet, PatchSet]:
    """(patches that can run as hooks, patches that must be merged into weights)."""
    modules = dict(module.named_modules())
    hooks: PatchSet = {}
    merge: PatchSet = {}
    for name, plist in patches.items():
        mod_name, pname = _split_name(name)
        hookable = pname == "weight" and isinstance(
            modules.get(mod_name), (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
        for p in plist:
            dest = hooks if hookable and p.is_adapter and p.offset is None else merge
            dest.setdefault(name, []).append(p)
    return hooks, merge


def remove_hooks(handles: list[Any]) -> None:
    for h in handles:
        h.remove()


@contextmanager
def loras_applied(
    module: nn.Module,
    loras: list[tuple[dict[str, Tensor], float, bool]],
    target: str = "unet",
) -> Iterator[nn.Module]:
    """Every (lora_sd, strength, bypass) applied to `module` inside the block, undone after.

    Merged LoRAs patch the weights (restored exactly afterwards); bypass LoRAs run as forward
    hooks, except their diff/set/sliced patches, which are merged. Unplaced keys are ignored
    here: the loader nodes report them when the LoRA is added.
    """
    merge_sets: list[tuple[PatchSet, float]] = []
    hook_sets: list[tuple[PatchSet, float]] = []
    for lora_sd, strength, bypass in loras:
        if strength == 0:
            continue
        patches, _ = read_lora(lora_sd, target, module)
        if bypass:
            hooks, merge = split_bypass(patches, module)
            hook_sets.append((hooks, strength))
            merge_sets.append((merge, strength))
        else:
            merge_sets.append((patches, strength))
    backup = patch_weights(module, merge_sets)
    handles = [h for patches, s in hook_sets for h in bypass_hooks(module, patches, s)]
    try:
        yield module
    finally:
        remove_hooks(handles)
        restore_weights(module, backup)
